//! The pruner: the leader deletes finished jobs of this runtime's queues once they are older
//! than `max_age`, at most `limit` per run, as oban-py's Pruner does.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::leader::every_while_leading;
use crate::queues::Maintained;
use crate::{Db, Prefix};

const PRUNE: &str = include_str!("sql/prune.sql");

pub(crate) struct Pruner {
    pub pool: Db,
    pub prefix: Prefix,
    pub queues: Maintained,
    pub interval: Duration,
    pub max_age: Duration,
    pub limit: i64,
}

impl Pruner {
    pub async fn run(self, is_leader: watch::Receiver<bool>, stop: CancellationToken) {
        let prune = self.prefix.render(PRUNE);
        every_while_leading("pruning", self.interval, is_leader, stop, || async {
            let pruned = sqlx::query(prune.clone())
                .bind(self.queues.names())
                .bind(self.max_age.as_secs_f64())
                .bind(self.limit)
                .execute(&self.pool)
                .await?
                .rows_affected();
            if pruned > 0 {
                tracing::debug!(pruned, "pruned finished jobs");
            }
            Ok(())
        })
        .await;
    }
}
