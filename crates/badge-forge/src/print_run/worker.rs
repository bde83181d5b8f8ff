//! The `BadgeForge.PrintRun` worker: a print run asked for as a job (by Elixir, or a cron
//! entry), imposing the completed badge jobs its args name exactly as `badge-forge sheet
//! --from-db` does, writing the sheet into the node's output directory, and confirming it to
//! Elixir's `BadgeForge.PrintCenter` together with the completion (docs/print-runs.md).

use std::sync::Arc;
use std::time::Duration;

use oban_core::insert::NewJob;
use oban_core::job::Job;
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
use oban_core::{Client, Db};
use serde::{Deserialize, Serialize};

use super::completed::{CompletedBadges, Since};
use super::order::Collation;
use super::sheet::{Collector, PrintOptions};
use crate::output::OutputDir;
use crate::render::{Renderer, Stock};
use crate::worker::{GenerateBadge, PRINT_CENTER, PRINT_QUEUE};

/// The stock a print run uses unless told: Avery 5392, the default badge's 4x3 in inserts.
pub const DEFAULT_STOCK: &str = "avery-5392";
/// The order a print run uses unless told.
pub const DEFAULT_SORT: &str = "surname";

/// The args of a `BadgeForge.PrintRun` job: which completed badges to print and how. Every
/// key is optional; an unknown key (`layout`: the node's own layout prints; `output`: the
/// node decides where) discards the job, naming it. The strings are read as `badge-forge
/// sheet`'s flags of the same names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintRunArgs {
    /// Badges completed at or after this: RFC 3339, or a span back from when the run starts
    /// (`24h`). Every completed badge when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Tags each badge job must carry (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The badge jobs' queue; `badges` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The label stock; [`DEFAULT_STOCK`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<String>,
    /// The order; [`DEFAULT_SORT`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// The collation's locale (BCP 47); CLDR's root collation when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// A divider page before each new initial letter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dividers: bool,
}

impl PrintRunArgs {
    /// The badges these args name and how they print, or what is wrong with them, naming
    /// the key.
    pub fn plan(&self) -> Result<(CompletedBadges, PrintOptions), String> {
        let since = self
            .since
            .as_deref()
            .map(str::parse::<Since>)
            .transpose()
            .map_err(|e| format!("since: {e}"))?;
        let queue = self
            .queue
            .as_deref()
            .unwrap_or(GenerateBadge::OPTIONS.queue);
        if queue.is_empty() {
            return Err("queue: empty".into());
        }
        let options = PrintOptions {
            sort: self
                .sort
                .as_deref()
                .unwrap_or(DEFAULT_SORT)
                .parse()
                .map_err(|e| format!("sort: {e}"))?,
            collation: Collation::new(self.locale.as_deref())
                .map_err(|e| format!("locale: {e}"))?,
            dividers: self.dividers,
            stock: self
                .stock
                .as_deref()
                .unwrap_or(DEFAULT_STOCK)
                .parse::<Stock>()
                .map_err(|e| format!("stock: {e}"))?,
        };
        Ok((CompletedBadges::new(queue, &self.tags, since), options))
    }
}

/// The args of the [`PRINT_CENTER`] job confirming a print run. It carries the `id`, `name`
/// and `path` strings of a badge's confirmation, so the article's `BadgeForge.PrintCenter`,
/// which matches on those three keys, prints a sheet as it prints a badge; the other keys
/// are extra for a PrintCenter that tells the two apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintRunConfirmation {
    /// `print-run-<job id>`: never a badge's id, so a print log keyed by id keeps both.
    pub id: String,
    /// What the print shop reads: `print run <job id>: <printed> badges`.
    pub name: String,
    /// The sheet PDF's absolute path.
    pub path: String,
    /// The PrintRun job's id.
    pub job_id: i64,
    /// Badges on the sheet.
    pub printed: usize,
    /// Badge jobs matched but left out (bad args, a name the layout cannot print).
    pub failed: usize,
}

impl PrintRunConfirmation {
    /// The confirmation of print-run job `job_id`, whose sheet at `path` holds `printed`
    /// badges and left `failed` out.
    pub fn new(job_id: i64, path: String, printed: usize, failed: usize) -> Self {
        Self {
            id: format!("print-run-{job_id}"),
            name: format!("print run {job_id}: {printed} badges"),
            path,
            job_id,
            printed,
            failed,
        }
    }
}

/// Runs print runs for jobs of worker `BadgeForge.PrintRun`: reads the completed badge jobs
/// through `client`, imposes them with `renderer` and writes `print-run-<job id>.pdf` into
/// `output`.
pub struct PrintRun {
    renderer: Arc<Renderer>,
    output: OutputDir,
    db: Db,
    prefix: oban_core::Prefix,
}

impl PrintRun {
    /// A worker reading jobs through `client`, writing sheets into `output`.
    pub fn new(renderer: Arc<Renderer>, output: OutputDir, client: &Client) -> Self {
        Self {
            renderer,
            output,
            db: client.db().clone(),
            prefix: client.prefix().clone(),
        }
    }

    /// Where the sheet of print-run job `id` goes: one file per job, which a retry replaces.
    pub fn sheet_path(&self, id: i64) -> std::path::PathBuf {
        self.output.path().join(format!("print-run-{id}.pdf"))
    }
}

impl Worker for PrintRun {
    const NAME: &'static str = "BadgeForge.PrintRun";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: "printing_runs",
        max_attempts: 3,
        priority: 0,
        // Far above any real run's time: the bound is for a run that hangs.
        timeout: Some(Duration::from_secs(15 * 60)),
    };

    // Args that do not decode (a wrong type, an unknown key) are discarded by the node,
    // naming the key; `plan` discards values that decode but mean nothing.
    type Args = PrintRunArgs;

    async fn process(&self, args: PrintRunArgs, job: &Job) -> WorkResult {
        let (badges, options) = match args.plan() {
            Ok(plan) => plan,
            Err(reason) => {
                return Ok(Outcome::Discard(format!(
                    "invalid print run args: {reason}"
                )));
            }
        };
        let mut rows = Collector::new(&self.renderer, &options.sort);
        badges.collect(&self.db, &self.prefix, &mut rows).await?;
        let (renderer, output, path, job_id) = (
            self.renderer.clone(),
            self.output.clone(),
            self.sheet_path(job.id),
            job.id,
        );
        // Imposing a large sheet is CPU work: keep it off the runtime's threads.
        tokio::task::spawn_blocking(move || {
            let sheet = match options.impose(&renderer, rows) {
                Ok(sheet) => sheet,
                Err(error) if error.is_permanent() => {
                    return Ok(Outcome::Discard(error.to_string()));
                }
                Err(error) => return Err(format!("imposing the sheet: {error}").into()),
            };
            for failed in &sheet.failed {
                tracing::warn!(origin = %failed.origin, reason = %failed.reason, "left out of the print run");
            }
            let Some(pdf) = &sheet.pdf else {
                tracing::info!(job_id, failed = sheet.failed.len(), "nothing to print: no sheet, no confirmation");
                return Ok(Outcome::complete());
            };
            output
                .write_atomically(&path, pdf)
                .map_err(|error| format!("writing {}: {error}", path.display()))?;
            let confirmation = PrintRunConfirmation::new(
                job_id,
                path.to_string_lossy().into_owned(),
                sheet.printed,
                sheet.failed.len(),
            );
            let confirmation = NewJob::new(PRINT_CENTER, &confirmation)?.queue(PRINT_QUEUE);
            Ok(Outcome::complete_and_insert(vec![confirmation]))
        })
        .await?
    }
}
