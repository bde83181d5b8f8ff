"""The Python GenerateBadge worker that badge-forge replaces, run by a real oban-py 0.7 node.

It does what the worker of the article "Bridging Elixir and Python with Oban" does: for each job
on queue ``badges`` (args ``{"id", "name", "company", "type"}``, as Elixir's
``BadgeForge.enqueue_batch`` or ``badge-forge enqueue`` write them) it writes the badge's PDF and
then enqueues the ``BadgeForge.PrintCenter`` confirmation ``{"id", "name", "path"}`` on queue
``printing`` for Elixir. The article renders with WeasyPrint; this one writes a one-page PDF by
hand, which is all the tests need from it (Elixir's PrintCenter checks the ``%PDF-`` header).

Configuration comes from the environment: ``BADGE_FORGE_OUTPUT`` is the directory for the PDFs
(default ``output``).

As in the article, the confirmation is a separate insert, not part of the job's completion: if
the node died between the two, the rescued job would run again and confirm twice. A graceful
stop (SIGTERM) lets running jobs finish and records their completion first, so a swap of nodes
loses and duplicates nothing.
"""

import os
from pathlib import Path

from oban import Job, Oban, worker

PRINT_CENTER = "BadgeForge.PrintCenter"


def output_dir() -> Path:
    path = Path(os.environ.get("BADGE_FORGE_OUTPUT", "output")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def pdf_text(text: str) -> str:
    """A PDF string literal's content: Latin-1 only (the standard Helvetica font), escaped."""
    latin = text.encode("latin-1", "replace").decode("latin-1")
    return latin.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def badge_pdf(name: str, company: str, kind: str) -> bytes:
    """A 4 x 3 inch page with the name, company and badge type in Helvetica."""
    lines = [(28, 150, name), (16, 110, company), (12, 40, kind.upper())]
    content = "".join(
        f"BT /F1 {size} Tf 24 {y} Td ({pdf_text(text)}) Tj ET\n" for size, y, text in lines
    ).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 288 216] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def write_atomically(path: Path, data: bytes) -> None:
    """Writes to a temporary file and renames it, so a reader never sees half a PDF."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


@worker(queue="badges")
class GenerateBadge:
    async def process(self, job: Job) -> None:
        args = job.args
        badge_id = str(args["id"])
        name = args["name"]
        path = output_dir() / f"{badge_id}.pdf"
        write_atomically(path, badge_pdf(name, args.get("company", ""), args["type"]))

        confirmation = Job(
            PRINT_CENTER,
            queue="printing",
            args={"id": badge_id, "name": name, "path": str(path)},
        )
        await Oban.get_instance().enqueue(confirmation)
