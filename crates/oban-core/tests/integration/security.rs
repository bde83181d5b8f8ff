//! Hostile-environment guarantees, against real PostgreSQL clusters of their own: database
//! passwords never reach a log line or an error, TLS works in every `sslmode` that encrypts (and
//! `verify-full` refuses a server it cannot verify), and a node runs all of its work as the
//! least-privilege role documented in `docs/deploy.md`, which cannot change the schema.
//!
//! Everything these tests log, at every level and from every crate (sqlx included), is captured
//! twice, as plain text and as JSON lines, and searched for the passwords. The capture is
//! scoped to this module's runtimes (`support::with_dispatch`): the binary's other tests do not
//! log into it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::{
    LogBuffer, Scripted, eventually, fast_config, state_of, wait_for_state, wait_until_listening,
    with_dispatch,
};
use oban_core::config::Config;
use oban_core::insert::NewJob;
use oban_core::node::{Node, NodeHandle};
use oban_core::notifier::ListenerHealth;
use oban_core::schema::{self, Migration, SchemaVersion};
use oban_core::testing::{TempPostgres, TestCertificates, assert_no_secret};
use oban_core::worker::Worker;
use oban_core::{Prefix, Result};
use serde_json::json;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tracing::Dispatch;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// The role's password in the leak test: distinctive, and the same percent-encoded or not.
const PASSWORD: &str = "Tr0ub4dor-Zq9vX7wPk";
/// A wrong password, which appears in URLs only.
const WRONG_PASSWORD: &str = "Wr0ngH0rse-Kq7mD2sL";

/// Where every test of this module logs (they run side by side and share it).
fn captured() -> &'static LogBuffer {
    static CAPTURED: OnceLock<LogBuffer> = OnceLock::new();
    CAPTURED.get_or_init(LogBuffer::default)
}

/// Runs `test` on a runtime of its own that logs everything, at every level, into
/// [`captured`]: once as plain text and once as JSON lines. Only this module's tests log there,
/// not the rest of the test binary.
fn capturing(test: impl Future<Output = ()>) {
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::TRACE)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(captured().clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(captured().clone()),
        );
    with_dispatch(Dispatch::new(subscriber), test);
}

/// Everything this module's tests logged so far.
fn logs() -> String {
    captured().text()
}

/// Runs a blocking cluster operation off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A superuser connection.
async fn admin(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap()
}

/// A pool that connects on first use and gives up acquiring after two seconds.
fn lazy_pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(url)
        .unwrap()
}

/// A node running [`Scripted`] on queue `default` with `config`.
async fn start_node(pool: PgPool, config: Config) -> Result<NodeHandle> {
    Node::builder(pool)
        .config(config)
        .worker(Scripted)?
        .start()
        .await
}

/// The error of a node start that must fail.
async fn failed_start(pool: PgPool, config: Config) -> oban_core::Error {
    match start_node(pool, config).await {
        Ok(node) => {
            node.shutdown().await;
            panic!("the node started")
        }
        Err(error) => error,
    }
}

/// Inserts `count` jobs that complete and waits until all have.
async fn run_jobs(node: &NodeHandle, pool: &PgPool, count: usize) {
    let jobs: Vec<NewJob> = (0..count)
        .map(|i| Scripted::new_job(&json!({"do": "ok", "i": i})).unwrap())
        .collect();
    let inserted = node.client().insert_all(&jobs).await.unwrap();
    assert_eq!(inserted.len(), count);
    for job in inserted {
        wait_for_state(pool, job.id, "completed").await;
    }
}

/// Waits until the captured logs contain `text`.
async fn wait_for_log(text: &str) {
    eventually(
        &format!("a log line with {text:?}"),
        Duration::from_secs(15),
        || async { logs().contains(text).then_some(()) },
    )
    .await;
}

/// A TCP port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn passwords_never_reach_logs_or_errors() {
    capturing(async {
        let cluster = blocking(|| {
            TempPostgres::builder()
                .hba("host all app 127.0.0.1/32 scram-sha-256")
                .start()
        })
        .await
        .unwrap();
        cluster
            .create_login_role("app", PASSWORD, "jobs")
            .await
            .unwrap();
        let mut admin = admin(cluster.url()).await;
        let url = |password: &str| {
            format!(
                "postgres://app:{password}@127.0.0.1:{}/jobs",
                cluster.port()
            )
        };
        // Every error and debug string that the test made the code produce.
        let mut produced = Vec::new();

        // A wrong password: sqlx's own error, then a node's start-up error, which must still say
        // what is wrong.
        let refused = PgPool::connect(&url(WRONG_PASSWORD)).await.unwrap_err();
        produced.push(format!("{refused} / {refused:?}"));
        let error = failed_start(lazy_pool(&url(WRONG_PASSWORD)), fast_config(&[])).await;
        assert!(
            error
                .to_string()
                .contains(r#"password authentication failed for user "app""#),
            "{error}"
        );
        produced.push(format!("{error} / {error:?}"));

        // An unreachable server.
        let unreachable = format!("postgres://app:{PASSWORD}@127.0.0.1:{}/jobs", closed_port());
        let error = failed_start(lazy_pool(&unreachable), fast_config(&[])).await;
        produced.push(format!("{error} / {error:?}"));

        // A running node whose LISTEN connection has the wrong password: it logs every failed
        // attempt, and still runs jobs by polling. Its configuration's debug form names the
        // listen URL's host, not its password.
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(&url(PASSWORD))
            .await
            .unwrap();
        schema::migrate(&pool, &Prefix::default()).await.unwrap();
        let config = Config {
            listen_options: Some(url(WRONG_PASSWORD).parse().unwrap()),
            ..fast_config(&[("default", 5)])
        };
        let debug = format!("{config:?} / {config:#?}");
        assert!(debug.contains("127.0.0.1"), "{debug}");
        produced.push(debug);
        let node = start_node(pool.clone(), config).await.unwrap();
        produced.push(format!("{:?}", node.config()));
        wait_for_log("notification listener lost its connection").await;
        run_jobs(&node, &pool, 5).await;
        node.shutdown().await;

        // A node whose every connection is killed reconnects, logging why.
        let node = start_node(pool.clone(), fast_config(&[("default", 5)]))
            .await
            .unwrap();
        wait_until_listening(&node).await;
        run_jobs(&node, &pool, 5).await;
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert!(killed > 1, "killed {killed} connections");
        eventually(
            "the listener to notice",
            Duration::from_secs(15),
            || async { (node.listener_health() != ListenerHealth::Up).then_some(()) },
        )
        .await;
        wait_until_listening(&node).await;
        run_jobs(&node, &pool, 5).await;
        node.shutdown().await;
        pool.close().await;

        let logs = logs();
        // The logs hold the failures themselves, in both formats.
        assert!(logs.contains("password authentication failed"));
        assert!(logs.contains(r#""level":"WARN""#), "no JSON lines captured");
        let secrets = [PASSWORD, WRONG_PASSWORD];
        assert_no_secret(&logs, &secrets, "the logs");
        for text in &produced {
            assert_no_secret(text, &secrets, "an error or debug string");
        }
        drop(admin);
        blocking(move || drop(cluster)).await;
    });
}

/// A file in a scratch directory of this test, removed with it.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("oban-security-{:08x}", rand::random::<u32>()));
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `path` as a URL query value (the scratch directory's path needs no escaping).
fn query_path(path: &Path) -> &str {
    let text = path.to_str().unwrap();
    assert!(
        text.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c)),
        "{text}"
    );
    text
}

#[test]
fn nodes_run_over_tls_and_verify_full_refuses_an_unknown_authority() {
    capturing(async {
        let certificates = blocking(TestCertificates::generate).await.unwrap();
        let stranger = blocking(TestCertificates::generate).await.unwrap();
        let served = certificates.clone();
        // Only TLS connections are let in: a connection path that ignored the URL's TLS settings
        // would be refused.
        let cluster = blocking(move || {
            TempPostgres::builder()
                .tls(&served)
                .hba("hostnossl all all 0.0.0.0/0 reject")
                .start()
        })
        .await
        .unwrap();
        let scratch = Scratch::new();
        let ca = scratch.write("ca.pem", &certificates.ca_pem);
        let wrong_ca = scratch.write("stranger-ca.pem", &stranger.ca_pem);
        let at = |host: &str, query: &str| {
            format!(
                "postgres://postgres@{host}:{}/postgres?{query}",
                cluster.port()
            )
        };

        let plain = PgConnection::connect(&at("127.0.0.1", "sslmode=disable"))
            .await
            .unwrap_err();
        assert!(
            plain.to_string().contains("no encryption"),
            "a plain connection: {plain}"
        );

        // An authority the client does not know: a clear error from a connection and from a node.
        let unverified = at(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={}", query_path(&wrong_ca)),
        );
        let refused = PgConnection::connect(&unverified).await.unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains("invalid peer certificate: UnknownIssuer"),
            "verify-full with a stranger's CA: {message}"
        );
        let error = failed_start(lazy_pool(&unverified), fast_config(&[])).await;
        assert!(error.to_string().contains("UnknownIssuer"), "{error}");

        let verified = format!("sslmode=verify-full&sslrootcert={}", query_path(&ca));
        let setup = PgPool::connect(&at("127.0.0.1", &verified)).await.unwrap();
        schema::migrate(&setup, &Prefix::default()).await.unwrap();

        for url in [
            at("127.0.0.1", "sslmode=require"),
            at(
                "127.0.0.1",
                &format!("sslmode=verify-ca&sslrootcert={}", query_path(&ca)),
            ),
            at("127.0.0.1", &verified),
            at("localhost", &verified),
        ] {
            let pool = PgPoolOptions::new()
                .max_connections(5)
                .connect(&url)
                .await
                .unwrap_or_else(|error| panic!("{url}: {error}"));
            let node = start_node(pool.clone(), fast_config(&[("default", 5)]))
                .await
                .unwrap();
            wait_until_listening(&node).await;
            run_jobs(&node, &pool, 20).await;
            let (encrypted, plain): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE ssl), count(*) FILTER (WHERE NOT ssl)
             FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE backend_type = 'client backend'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert!(
                encrypted >= 2 && plain == 0,
                "{url}: {encrypted} TLS, {plain} plain"
            );
            node.shutdown().await;
            pool.close().await;
        }

        // The LISTEN connection on a URL of its own keeps that URL's TLS settings.
        let pool = PgPool::connect(&at("127.0.0.1", "sslmode=require"))
            .await
            .unwrap();
        let config = Config {
            listen_options: Some(at("localhost", &verified).parse().unwrap()),
            ..fast_config(&[("default", 5)])
        };
        let node = start_node(pool.clone(), config).await.unwrap();
        wait_until_listening(&node).await;
        node.shutdown().await;
        let config = Config {
            listen_options: Some(unverified.parse().unwrap()),
            ..fast_config(&[("default", 5)])
        };
        let node = start_node(pool.clone(), config).await.unwrap();
        wait_for_log("UnknownIssuer").await;
        assert_ne!(node.listener_health(), ListenerHealth::Up);
        node.shutdown().await;
        pool.close().await;
        setup.close().await;
        blocking(move || drop(cluster)).await;
    });
}

/// The runtime role's SQL from `docs/deploy.md`: the `sql` block after the marker comment.
fn runtime_role_sql() -> &'static str {
    const DEPLOY: &str = include_str!("../../../../docs/deploy.md");
    const MARKER: &str =
        "<!-- runtime role: run by crates/oban-core/tests/integration/security.rs -->";
    let after = &DEPLOY[DEPLOY.find(MARKER).expect("the marker in docs/deploy.md")..];
    let start = after
        .find("```sql\n")
        .expect("a sql block after the marker")
        + 7;
    let length = after[start..]
        .find("```")
        .expect("the end of the sql block");
    &after[start..start + length]
}

#[test]
fn a_node_runs_everything_as_the_least_privilege_role_which_cannot_change_the_schema() {
    capturing(async {
        let cluster = blocking(TempPostgres::start).await.unwrap();
        let url = |user: &str, database: &str| {
            format!("postgres://{user}@127.0.0.1:{}/{database}", cluster.port())
        };
        // The owner creates the schema; the documented SQL creates and grants the runtime role.
        let mut admin = admin(cluster.url()).await;
        for statement in [
            "CREATE ROLE oban_owner LOGIN",
            "CREATE DATABASE app OWNER oban_owner",
        ] {
            sqlx::raw_sql(statement).execute(&mut admin).await.unwrap();
        }
        let owner = PgPool::connect(&url("oban_owner", "app")).await.unwrap();
        schema::migrate(&owner, &Prefix::default()).await.unwrap();
        let mut on_app = PgConnection::connect(&url("postgres", "app"))
            .await
            .unwrap();
        sqlx::raw_sql(runtime_role_sql())
            .execute(&mut on_app)
            .await
            .unwrap();

        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(&url("badge_forge", "app"))
            .await
            .unwrap();
        // Nothing to do for migrate on a current schema, so it needs no rights either.
        assert_eq!(
            schema::migrate(&pool, &Prefix::default()).await.unwrap(),
            Migration::UpToDate(SchemaVersion::Recorded(schema::CURRENT_VERSION))
        );

        // Rows only the owner could fake: an orphan of a dead node (for the lifeline) and a job
        // that finished two days ago (for the pruner).
        let (orphan, old): (i64, i64) = sqlx::query_as(
        "WITH orphan AS (
           INSERT INTO oban_jobs (worker, queue, args, state, attempt, attempted_at, attempted_by)
           VALUES ('Test.Scripted', 'default', '{}', 'executing', 1,
                   timezone('UTC', now()) - interval '1 hour', ARRAY['dead-node', 'dead-producer'])
           RETURNING id
         ), old AS (
           INSERT INTO oban_jobs (worker, queue, args, state, attempt, attempted_at, completed_at)
           VALUES ('Test.Scripted', 'default', '{}', 'completed', 1,
                   timezone('UTC', now()) - interval '2 days', timezone('UTC', now()) - interval '2 days')
           RETURNING id
         )
         SELECT orphan.id, old.id FROM orphan, old",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
        let mut gossip = PgListener::connect_with(&owner).await.unwrap();
        gossip.listen("public.oban_gossip").await.unwrap();

        let config = Config {
            full_counts: true,
            ..fast_config(&[("default", 5)])
        };
        let node_name = config.node.clone();
        let node = start_node(pool.clone(), config).await.unwrap();
        wait_until_listening(&node).await;
        eventually("leadership", Duration::from_secs(15), || async {
            node.is_leader().then_some(())
        })
        .await;
        let client = node.client();
        let insert = |args: serde_json::Value| async move {
            client
                .insert(&Scripted::new_job(&args).unwrap())
                .await
                .unwrap()
                .id
        };
        let ok = insert(json!({"do": "ok"})).await;
        let failing = insert(json!({"do": "error"})).await;
        let snoozing = insert(json!({"do": "snooze"})).await;
        let staged = client
            .insert(
                &Scripted::new_job(&json!({"do": "ok"}))
                    .unwrap()
                    .schedule_in(Duration::from_secs(1)),
            )
            .await
            .unwrap()
            .id;
        let cancelled = client
            .insert(
                &Scripted::new_job(&json!({"do": "ok"}))
                    .unwrap()
                    .schedule_in(Duration::from_secs(3600)),
            )
            .await
            .unwrap()
            .id;
        assert!(client.cancel_job(cancelled).await.unwrap());

        wait_for_state(&pool, ok, "completed").await;
        wait_for_state(&pool, failing, "retryable").await;
        wait_for_state(&pool, snoozing, "scheduled").await;
        wait_for_state(&pool, staged, "completed").await;
        wait_for_state(&pool, orphan, "completed").await;
        assert_eq!(state_of(&pool, cancelled).await, "cancelled");
        eventually("the old job pruned", Duration::from_secs(15), || async {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE id = $1")
                .bind(old)
                .fetch_one(&pool)
                .await
                .unwrap();
            (left == 0).then_some(())
        })
        .await;
        let leader: String =
            sqlx::query_scalar("SELECT node FROM oban_peers WHERE name = 'Oban.rust'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(leader, node_name);
        let heard = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notification = gossip.recv().await.unwrap();
                let payload = oban_core::notifier::decode_payload(notification.payload()).unwrap();
                if payload.to_string().contains(&node_name) {
                    return payload;
                }
            }
        })
        .await
        .expect("gossip from the node");
        assert!(heard.to_string().contains("default"), "{heard}");
        node.shutdown().await;
        let resigned: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_peers")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(resigned, 0, "the leader deletes its row when it stops");
        let logs = logs();
        assert!(
            !logs.contains("permission denied"),
            "the node hit a missing grant: {}",
            logs.lines()
                .find(|line| line.contains("permission denied"))
                .unwrap_or_default()
        );

        // What the role cannot do: any DDL, on the Oban objects or anywhere else.
        let mut role = PgConnection::connect(&url("badge_forge", "app"))
            .await
            .unwrap();
        for ddl in [
            "CREATE TABLE public.intruder (id int)",
            "CREATE SCHEMA intruder",
            "CREATE INDEX intruder ON public.oban_jobs (queue)",
            "ALTER TABLE public.oban_jobs ADD COLUMN intruder int",
            "ALTER TABLE public.oban_peers RENAME TO intruder",
            "ALTER TYPE public.oban_job_state ADD VALUE 'intruder'",
            "ALTER SEQUENCE public.oban_jobs_id_seq RESTART",
            "COMMENT ON TABLE public.oban_jobs IS '15'",
            "TRUNCATE public.oban_jobs",
            "DROP TABLE public.oban_peers",
            "DROP TABLE public.oban_jobs",
            "DROP TYPE public.oban_job_state CASCADE",
            "CREATE FUNCTION public.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        ] {
            let error = sqlx::raw_sql(ddl).execute(&mut role).await.expect_err(ddl);
            let code = error
                .as_database_error()
                .and_then(|error| error.code())
                .unwrap_or_default();
            assert_eq!(code, "42501", "{ddl}: {error}");
        }
        // Migrating another prefix needs DDL: refused.
        let refused = schema::migrate(&pool, &Prefix::new("intruder").unwrap())
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("permission denied"),
            "{refused}"
        );

        drop(role);
        drop(gossip);
        for pool in [pool, owner] {
            pool.close().await;
        }
        drop((admin, on_app));
        blocking(move || drop(cluster)).await;
    });
}
