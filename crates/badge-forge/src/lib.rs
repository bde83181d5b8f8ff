//! Badge Forge: print-ready conference badges, rendered in Rust, as a drop-in Oban worker.
//!
//! [`worker::GenerateBadge`] replaces the article's Python worker on queue `badges`;
//! [`render`] draws the badge PDF; [`badge_args`] reads job args; [`output`] writes files;
//! [`fake_badges`] makes demo attendees; [`http`] serves metrics, health and a live page;
//! [`retention`] deletes old badges. The `badge-forge` binary wraps them in a CLI.

pub mod badge_args;
pub mod fake_badges;
pub mod http;
pub mod output;
pub mod render;
pub mod retention;
pub mod worker;

/// The global allocator the `badge-forge` binary and the render and pipeline benches install
/// (`#[global_allocator] static ALLOCATOR: badge_forge::Allocator = badge_forge::Allocator;`).
///
/// A render makes and drops thousands of small objects (printpdf operations, lopdf
/// dictionaries keyed by `Vec<u8>`, font subset tables); with glibc's allocator that churn was
/// 15 % of render CPU. mimalloc's thread-local free lists took 8-19 % off the render bench's
/// CPU per badge (mixed corpus 0.70-0.73 -> 0.60 ms, same run). It is built not to ask for
/// transparent huge pages, which doubled the node's resident memory for no speed. The library
/// itself does not choose an allocator: a program embedding the worker keeps its own.
pub use mimalloc::MiMalloc as Allocator;
