//! Leadership: which node of this runtime runs the maintenance loops.
//!
//! Elected like `Oban.Peers.Database` (a row in `oban_peers` that lives one interval, renewed
//! at half of it), but under a name of its own ([`crate::config::Config::leadership_name`],
//! `"Oban.rust"` by default). Elixir only deletes and renews rows of its own name (`"Oban"`) and
//! oban-py uses `oban_leaders`, so each runtime keeps its own leader and none can take
//! leadership from another. On a schema oban-py installed, which has no `oban_peers`, the row
//! goes into `oban_leaders` beside oban-py's, still under this runtime's name: oban-py renews
//! only its own name's row and deletes only expired ones, so the two leaders coexist there too.
//!
//! Leadership passes on within about one interval of the leader's death (5 s by default, so
//! that a killed leader's orphans are rescued within seconds too), and never to two nodes at
//! once:
//! - a follower tries again right when the holder's row expires (the election tells it when),
//!   not on a fixed timer, so taking over costs no more queries than waiting;
//! - the leader holds a lease on its own clock: a renewal begun at `t` writes a row that the
//!   database expires no earlier than `t` + interval, so if the next renewal has not landed by
//!   then (a slow or unreachable database), the leader stops leading at that moment, before any
//!   follower can take the row over;
//! - a leader that shuts down deletes its row and says so on `leader`, and a follower elects
//!   at once.

use std::future::Future;
use std::time::Duration;

use serde_json::json;
use sqlx::SqlStr;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use tokio::time::Instant;

use crate::backoff::jitter_down;
use crate::notifier::{self, Channel};
use crate::schema::LeadershipTable;
use crate::{Db, Prefix, Result};

const DELETE_EXPIRED: &str = include_str!("sql/delete_expired_leader.sql");
const ELECT: &str = include_str!("sql/elect.sql");
const RESIGN: &str = include_str!("sql/resign.sql");
const DELETE_EXPIRED_OBAN_LEADERS: &str = include_str!("sql/delete_expired_oban_leaders.sql");
const ELECT_OBAN_LEADERS: &str = include_str!("sql/elect_oban_leaders.sql");
const RESIGN_OBAN_LEADERS: &str = include_str!("sql/resign_oban_leaders.sql");

/// The election's statements for a leadership table, rendered for the prefix.
struct Statements {
    delete_expired: SqlStr,
    elect: SqlStr,
    resign: SqlStr,
}

impl Statements {
    fn new(table: LeadershipTable, prefix: &Prefix) -> Self {
        match table {
            LeadershipTable::ObanPeers => Self {
                delete_expired: prefix.render(DELETE_EXPIRED),
                elect: prefix.render(ELECT),
                resign: prefix.render(RESIGN),
            },
            LeadershipTable::ObanLeaders => Self {
                delete_expired: prefix.render(DELETE_EXPIRED_OBAN_LEADERS),
                elect: prefix.render(ELECT_OBAN_LEADERS),
                resign: prefix.render(RESIGN_OBAN_LEADERS),
            },
        }
    }
}

pub(crate) struct Leader {
    pub pool: Db,
    pub prefix: Prefix,
    /// Where the leadership row goes.
    pub table: LeadershipTable,
    /// The row's name, this runtime's own.
    pub name: String,
    pub node: String,
    pub interval: Duration,
    pub is_leader: watch::Sender<bool>,
    /// A peer resigned: elect at once.
    pub resigned: mpsc::Receiver<()>,
}

/// What one election found.
struct Election {
    leading: bool,
    /// For a follower: seconds until the holder's row expires, if there is one.
    expires_in: Option<f64>,
}

impl Election {
    /// An election that failed: not leading, and no row to wait for.
    const FAILED: Self = Self {
        leading: false,
        expires_in: None,
    };
}

/// A follower wakes this long after the holder's row expires, and never sooner than this
/// after its last try (the expiry it read may already be past).
const AFTER_EXPIRY: Duration = Duration::from_millis(100);

impl Leader {
    pub async fn run(mut self, stop: CancellationToken) {
        let statements = Statements::new(self.table, &self.prefix);
        // While leading: when the row of the last renewal may expire, by this node's clock.
        let mut lease: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let election = self.elect_within(&statements, lease).await;
            let leading = election.leading;
            lease = leading.then(|| started + self.interval);
            if self.is_leader.send_replace(leading) != leading {
                tracing::info!(node = %self.node, leading, "leadership changed");
            }
            let wait = match election.expires_in {
                _ if leading => jitter_down(self.interval / 2, 0.1, &mut rand::rng()),
                Some(expires_in) => Duration::try_from_secs_f64(expires_in)
                    .unwrap_or_default()
                    .saturating_add(AFTER_EXPIRY)
                    .clamp(AFTER_EXPIRY, self.interval),
                None => jitter_down(self.interval, 0.1, &mut rand::rng()),
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                Some(()) = self.resigned.recv() => {}
            }
        }
        if *self.is_leader.borrow() {
            self.resign(&statements.resign).await;
        }
    }

    /// One election, by `lease` (the end of the current leadership) if this node leads: a
    /// failed or late renewal is not leading.
    async fn elect_within(&self, statements: &Statements, lease: Option<Instant>) -> Election {
        let outcome = match lease {
            Some(end) => tokio::time::timeout_at(end, self.elect(statements)).await,
            None => Ok(self.elect(statements).await),
        };
        match outcome {
            Ok(Ok(election)) => election,
            Ok(Err(error)) => {
                tracing::warn!(%error, "leader election failed; not leading until the next one");
                Election::FAILED
            }
            Err(_) => {
                tracing::warn!(
                    "leadership renewal did not land before its lease ended; not leading"
                );
                Election::FAILED
            }
        }
    }

    async fn elect(&self, statements: &Statements) -> Result<Election> {
        let mut tx = self.pool.begin().await?;
        // In a transaction of our own, so `Db` cannot choose for us (see `Db::persistent`).
        sqlx::query(statements.delete_expired.clone())
            .bind(&self.name)
            .persistent(self.pool.persistent())
            .execute(&mut *tx)
            .await?;
        let (leading, expires_in): (bool, Option<f64>) = sqlx::query_as(statements.elect.clone())
            .bind(&self.name)
            .bind(&self.node)
            .bind(self.interval.as_secs_f64())
            .persistent(self.pool.persistent())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Election {
            leading,
            expires_in,
        })
    }

    /// Deletes our row and tells peers, so that one of them takes over at once.
    async fn resign(&self, resign: &SqlStr) {
        self.is_leader.send_replace(false);
        let resigned = async {
            sqlx::query(resign.clone())
                .bind(&self.name)
                .bind(&self.node)
                .execute(&self.pool)
                .await?;
            notifier::publish(
                &self.pool,
                &self.prefix,
                Channel::Leader,
                &[json!({"down": self.name})],
            )
            .await
        };
        match resigned.await {
            Ok(()) => tracing::info!(node = %self.node, "resigned leadership"),
            Err(error) => {
                tracing::warn!(%error, "could not resign leadership; it expires by itself")
            }
        }
    }
}

/// Runs `work` every `interval` (jittered) while this node leads, until `stop`.
pub(crate) async fn every_while_leading<F, Fut>(
    what: &'static str,
    interval: Duration,
    mut is_leader: watch::Receiver<bool>,
    stop: CancellationToken,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(jitter_down(interval, 0.1, &mut rand::rng())) => {}
        }
        if !*is_leader.borrow_and_update() {
            continue;
        }
        if let Err(error) = work().await {
            tracing::warn!(%error, "{what} failed; retrying next interval");
        }
    }
}
