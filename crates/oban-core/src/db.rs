//! The node's way to PostgreSQL: straight, or through a transaction-mode pooler.
//!
//! sqlx prepares every statement under a name (`sqlx_s_1`, `sqlx_s_2`, …) and, with its
//! statement cache switched off (`statement_cache_capacity(0)`), still prepares it by name and
//! never closes it. It also sends each statement in two round trips (parse, then bind and
//! execute). Behind a transaction-mode pooler such as PgBouncer (before 1.21, or without
//! `max_prepared_statements`) both break: the names collide on the server connections that
//! clients share (`prepared statement "sqlx_s_1" already exists`), and the pooler may hand the
//! bind to another server connection than the parse, where the statement does not exist or,
//! for the unnamed statement, is another client's.
//!
//! A [`Db`] made with [`Db::behind_pooler`] therefore sends every statement unnamed and, unless
//! it already runs inside a transaction, wraps it in one of its own, which keeps parse and bind
//! on one server connection. The wrapping costs two round trips per statement (`BEGIN` and
//! `COMMIT`); a direct connection ([`Db::new`]) keeps sqlx's prepared-statement cache.
//!
//! Either way a [`Db`] takes its connections with [`Db::acquire`], which does not let a task
//! stall on opening a new connection while one of the pool's own is free (see there).

use std::ops::Deref;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection, Either, Execute, Executor, PgPool, Postgres, SqlStr, Transaction};

/// While [`Db::acquire`] waits for a new connection, how often it looks for a released one.
const IDLE_POLL: Duration = Duration::from_millis(5);

/// A connection pool and how statements travel on it. Cheap to clone; derefs to the pool.
///
/// `&Db` is a sqlx [`Executor`]: pass it wherever a `&PgPool` would go.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
    behind_pooler: bool,
}

impl Db {
    /// Statements prepared by name and cached per connection (sqlx's default): for a direct
    /// connection, or a pooler that tracks prepared statements (PgBouncer ≥ 1.21 with
    /// `max_prepared_statements` set).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            behind_pooler: false,
        }
    }

    /// Unnamed statements, each in a transaction of its own: for a transaction-mode pooler
    /// that does not track prepared statements (see the module docs).
    pub fn behind_pooler(pool: PgPool) -> Self {
        Self {
            pool,
            behind_pooler: true,
        }
    }

    /// [`Db::behind_pooler`] when `behind_pooler`, else [`Db::new`].
    pub fn with_pooler(pool: PgPool, behind_pooler: bool) -> Self {
        Self {
            pool,
            behind_pooler,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection of the pool, as `PgPool::acquire` gives it, except that a wait for a new
    /// connection ends as soon as one of the pool's own is released.
    ///
    /// When the pool has room to grow and no idle connection, sqlx opens a new one and, if the
    /// server refuses it (`too many clients`, or starting up), keeps retrying until the acquire
    /// timeout, even when another task releases a connection a moment later. With the server's
    /// `max_connections` used up by another client, every statement of the node would then wait
    /// out the whole timeout: a stall, not a slowdown. Here the open is abandoned for the first
    /// connection released meanwhile (checked alive first, as sqlx checks idle connections).
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        let opening = self.pool.acquire();
        tokio::pin!(opening);
        // The usual acquire (an idle connection) is done long before the first look.
        let mut look = tokio::time::interval_at(tokio::time::Instant::now() + IDLE_POLL, IDLE_POLL);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                acquired = &mut opening => return acquired,
                _ = look.tick() => {
                    if let Some(mut conn) = self.pool.try_acquire() {
                        if conn.ping().await.is_ok() {
                            return Ok(conn);
                        }
                        conn.close_on_drop();
                    }
                }
            }
        }
    }

    /// Begins a transaction on a connection from [`Db::acquire`].
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        Transaction::begin(self.acquire().await?, None).await
    }

    /// Whether statements are sent unnamed, each in its own transaction.
    pub fn is_behind_pooler(&self) -> bool {
        self.behind_pooler
    }

    /// What to pass to `Query::persistent` for a statement run inside a transaction begun on
    /// this pool (such a statement does not go through this executor): `false` behind a
    /// pooler, where a named statement would outlive the transaction on a shared connection.
    pub fn persistent(&self) -> bool {
        !self.behind_pooler
    }
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Self::new(pool)
    }
}

impl Deref for Db {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        // The rows are collected before they are handed out: the stream cannot own the
        // connection it borrows (and behind a pooler, the transaction must end first).
        let db = self.clone();
        stream::once(async move {
            let steps: Vec<_> = if db.behind_pooler {
                let mut tx = db.begin().await?;
                let steps = tx.fetch_many(Unnamed(query)).try_collect().await?;
                tx.commit().await?;
                steps
            } else {
                db.acquire().await?.fetch_many(query).try_collect().await?
            };
            Ok::<_, sqlx::Error>(stream::iter(steps.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let db = self.clone();
        Box::pin(async move {
            if !db.behind_pooler {
                return db.acquire().await?.fetch_optional(query).await;
            }
            let mut tx = db.begin().await?;
            let row = tx.fetch_optional(Unnamed(query)).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    // Part of the trait because the workspace enables sqlx's `macros` (and so its `offline`)
    // feature; only the query macros call it.
    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.describe(sql)
    }
}

/// A query sent as the unnamed statement whatever it asked for.
struct Unnamed<E>(E);

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(self) -> SqlStr {
        self.0.sql()
    }

    fn statement(&self) -> Option<&PgStatement> {
        self.0.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, sqlx::error::BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::*;
    use crate::testing::TempPgBouncer;
    use crate::testing::fresh_database;

    /// Clients sharing two server connections run two statements with different parameters,
    /// interleaved: `(successes, failures, first error)`.
    async fn hammer(db: &Db) -> (usize, usize, Option<String>) {
        let tasks: Vec<_> = (0..6i64)
            .map(|task| {
                let db = db.clone();
                tokio::spawn(async move {
                    let (mut ok, mut failed, mut first) = (0, 0, None);
                    for i in 0..40i64 {
                        let outcome = if (task + i) % 2 == 0 {
                            sqlx::query_scalar::<_, i64>("SELECT $1::int8 * 2")
                                .bind(i)
                                .fetch_one(&db)
                                .await
                                .map(|doubled| doubled == i * 2)
                        } else {
                            sqlx::query_scalar::<_, i32>("SELECT length($1::text)")
                                .bind("x".repeat(i as usize))
                                .fetch_one(&db)
                                .await
                                .map(|length| i64::from(length) == i)
                        };
                        match outcome {
                            Ok(true) => ok += 1,
                            Ok(false) => panic!("a statement returned another statement's result"),
                            Err(error) => {
                                failed += 1;
                                first.get_or_insert(error.to_string());
                            }
                        }
                    }
                    (ok, failed, first)
                })
            })
            .collect();
        let mut total = (0, 0, None);
        for task in tasks {
            let (ok, failed, first) = task.await.unwrap();
            total.0 += ok;
            total.1 += failed;
            total.2 = total.2.or(first);
        }
        total
    }

    async fn pool_through(bouncer: &TempPgBouncer, url: &str) -> PgPool {
        let options: PgConnectOptions = bouncer.url(url).unwrap().parse().unwrap();
        PgPoolOptions::new()
            .max_connections(6)
            .min_connections(6)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.statement_cache_capacity(0))
            .await
            .unwrap()
    }

    /// A pool that has one connection and may open three more, on a server that refuses every
    /// new connection: four tasks take turns on the one connection instead of each waiting out
    /// the acquire timeout while sqlx retries opening a connection the server will not give.
    #[tokio::test(flavor = "multi_thread")]
    async fn uses_a_released_connection_while_the_server_refuses_new_ones() {
        use sqlx::Connection;

        use crate::testing::TempPostgres;

        let cluster = tokio::task::spawn_blocking(|| {
            TempPostgres::builder()
                .setting("max_connections", "8")
                .start()
        })
        .await
        .unwrap()
        .unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(cluster.url())
            .await
            .unwrap();
        let mut hog = Vec::new();
        while let Ok(conn) = sqlx::PgConnection::connect(cluster.url()).await {
            hog.push(conn);
        }

        for db in [Db::new(pool.clone()), Db::behind_pooler(pool.clone())] {
            let started = std::time::Instant::now();
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        for _ in 0..5 {
                            sqlx::query("SELECT pg_sleep(0.01)").execute(&db).await?;
                        }
                        let mut tx = db.begin().await?;
                        sqlx::query("SELECT 1").execute(&mut *tx).await?;
                        tx.commit().await
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(3),
                "behind_pooler {}: 24 statements on one connection took {took:?}",
                db.is_behind_pooler()
            );
            assert_eq!(pool.size(), 1, "no connection was opened");
        }
        drop(hog);
        pool.close().await;
        tokio::task::spawn_blocking(move || drop(cluster))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn statements_survive_a_transaction_mode_pooler_only_behind_pooler() {
        let url = fresh_database().await.unwrap();
        let bouncer = TempPgBouncer::start(&url, 2).unwrap();

        // sqlx with its cache off still names every statement and leaves it on the server
        // connection, where the next client to get that connection collides with it.
        let plain = Db::new(pool_through(&bouncer, &url).await);
        let (_, failed, first) = hammer(&plain).await;
        assert!(failed > 0, "named statements through the pooler all worked");
        eprintln!("without behind_pooler: {failed} of 240 failed, e.g. {first:?}");

        let pooled = Db::behind_pooler(pool_through(&bouncer, &url).await);
        let (ok, failed, first) = hammer(&pooled).await;
        assert_eq!((ok, failed), (240, 0), "behind_pooler: {first:?}");
    }
}
