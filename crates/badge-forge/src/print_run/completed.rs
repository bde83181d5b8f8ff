//! The rows of a print run from the database: the GenerateBadge jobs already completed, by
//! queue, tags and completion time ([`CompletedBadges`]), each job's args read as the worker
//! read them and reported by job id.
//!
//! They are read in pages of [`PAGE_SIZE`] jobs by id, each page's JSON turned into badges
//! before the next is fetched: a run of 100,000 jobs never holds more than one page of JSON,
//! only the badges themselves (a few hundred bytes each), which the desk's sort needs all
//! together anyway.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use oban_core::worker::Worker;
use oban_core::{Db, Prefix};
use serde_json::Value;

use super::sheet::{Collector, Origin};
use crate::retention::parse_duration;
use crate::worker::GenerateBadge;

const COMPLETED_BADGES: &str = include_str!("completed_badges.sql");
const SINCE_AGO: &str = include_str!("since_ago.sql");

/// A thousand years: a span back that reaches before any job, bounded so that `100000000d`
/// means every job rather than a timestamp PostgreSQL cannot hold.
const LONGEST_SPAN_SECS: f64 = 1_000.0 * 365.25 * 86_400.0;

/// Jobs read per statement: large enough that a statement's round trip costs little per job,
/// small enough that a page of args (a few hundred bytes each) stays well under a megabyte.
pub const PAGE_SIZE: i64 = 1_000;

/// Where a print run starts in time: an instant, or a span back from when the run starts
/// by the database's clock (the one that wrote `completed_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// From this instant on.
    At(DateTime<Utc>),
    /// From this long before the run on.
    Ago(Duration),
}

impl FromStr for Since {
    type Err = String;

    /// An RFC 3339 time (`2026-06-01T09:00:00Z`, `2026-06-01T10:00:00+01:00`) or a span back
    /// from now (`90m`, `12h`, `2d`).
    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(Since::At(at.with_timezone(&Utc)));
        }
        parse_duration(text).map(Since::Ago).map_err(|_| {
            format!(
                "{text:?} is neither an RFC 3339 time such as 2026-06-01T09:00:00Z nor a span \
                 back from now such as 12h or 2d"
            )
        })
    }
}

/// Which completed badge jobs a print run prints: those of one queue, carrying every one of
/// some tags, completed at or after some time.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedBadges {
    queue: String,
    tags: Vec<String>,
    since: Option<Since>,
}

impl CompletedBadges {
    /// The badge jobs completed in `queue`, carrying each of `tags` (compared as Oban stores
    /// tags: trimmed and lower-cased), completed at or after `since` (any time when `None`).
    pub fn new<S: AsRef<str>>(
        queue: impl Into<String>,
        tags: impl IntoIterator<Item = S>,
        since: Option<Since>,
    ) -> Self {
        let mut normalised: Vec<String> = Vec::new();
        for tag in tags {
            let tag = tag.as_ref().trim().to_lowercase();
            if !tag.is_empty() && !normalised.contains(&tag) {
                normalised.push(tag);
            }
        }
        CompletedBadges {
            queue: queue.into(),
            tags: normalised,
            since,
        }
    }

    /// Adds every such job to `rows`, by job id, a page at a time.
    pub async fn collect(
        &self,
        db: &Db,
        prefix: &Prefix,
        rows: &mut Collector,
    ) -> sqlx::Result<()> {
        let since = self.lower_bound(db).await?;
        let sql = prefix.render(COMPLETED_BADGES);
        let mut after = 0_i64;
        loop {
            let page: Vec<(i64, Value)> = sqlx::query_as(sql.clone())
                .bind(GenerateBadge::NAME)
                .bind(&self.queue)
                .bind(&self.tags)
                .bind(since)
                .bind(after)
                .bind(PAGE_SIZE)
                .fetch_all(db)
                .await?;
            let full = page.len() as i64 == PAGE_SIZE;
            for (id, args) in page {
                after = id;
                rows.add(Origin::Job(id), Ok(args));
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The instant `since` names, as `completed_at` stores it; a span is taken back from the
    /// database's clock, once for the whole run.
    async fn lower_bound(&self, db: &Db) -> sqlx::Result<Option<NaiveDateTime>> {
        match self.since {
            None => Ok(None),
            Some(Since::At(at)) => Ok(Some(at.naive_utc())),
            Some(Since::Ago(span)) => sqlx::query_scalar(SINCE_AGO)
                .bind(span.as_secs_f64().min(LONGEST_SPAN_SECS))
                .fetch_one(db)
                .await
                .map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_span_back() {
        let at = |text: &str| text.parse::<Since>();
        assert_eq!(
            at("2026-06-01T10:00:00+01:00"),
            Ok(Since::At("2026-06-01T09:00:00Z".parse().unwrap()))
        );
        assert_eq!(at("2h"), Ok(Since::Ago(Duration::from_secs(7_200))));
        assert_eq!(at("1d"), Ok(Since::Ago(Duration::from_secs(86_400))));
        for bad in ["yesterday", "2026-06-01", "2 h", "-2h", ""] {
            let error = at(bad).unwrap_err();
            assert!(error.contains("RFC 3339"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn tags_are_compared_as_oban_stores_them() {
        let filter = CompletedBadges::new("badges", [" VIP", "vip", "", "Day-1"], None);
        assert_eq!(filter.tags, ["vip", "day-1"]);
    }
}
