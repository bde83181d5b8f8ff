//! The lifeline: the leader rescues jobs orphaned in `executing` (their producer died) in this
//! runtime's queues, by the producer's liveness rather than by the job's age.
//!
//! - A job of a producer that is **alive** is never rescued, however long it runs: this
//!   node's own producers, those heard on `gossip` within [`Config::rescue_silence`] (see
//!   [`crate::liveness`]), and oban-py's producers whose `oban_producers` row its node touched
//!   within a minute (oban-py touches them every 15 s, and deletes older rows as dead).
//! - A job of a producer that fell **silent** (heard before, then not for the window, while
//!   this node was listening) is rescued at once: the lifeline looks every second, so a
//!   SIGKILLed node's jobs run again within seconds. So is one whose `oban_producers` row went
//!   stale.
//! - A job of a producer this node cannot see (never heard: Elixir without oban_met, a node
//!   with gossip off, a listener behind a transaction-mode pooler) is rescued once it has been
//!   executing longer than [`Config::rescue_after`], as oban-py's Lifeline does. Keep that
//!   above the longest job of such nodes.
//!
//! The full pass (the age rule, and discarding available jobs that can never be claimed) runs
//! every [`Config::rescue_interval`]; in between, the same statement runs only when some
//! producer has just fallen silent, and the silent producers are forgotten once their jobs are
//! rescued.
//!
//! [`Config::rescue_silence`]: crate::config::Config::rescue_silence
//! [`Config::rescue_after`]: crate::config::Config::rescue_after
//! [`Config::rescue_interval`]: crate::config::Config::rescue_interval

use std::sync::Mutex;
use std::time::Duration;

use sqlx::SqlStr;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::leader::every_while_leading;
use crate::liveness::{Census, Liveness};
use crate::notifier::ListenerHealth;
use crate::queues::{Maintained, Producers};
use crate::{Db, Prefix, Result};

const RESCUE: &str = include_str!("sql/rescue.sql");
const OBAN_PY_PRODUCERS: &str = include_str!("sql/oban_py_producers.sql");

/// How often the leader looks for producers that fell silent: the pace of gossip.
const SILENCE_CHECK: Duration = Duration::from_secs(1);

/// An `oban_producers` row untouched for this long belongs to a dead oban-py producer: the
/// age at which oban-py's own leader deletes it.
const OBAN_PY_PRODUCER_EXPIRY: Duration = Duration::from_secs(60);

struct Statements {
    rescue: SqlStr,
    oban_py_producers: SqlStr,
}

pub(crate) struct Lifeline {
    pub pool: Db,
    pub prefix: Prefix,
    pub queues: Maintained,
    /// This node's producers, whose jobs are alive by definition.
    pub own_producers: Producers,
    /// The producers this node has heard gossip.
    pub liveness: Liveness,
    /// The listener's state: nobody is judged silent while it cannot hear.
    pub health: watch::Receiver<ListenerHealth>,
    /// Whether oban-py's `oban_producers` table exists.
    pub oban_py_producers: bool,
    /// Interval of the full pass.
    pub interval: Duration,
    /// How long a producer heard before may be silent and still be alive.
    pub silence: Duration,
    /// The age rule's window, for producers nobody can see.
    pub rescue_after: Duration,
}

impl Lifeline {
    pub async fn run(self, is_leader: watch::Receiver<bool>, stop: CancellationToken) {
        let statements = Statements {
            rescue: self.prefix.render(RESCUE),
            oban_py_producers: self.prefix.render(OBAN_PY_PRODUCERS),
        };
        let last_pass: Mutex<Option<Instant>> = Mutex::new(None);
        let every = self.interval.min(SILENCE_CHECK);
        every_while_leading("rescuing", every, is_leader, stop, || async {
            let now = Instant::now();
            let hearing = *self.health.borrow() == ListenerHealth::Up;
            let census = self.liveness.census(now, self.silence, hearing);
            let pass_due = last_pass
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .is_none_or(|at| now.duration_since(at) >= self.interval);
            if !pass_due && census.silent.is_empty() {
                return Ok(());
            }
            self.rescue(&statements, census).await?;
            if pass_due {
                *last_pass
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(now);
            }
            Ok(())
        })
        .await;
    }

    /// Rescues the jobs of the producers that are not alive: those `census` found silent, the
    /// stale ones of `oban_producers`, and, by the age rule, those nobody can see. Then forgets
    /// the silent producers, whose orphans are taken care of.
    async fn rescue(&self, statements: &Statements, census: Census) -> Result<()> {
        let mut alive = self.own_producers.uuids();
        alive.extend(census.alive.iter().map(Uuid::to_string));
        let mut silent: Vec<String> = census.silent.iter().map(Uuid::to_string).collect();
        if self.oban_py_producers {
            // A role without SELECT on oban-py's table still rescues by gossip and by age.
            match sqlx::query_as::<_, (String, bool)>(statements.oban_py_producers.clone())
                .bind(OBAN_PY_PRODUCER_EXPIRY.as_secs_f64())
                .fetch_all(&self.pool)
                .await
            {
                Ok(rows) => {
                    for (uuid, live) in rows {
                        if live {
                            alive.push(uuid);
                        } else {
                            silent.push(uuid);
                        }
                    }
                }
                Err(error) => tracing::warn!(
                    %error,
                    "oban_producers unreadable: oban-py producers that do not gossip fall to the age rule"
                ),
            }
        }
        let rescued: Vec<(i64, String)> = sqlx::query_as(statements.rescue.clone())
            .bind(self.queues.names())
            .bind(self.rescue_after.as_secs_f64())
            .bind(&alive)
            .bind(&silent)
            .fetch_all(&self.pool)
            .await?;
        if !rescued.is_empty() {
            tracing::warn!(?rescued, silent = ?census.silent, "rescued orphaned jobs");
        }
        self.liveness.forget(&census.silent);
        Ok(())
    }
}
