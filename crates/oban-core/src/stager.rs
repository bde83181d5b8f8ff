//! The stager: every second, the leader makes due `scheduled` and `retryable` jobs of this
//! runtime's queues `available`, then announces each of those queues that has available jobs,
//! as Elixir's leader does, so every node running them (any runtime) wakes.

use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::leader::every_while_leading;
use crate::notifier::{self, Channel};
use crate::queues::Maintained;
use crate::{Db, Prefix, Result};

const STAGE: &str = include_str!("sql/stage.sql");
const AVAILABLE_QUEUES: &str = include_str!("sql/available_queues.sql");

pub(crate) struct Stager {
    pub pool: Db,
    pub prefix: Prefix,
    pub queues: Maintained,
    pub interval: Duration,
    pub limit: i64,
}

impl Stager {
    pub async fn run(self, is_leader: watch::Receiver<bool>, stop: CancellationToken) {
        let (stage, available) = (
            self.prefix.render(STAGE),
            self.prefix.render(AVAILABLE_QUEUES),
        );
        every_while_leading("staging", self.interval, is_leader, stop, || async {
            let queues = self.queues.names();
            let (staged,): (i64,) = sqlx::query_as(stage.clone())
                .bind(&queues)
                .bind(self.limit)
                .fetch_one(&self.pool)
                .await?;
            let ready: Vec<(String,)> = sqlx::query_as(available.clone())
                .bind(&queues)
                .fetch_all(&self.pool)
                .await?;
            if staged > 0 {
                tracing::debug!(staged, "staged jobs");
            }
            self.announce(ready.into_iter().map(|(queue,)| queue)).await
        })
        .await;
    }

    async fn announce(&self, queues: impl Iterator<Item = String>) -> Result<()> {
        let messages: Vec<_> = queues.map(|queue| json!({"queue": queue})).collect();
        if messages.is_empty() {
            return Ok(());
        }
        notifier::publish(&self.pool, &self.prefix, Channel::Insert, &messages).await
    }
}
