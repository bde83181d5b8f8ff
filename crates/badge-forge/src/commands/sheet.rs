//! `badge-forge sheet`: badges imposed on sheets for a print shop, from an attendee list or
//! fake attendees, no database.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use badge_forge::badge_args::badge_from_args;
use badge_forge::fake_badges::fake_badges;
use badge_forge::print_run::input::{Format, read_rows};
use badge_forge::print_run::order::{Collation, SortKey, groups, order};
use badge_forge::render::{Badge, Renderer, Stock};

use super::EventArgs;
use super::render::PdfFile;

/// The exit code of a run that wrote its sheet but left out rows it could not print.
pub const ROWS_FAILED: u8 = 3;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 when every badge printed; 3 when the sheet was written \
but some rows of --input could not be printed (each is reported on stderr with its line \
number); 1 when nothing was written (a bad option, layout or header, or no row printable)."
)]
pub struct SheetArgs {
    /// Attendee list to print: CSV with a header row (columns id, name, company, type and any
    /// field the layout prints) or JSON Lines (one job-args object per line). Rows are read as
    /// job args are; a bad row is reported with its line number and left out.
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// The list's format, when its extension (.csv, .jsonl, .ndjson) does not say.
    #[arg(long, requires = "input")]
    pub format: Option<Format>,
    /// How many fake badges to impose, without --input.
    #[arg(long, short = 'n', default_value_t = 12, conflicts_with = "input")]
    pub count: usize,
    /// Seed for the fake names.
    #[arg(long, default_value_t = 2026, conflicts_with = "input")]
    pub seed: u64,
    /// The order badges print in: `surname` (the last word of the name; docs/print-runs.md),
    /// any job-args field (`company`, `id`, a column of the list), or `none` for the list's
    /// own order.
    #[arg(long, default_value = "surname")]
    pub sort: SortKey,
    /// The collation to sort by, a BCP 47 locale tag (`sv`: Å Ä Ö after Z; `da`: Æ Ø Å after
    /// Z; `pl`: Ł after L; `de`: Ü with U); without it, CLDR's root collation.
    #[arg(long)]
    pub locale: Option<String>,
    /// A divider page before each new initial letter of the sort key (as the collation files
    /// letters together), each letter starting a new page.
    #[arg(long)]
    pub dividers: bool,
    /// Label stock: avery-5392 (4x3 in, 6-up on Letter), a6-4up-a4, 90x55-10up-a4 (90x55 mm,
    /// 10-up on A4), or plain a4 or letter (as many badges of the layout's size as fit, with
    /// its bleed). A preset turns to the badge's orientation; a badge larger than the
    /// stock's labels is an error.
    #[arg(long, default_value = "avery-5392")]
    pub stock: Stock,
    #[command(flatten)]
    pub pdf: PdfFile,
    #[command(flatten)]
    pub event: EventArgs,
}

/// A row that cannot be printed: its line in the list and why.
struct Failed {
    line: u64,
    reason: String,
}

pub fn sheet(args: SheetArgs) -> anyhow::Result<ExitCode> {
    let renderer = args.event.renderer()?;
    let collation = Collation::new(args.locale.as_deref()).map_err(anyhow::Error::msg)?;
    let (badges, lines, mut failed) = match &args.input {
        Some(path) => read_badges(path, args.format, &renderer, &args.sort)?,
        None => {
            let badges = fake_badges(args.count, args.seed);
            let lines = (1..=badges.len() as u64).collect();
            (badges, lines, Vec::new())
        }
    };
    let order = order(&badges, &args.sort, &collation);
    let badges: Vec<Badge> = order.iter().map(|&i| badges[i].clone()).collect();
    let lines: Vec<u64> = order.iter().map(|&i| lines[i]).collect();
    let dividers = if args.dividers {
        groups(&badges, &args.sort, &collation)
    } else {
        Vec::new()
    };
    let imposed = if badges.is_empty() {
        None
    } else {
        Some(renderer.impose(&badges, &dividers, &args.stock)?)
    };
    let (pdf, printed) = match imposed {
        Some(imposed) => {
            failed.extend(imposed.rejected.into_iter().map(|(index, error)| Failed {
                line: lines[index],
                reason: error.to_string(),
            }));
            (imposed.pdf, imposed.printed)
        }
        None => (None, 0),
    };
    let source = args.input.as_deref().unwrap_or(Path::new("fake attendees"));
    failed.sort_by_key(|f| f.line);
    for f in &failed {
        eprintln!("{}:{}: {}", source.display(), f.line, f.reason);
    }
    let Some(pdf) = pdf else {
        anyhow::bail!(
            "no badge written: none of the {} rows of {} can be printed",
            failed.len(),
            source.display()
        );
    };
    args.pdf.write(&pdf)?;
    println!(
        "wrote {printed} badges to {} ({} bytes)",
        args.pdf.output.display(),
        pdf.len()
    );
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{} of {} rows of {} could not be printed (listed above)",
        failed.len(),
        printed + failed.len(),
        source.display()
    );
    Ok(ExitCode::from(ROWS_FAILED))
}

/// The badges of the list at `path` and the line each starts on, and the rows that are not
/// badges.
fn read_badges(
    path: &Path,
    format: Option<Format>,
    renderer: &Renderer,
    sort: &SortKey,
) -> anyhow::Result<(Vec<Badge>, Vec<u64>, Vec<Failed>)> {
    let format = format
        .or_else(|| Format::from_path(path))
        .with_context(|| {
            format!(
                "{}: cannot tell the format from its name; give --format csv or --format jsonl",
                path.display()
            )
        })?;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let design = renderer.design();
    let extra = sort.extra_field().map(str::to_string);
    let mut columns = design.required_fields();
    columns.extend(extra.clone());
    let mut fields = design.fields().to_vec();
    fields.extend(extra);
    let rows = read_rows(BufReader::new(file), format, &columns)
        .with_context(|| path.display().to_string())?;
    let (mut badges, mut lines, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let badge = row
            .args
            .and_then(|args| badge_from_args(&args, &fields).map_err(|e| e.to_string()));
        match badge {
            Ok(badge) => {
                badges.push(badge);
                lines.push(row.line);
            }
            Err(reason) => failed.push(Failed {
                line: row.line,
                reason,
            }),
        }
    }
    Ok((badges, lines, failed))
}
