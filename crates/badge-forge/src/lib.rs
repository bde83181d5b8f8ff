//! Badge Forge: print-ready conference badges, rendered in Rust, as a drop-in Oban worker.

pub mod render;
