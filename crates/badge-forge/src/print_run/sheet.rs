//! One print run, whatever its rows come from: each row read as a GenerateBadge job's args
//! ([`Collector`]), the badges put in the desk's order and imposed on the stock
//! ([`PrintOptions::impose`]). `badge-forge sheet` (an attendee list, fake attendees or the
//! database) and the [`PrintRun`](super::worker::PrintRun) worker all go through here.

use std::fmt;

use serde_json::Value;

use super::order::{Collation, SortKey, groups, order};
use crate::badge_args::badge_from_args;
use crate::render::{Badge, RenderError, Renderer, Stock};

/// Where a row of a print run came from, to report it by: a line of an attendee list, or
/// the id of a completed badge job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// The line the row starts on in the list (or a fake attendee's number).
    Line(u64),
    /// The badge job's id.
    Job(i64),
}

impl fmt::Display for Origin {
    /// `12` for a line (after the list's path), `job 4711` for a job.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(line) => write!(f, "{line}"),
            Origin::Job(id) => write!(f, "job {id}"),
        }
    }
}

/// A row that does not print, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    /// Where it came from.
    pub origin: Origin,
    /// Why it does not print.
    pub reason: String,
}

/// The badges of a print run as its rows arrive, each with its origin, and the rows that
/// are not badges. Only the badges are kept, not the rows' JSON, so a source that reads
/// its rows a page at a time holds one page of JSON at most.
pub struct Collector {
    fields: Vec<String>,
    badges: Vec<Badge>,
    origins: Vec<Origin>,
    failed: Vec<Failed>,
}

impl Collector {
    /// A collector reading the args fields `renderer`'s layout prints, and the one `sort`
    /// orders by.
    pub fn new(renderer: &Renderer, sort: &SortKey) -> Self {
        let mut fields = renderer.design().fields().to_vec();
        fields.extend(sort.extra_field().map(str::to_string));
        Collector {
            fields,
            badges: Vec::new(),
            origins: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// The columns an attendee list must have besides the job args' own: those the layout
    /// requires and the sort key's.
    pub fn required_columns(renderer: &Renderer, sort: &SortKey) -> Vec<String> {
        let mut columns = renderer.design().required_fields();
        columns.extend(sort.extra_field().map(str::to_string));
        columns
    }

    /// Adds one row: its args read as the worker reads a job's, or why it has none.
    pub fn add(&mut self, origin: Origin, args: Result<Value, String>) {
        let badge =
            args.and_then(|args| badge_from_args(&args, &self.fields).map_err(|e| e.to_string()));
        match badge {
            Ok(badge) => self.add_badge(origin, badge),
            Err(reason) => self.failed.push(Failed { origin, reason }),
        }
    }

    /// Adds a badge made elsewhere (a fake attendee).
    pub fn add_badge(&mut self, origin: Origin, badge: Badge) {
        self.badges.push(badge);
        self.origins.push(origin);
    }

    /// How many rows were added.
    pub fn rows(&self) -> usize {
        self.badges.len() + self.failed.len()
    }
}

/// How a print run is ordered and imposed: everything of `sheet` but where its rows come
/// from.
pub struct PrintOptions {
    /// The order.
    pub sort: SortKey,
    /// The collation the order follows.
    pub collation: Collation,
    /// A divider page before each new initial letter.
    pub dividers: bool,
    /// The label stock.
    pub stock: Stock,
}

/// A print run's outcome.
pub struct PrintedSheet {
    /// The PDF; `None` when no row could print.
    pub pdf: Option<Vec<u8>>,
    /// How many badges it holds.
    pub printed: usize,
    /// The rows left out, in their origins' order.
    pub failed: Vec<Failed>,
}

impl PrintOptions {
    /// Sorts the collected badges and imposes those that render; the others join the
    /// collector's failed rows. CPU work: a worker calls it off the async runtime.
    pub fn impose(
        &self,
        renderer: &Renderer,
        rows: Collector,
    ) -> Result<PrintedSheet, RenderError> {
        let Collector {
            badges,
            origins,
            mut failed,
            ..
        } = rows;
        let mut sheet = PrintedSheet {
            pdf: None,
            printed: 0,
            failed: Vec::new(),
        };
        if !badges.is_empty() {
            let order = order(&badges, &self.sort, &self.collation);
            let origins: Vec<Origin> = order.iter().map(|&i| origins[i]).collect();
            let mut slots: Vec<Option<Badge>> = badges.into_iter().map(Some).collect();
            let badges: Vec<Badge> = order.iter().filter_map(|&i| slots[i].take()).collect();
            let dividers = if self.dividers {
                groups(&badges, &self.sort, &self.collation)
            } else {
                Vec::new()
            };
            let imposed = renderer.impose(&badges, &dividers, &self.stock)?;
            failed.extend(imposed.rejected.into_iter().map(|(index, error)| Failed {
                origin: origins[index],
                reason: error.to_string(),
            }));
            sheet.pdf = imposed.pdf;
            sheet.printed = imposed.printed;
        }
        failed.sort_by_key(|f| f.origin);
        sheet.failed = failed;
        Ok(sheet)
    }
}
