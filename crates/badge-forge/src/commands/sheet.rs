//! `badge-forge sheet`: badges imposed on sheets for a print shop, from an attendee list,
//! the badge jobs completed in the database, or fake attendees.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use badge_forge::fake_badges::fake_badges;
use badge_forge::print_run::completed::{CompletedBadges, Since};
use badge_forge::print_run::input::{Format, read_rows};
use badge_forge::print_run::order::{Collation, SortKey};
use badge_forge::print_run::sheet::{Collector, Failed, Origin, PrintOptions};
use badge_forge::print_run::worker::{DEFAULT_SORT, DEFAULT_STOCK};
use badge_forge::render::{Renderer, Stock};
use badge_forge::worker::GenerateBadge;
use oban_core::Db;
use oban_core::worker::Worker;

use super::render::PdfFile;
use super::{Database, EventArgs};

/// The exit code of a run that wrote its sheet but left out rows it could not print.
pub const ROWS_FAILED: u8 = 3;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 when every badge printed; 3 when the sheet was written \
but some rows of --input or jobs of --from-db could not be printed (each is reported on \
stderr with its line number or job id); 1 when nothing was written (a bad option, layout or \
header, an unmigrated database, or no row printable)."
)]
pub struct SheetArgs {
    /// Attendee list to print: CSV with a header row (columns id, name, company, type and any
    /// field the layout prints) or JSON Lines (one job-args object per line). Rows are read as
    /// job args are; a bad row is reported with its line number and left out.
    #[arg(long, short, conflicts_with = "from_db")]
    pub input: Option<PathBuf>,
    /// Print the GenerateBadge jobs already completed in the database (DATABASE_URL), their
    /// args read as the worker read them; a job whose args make no badge is reported with its
    /// id and left out. Narrowed by --queue, --tag and --since (docs/print-runs.md).
    #[arg(long)]
    pub from_db: bool,
    /// With --from-db: only badges completed at or after TIME, an RFC 3339 time
    /// (2026-06-01T09:00:00Z) or a span back from now by the database's clock (90m, 12h, 2d).
    #[arg(long, requires = "from_db", value_name = "TIME")]
    pub since: Option<Since>,
    /// With --from-db: only badge jobs carrying this tag (repeatable: jobs carrying all of
    /// them).
    #[arg(long = "tag", requires = "from_db", value_name = "TAG")]
    pub tags: Vec<String>,
    /// With --from-db: the queue of the badge jobs.
    #[arg(long, requires = "from_db", default_value = GenerateBadge::OPTIONS.queue)]
    pub queue: String,
    /// The list's format, when its extension (.csv, .jsonl, .ndjson) does not say.
    #[arg(long, requires = "input")]
    pub format: Option<Format>,
    /// How many fake badges to impose, without --input or --from-db.
    #[arg(long, short = 'n', default_value_t = 12, conflicts_with_all = ["input", "from_db"])]
    pub count: usize,
    /// Seed for the fake names.
    #[arg(long, default_value_t = 2026, conflicts_with_all = ["input", "from_db"])]
    pub seed: u64,
    /// The order badges print in: `surname` (the last word of the name; docs/print-runs.md),
    /// any job-args field (`company`, `id`, a column of the list), or `none` for the list's
    /// own order.
    #[arg(long, default_value = DEFAULT_SORT)]
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
    #[arg(long, default_value = DEFAULT_STOCK)]
    pub stock: Stock,
    #[command(flatten)]
    pub pdf: PdfFile,
    #[command(flatten)]
    pub event: EventArgs,
}

pub async fn sheet(database: &Database, args: SheetArgs) -> anyhow::Result<ExitCode> {
    let renderer = args.event.renderer()?;
    let options = PrintOptions {
        sort: args.sort.clone(),
        collation: Collation::new(args.locale.as_deref()).map_err(anyhow::Error::msg)?,
        dividers: args.dividers,
        stock: args.stock,
    };
    let mut rows = Collector::new(&renderer, &options.sort);
    let source = if let Some(path) = &args.input {
        read_list(path, args.format, &renderer, &options.sort, &mut rows)?;
        Source::List(path)
    } else if args.from_db {
        let pool = database.connect_migrated(2).await?;
        let db = Db::with_pooler(pool, !database.statement_cache);
        CompletedBadges::new(&args.queue, &args.tags, args.since)
            .collect(&db, &database.prefix, &mut rows)
            .await
            .context("cannot read the completed badge jobs")?;
        Source::Database
    } else {
        for (number, badge) in (1..).zip(fake_badges(args.count, args.seed)) {
            rows.add_badge(Origin::Line(number), badge);
        }
        Source::Fake
    };
    let total = rows.rows();
    // Imposing is CPU work, and this command has nothing else to run meanwhile: it blocks the
    // calling thread, whose allocations grow glibc's main arena, cheaper than a fresh thread's
    // (docs/benchmarks.md, session 9).
    let sheet = tokio::task::block_in_place(|| options.impose(&renderer, rows))?;
    for failed in &sheet.failed {
        eprintln!("{}", source.report(failed));
    }
    let Some(pdf) = sheet.pdf else {
        if total == 0 {
            anyhow::bail!("no badge written: {}", source.nothing());
        }
        anyhow::bail!("no badge written: none of the {total} {source} can be printed");
    };
    args.pdf.write(&pdf)?;
    println!(
        "wrote {} badges to {} ({} bytes)",
        sheet.printed,
        args.pdf.output.display(),
        pdf.len()
    );
    if sheet.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{} of {total} {source} could not be printed (listed above)",
        sheet.failed.len(),
    );
    Ok(ExitCode::from(ROWS_FAILED))
}

/// Where a sheet's rows come from, as its messages name it.
enum Source<'a> {
    List(&'a Path),
    Database,
    Fake,
}

impl Source<'_> {
    /// Why a run with no rows at all printed nothing.
    fn nothing(&self) -> String {
        match self {
            Source::List(path) => format!("{} holds no rows", path.display()),
            Source::Database => "no completed badge job matches the filters".to_owned(),
            Source::Fake => "no fake attendees asked for".to_owned(),
        }
    }

    /// The line reporting a row left out: `list.csv:12: reason`, `job 4711: reason`.
    fn report(&self, failed: &Failed) -> String {
        match self {
            Source::List(path) => {
                format!("{}:{}: {}", path.display(), failed.origin, failed.reason)
            }
            Source::Fake => format!("fake attendees:{}: {}", failed.origin, failed.reason),
            Source::Database => format!("{}: {}", failed.origin, failed.reason),
        }
    }
}

impl std::fmt::Display for Source<'_> {
    /// The rows, after a count: `rows of list.csv`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::List(path) => write!(f, "rows of {}", path.display()),
            Source::Database => f.write_str("completed badge jobs matched"),
            Source::Fake => f.write_str("fake attendees"),
        }
    }
}

/// Adds the rows of the list at `path` to `rows`, each by its line.
fn read_list(
    path: &Path,
    format: Option<Format>,
    renderer: &Renderer,
    sort: &SortKey,
    rows: &mut Collector,
) -> anyhow::Result<()> {
    let format = format
        .or_else(|| Format::from_path(path))
        .with_context(|| {
            format!(
                "{}: cannot tell the format from its name; give --format csv or --format jsonl",
                path.display()
            )
        })?;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let columns = Collector::required_columns(renderer, sort);
    let list = read_rows(BufReader::new(file), format, &columns)
        .with_context(|| path.display().to_string())?;
    for row in list {
        rows.add(Origin::Line(row.line), row.args);
    }
    Ok(())
}
