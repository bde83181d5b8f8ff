//! Badge Forge: print-ready conference badges, rendered in Rust, as a drop-in Oban worker.
//!
//! [`worker::GenerateBadge`] replaces the article's Python worker on queue `badges`;
//! [`render`] draws the badge PDF; [`badge_args`] reads job args; [`output`] writes files;
//! [`fake_badges`] makes demo attendees; [`http`] serves metrics, health and a live page;
//! [`retention`] deletes old badges; [`print_run`] makes print runs of attendee lists or of
//! the completed badge jobs, also as the `BadgeForge.PrintRun` worker. The `badge-forge`
//! binary wraps them in a CLI.

pub mod badge_args;
pub mod fake_badges;
pub mod http;
pub mod output;
pub mod print_run;
pub mod render;
pub mod retention;
pub mod worker;
