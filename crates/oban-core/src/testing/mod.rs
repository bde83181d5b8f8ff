//! Test support for applications that use oban-core (cargo feature `testing`): a throwaway
//! PostgreSQL server ([`TempPostgres`], and a database of a test's own from
//! [`fresh_database`]) and PgBouncer in front of it ([`TempPgBouncer`]). They are test
//! support, never a place for data that matters (the cluster runs without fsync).

mod temp_pgbouncer;
mod temp_postgres;

pub use temp_pgbouncer::TempPgBouncer;
pub use temp_postgres::{
    StopMode, TempPostgres, TempPostgresBuilder, TestCertificates, fresh_database,
};
