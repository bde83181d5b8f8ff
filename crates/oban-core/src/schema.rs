//! Installing and checking the Oban schema (version 14). Filled in by the schema work.
