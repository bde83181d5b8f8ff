//! The GenerateBadge worker: a drop-in for the article's Python worker.
//!
//! Same worker name, queue and args; it renders the badge, writes the PDF, and completes the job
//! together with the `BadgeForge.PrintCenter` confirmation for Elixir, in one statement: Elixir
//! gets exactly one confirmation per completed badge, none if the node dies before the ack, and
//! no second one when a rescued job runs again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oban_core::insert::NewJob;
use oban_core::job::Job;
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::badge_args::BadgeArgs;
use crate::output::OutputDir;
use crate::render::Renderer;

/// The Elixir worker that receives confirmations.
pub const PRINT_CENTER: &str = "BadgeForge.PrintCenter";
/// The queue Elixir runs PrintCenter on.
pub const PRINT_QUEUE: &str = "printing";

/// The args of a [`PRINT_CENTER`] job: which badge was written where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The badge id.
    pub id: String,
    /// The holder's name.
    pub name: String,
    /// The PDF's path.
    pub path: String,
}

/// Badge jobs a node holds at once by default. Only one per CPU core renders at a time; the
/// rest wait their turn in memory, so that claims and acks come in batches (see
/// [`ACK_LINGER`]) instead of one statement per badge.
pub const QUEUE_LIMIT: usize = 128;

/// How long a finished badge's ack waits for others to share its statement (see
/// `oban_core::config::Config::ack_linger`): a few dozen acks and their confirmations share
/// one statement instead of one statement per badge, which costs PostgreSQL several times less
/// CPU per badge (figures in docs/benchmarks.md). Under heavy load a batch is written as soon
/// as half of [`QUEUE_LIMIT`] waits on it, so the linger never
/// keeps the queue's slots from turning over.
pub const ACK_LINGER: Duration = Duration::from_millis(50);

/// Renders badges for jobs of worker `badge_forge.generator.GenerateBadge`.
pub struct GenerateBadge {
    renderer: Arc<Renderer>,
    output: OutputDir,
    stats: Arc<RenderStats>,
    /// One permit per CPU core: the queue may hold many more jobs than there are cores (large
    /// claims and ack batches are what make the database's share per badge small), but only
    /// this many render at once, so renders never time-slice each other.
    render_permits: Arc<Semaphore>,
}

/// Renders and bytes written since start, for metrics and summaries.
#[derive(Debug, Default)]
pub struct RenderStats {
    /// Badges rendered and written.
    pub renders: AtomicU64,
    /// PDF bytes written.
    pub pdf_bytes: AtomicU64,
    /// CPU nanoseconds spent rendering, by the render threads' own clocks (unlike wall time,
    /// this does not grow when other processes share the cores).
    pub render_nanos: AtomicU64,
    /// Nanoseconds spent writing PDFs (see `OutputDir::write_atomically`).
    pub write_nanos: AtomicU64,
}

impl GenerateBadge {
    /// A worker writing into `output`, rendering on as many threads as there are CPU cores.
    pub fn new(renderer: Arc<Renderer>, output: OutputDir, stats: Arc<RenderStats>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            renderer,
            output,
            stats,
            render_permits: Arc::new(Semaphore::new(cores)),
        }
    }
}

impl Worker for GenerateBadge {
    const NAME: &'static str = "badge_forge.generator.GenerateBadge";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: "badges",
        max_attempts: 5,
        priority: 0,
        timeout: Some(Duration::from_secs(60)),
    };

    // Args that do not decode are discarded by the node, naming the field; `into_badge`
    // discards what decodes but can never make a badge.
    type Args = BadgeArgs;

    async fn process(&self, args: BadgeArgs, _job: &Job) -> WorkResult {
        let badge = match args.into_badge(self.renderer.design().fields()) {
            Ok(badge) => badge,
            Err(invalid) => return Ok(Outcome::Discard(invalid.to_string())),
        };
        let path = self.output.badge_path(&badge.id);
        let (renderer, output, stats) = (
            self.renderer.clone(),
            self.output.clone(),
            self.stats.clone(),
        );
        let permit = self.render_permits.clone().acquire_owned().await?;
        // Rendering is CPU work: keep it off the runtime's threads so claims, acks and
        // notifications never wait behind it.
        let rendered = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = thread_cpu_time();
            let pdf = renderer.render(&badge);
            stats.render_nanos.fetch_add(
                thread_cpu_time().saturating_sub(started).as_nanos() as u64,
                Ordering::Relaxed,
            );
            let pdf = match pdf {
                Ok(pdf) => pdf,
                Err(error) if error.is_permanent() => return Ok(Err(error.to_string())),
                Err(error) => return Err(format!("rendering badge {}: {error}", badge.id)),
            };
            let writing = std::time::Instant::now();
            output
                .write_atomically(&path, &pdf)
                .map_err(|error| format!("writing {}: {error}", path.display()))?;
            stats
                .write_nanos
                .fetch_add(writing.elapsed().as_nanos() as u64, Ordering::Relaxed);
            stats.renders.fetch_add(1, Ordering::Relaxed);
            stats
                .pdf_bytes
                .fetch_add(pdf.len() as u64, Ordering::Relaxed);
            Ok(Ok((badge, path)))
        })
        .await?;
        match rendered? {
            Err(reason) => Ok(Outcome::Discard(reason)),
            Ok((badge, path)) => {
                let confirmation = Confirmation {
                    path: path.to_string_lossy().into_owned(),
                    id: badge.id,
                    name: badge.name,
                };
                let confirmation = NewJob::new(PRINT_CENTER, &confirmation)?.queue(PRINT_QUEUE);
                Ok(Outcome::complete_and_insert(vec![confirmation]))
            }
        }
    }
}

/// CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`); zero if the clock
/// cannot be read.
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec and the clock id a constant Linux supports.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
