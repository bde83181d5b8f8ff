//! Leadership: which node of this runtime runs the maintenance loops.
//!
//! Elected like `Oban.Peers.Database` (a row in `oban_peers` with an expiry, renewed at half
//! the interval), but under a name of its own ([`crate::config::Config::leadership_name`],
//! `"Oban.rust"` by default). Elixir only deletes and renews rows of its own name (`"Oban"`) and
//! oban-py uses `oban_leaders`, so each runtime keeps its own leader and none can take
//! leadership from another. On a schema oban-py installed, which has no `oban_peers`, the row
//! goes into `oban_leaders` beside oban-py's, still under this runtime's name: oban-py renews
//! only its own name's row and deletes only expired ones, so the two leaders coexist there too.

use std::future::Future;
use std::time::Duration;

use serde_json::json;
use sqlx::SqlStr;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

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

impl Leader {
    pub async fn run(mut self, stop: CancellationToken) {
        let statements = Statements::new(self.table, &self.prefix);
        loop {
            let leading = match self.elect(&statements).await {
                Ok(leading) => leading,
                Err(error) => {
                    tracing::warn!(%error, "leader election failed; not leading until the next one");
                    false
                }
            };
            if self.is_leader.send_replace(leading) != leading {
                tracing::info!(node = %self.node, leading, "leadership changed");
            }
            let wait = if leading {
                self.interval / 2
            } else {
                self.interval
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(jitter_down(wait, 0.1, &mut rand::rng())) => {}
                Some(()) = self.resigned.recv() => {}
            }
        }
        if *self.is_leader.borrow() {
            self.resign(&statements.resign).await;
        }
    }

    async fn elect(&self, statements: &Statements) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // In a transaction of our own, so `Db` cannot choose for us (see `Db::persistent`).
        sqlx::query(statements.delete_expired.clone())
            .bind(&self.name)
            .persistent(self.pool.persistent())
            .execute(&mut *tx)
            .await?;
        let leader: Option<(String,)> = sqlx::query_as(statements.elect.clone())
            .bind(&self.name)
            .bind(&self.node)
            .bind(self.interval.as_secs_f64())
            .persistent(self.pool.persistent())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(leader.is_some())
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
