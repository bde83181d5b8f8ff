//! The lifeline: the leader rescues jobs orphaned in `executing` (their node died) in this
//! runtime's queues, once they have been executing longer than `rescue_after`, as oban-py's
//! Lifeline does. Jobs running on this very node are never rescued. Set `rescue_after` above
//! the longest job: a slow job on another live node is indistinguishable from an orphan.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::leader::every_while_leading;
use crate::queues::{Maintained, Producers};
use crate::{Db, Prefix};

const RESCUE: &str = include_str!("sql/rescue.sql");

pub(crate) struct Lifeline {
    pub pool: Db,
    pub prefix: Prefix,
    pub queues: Maintained,
    /// This node's producers, whose jobs are alive by definition.
    pub own_producers: Producers,
    pub interval: Duration,
    pub rescue_after: Duration,
}

impl Lifeline {
    pub async fn run(self, is_leader: watch::Receiver<bool>, stop: CancellationToken) {
        let rescue = self.prefix.render(RESCUE);
        every_while_leading("rescuing", self.interval, is_leader, stop, || async {
            let rescued: Vec<(i64, String)> = sqlx::query_as(rescue.clone())
                .bind(self.queues.names())
                .bind(self.rescue_after.as_secs_f64())
                .bind(self.own_producers.uuids())
                .fetch_all(&self.pool)
                .await?;
            if !rescued.is_empty() {
                tracing::warn!(?rescued, "rescued orphaned jobs");
            }
            Ok(())
        })
        .await;
    }
}
