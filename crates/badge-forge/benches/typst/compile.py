"""Typst's side of `cargo bench -p badge-forge --bench typst`: compiles badge.typ over an
attendee list (CSV: id, name, company, type) and prints one JSON object: the CPU seconds the
counted compiles took in this process (time.process_time, every thread, so interpreter start
and `import typst` are not counted), how many documents and badges they made, and each
document's size in bytes.

    compile.py sheet TEMPLATE FONTS LIST [WARMUP]
    compile.py single TEMPLATE FONTS LIST

sheet: one document of every row of LIST. Without WARMUP it is the process's first compile
(cold: the fonts found and read, the template parsed, as a print run from the command line).
With WARMUP, that list is compiled first and not counted: fonts and Typst's caches are warm
but the badges counted are new to it. (Compiling the same document twice would only replay
the results Typst memoizes, which no new print run gets.)

single: each row of LIST as its own document, as a worker rendering one badge per job would,
after one uncounted compile of another row (WARMUP's first, or LIST's first, then not counted).
"""

import csv
import io
import json
import sys
import time

import typst


def read_list(path):
    """The list's header and rows, as CSV text can be written back."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def csv_text(header, rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def compiler(template, fonts):
    return typst.Compiler(template, font_paths=[fonts], ignore_system_fonts=True)


def sheet(template, fonts, path, warmup):
    """CPU of one document of every row, cold or after compiling `warmup`."""
    with open(path, encoding="utf-8") as f:
        badges = f.read()
    if warmup is None:
        started = time.process_time()
        pdf = compiler(template, fonts).compile(sys_inputs={"badges": badges})
        cpu = time.process_time() - started
    else:
        typst_compiler = compiler(template, fonts)
        with open(warmup, encoding="utf-8") as f:
            typst_compiler.compile(sys_inputs={"badges": f.read()})
        started = time.process_time()
        pdf = typst_compiler.compile(sys_inputs={"badges": badges})
        cpu = time.process_time() - started
    return cpu, [len(pdf)], badges.count("\n") - 1


def single(template, fonts, path, warmup):
    """CPU of each row of the list as its own document, after an uncounted one."""
    header, rows = read_list(path)
    first = read_list(warmup)[1][0] if warmup else rows.pop(0)
    typst_compiler = compiler(template, fonts)
    typst_compiler.compile(sys_inputs={"badges": csv_text(header, [first])})
    documents = [csv_text(header, [row]) for row in rows]
    started = time.process_time()
    pdfs = [typst_compiler.compile(sys_inputs={"badges": d}) for d in documents]
    cpu = time.process_time() - started
    return cpu, [len(pdf) for pdf in pdfs], len(rows)


def main():
    if len(sys.argv) not in (5, 6) or sys.argv[1] not in ("sheet", "single"):
        sys.exit(__doc__)
    mode, template, fonts, path = sys.argv[1:5]
    warmup = sys.argv[5] if len(sys.argv) == 6 else None
    run = sheet if mode == "sheet" else single
    cpu, sizes, badges = run(template, fonts, path, warmup)
    print(json.dumps({"cpu_seconds": cpu, "badges": badges, "bytes": sizes}))


main()
