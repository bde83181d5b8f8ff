//! The Oban v14 schema against a real PostgreSQL: what `migrate` creates, what it leaves alone,
//! and what `check` accepts.
//!
//! The expected shapes are the real installs' catalog facts, recorded in
//! `../shared/oban-recordings/` from Elixir Oban 2.23.1's `Oban.Migration.up` (v14) and oban-py
//! 0.7.0's `oban install` with the recording's own query (protocol §1.3–1.4, §1.6).

use crate::support::{eventually, fast_config, recording_text, start_scripted, wait_for_state};
use chrono::NaiveDateTime;
use oban_core::schema::{
    self, ErrorsColumn, LeadershipTable, Migration, SchemaInfo, SchemaVersion,
};
use oban_core::testing::fresh_database;
use oban_core::{Error, Prefix};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgPool};
use std::time::Duration;

/// Everything the catalog says about the Oban objects in `schema`, one line per fact. Functions
/// and triggers are listed too: a v14 schema has none.
const CATALOG_SQL: &str = "
SELECT line FROM (
  SELECT 1 AS part, c.relname AS k1, a.attnum::int AS k2,
         format('column %s.%s %s %s%s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                ' default ' || pg_get_expr(d.adbin, d.adrelid)) AS line
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0
    AND NOT a.attisdropped
UNION ALL
  SELECT 2, '', row_number() OVER (ORDER BY e.enumsortorder)::int,
         'enum ' || e.enumlabel
  FROM pg_enum e
  WHERE e.enumtypid = to_regtype(format('%I.oban_job_state', $1::text))
UNION ALL
  SELECT 3, indexname, 0, format('index %s: %s', indexname, indexdef)
  FROM pg_indexes WHERE schemaname = $1
UNION ALL
  SELECT 4, r.relname || '.' || con.conname, 0,
         format('constraint %s.%s %s validated=%s', r.relname, con.conname,
                pg_get_constraintdef(con.oid), con.convalidated::text)
  FROM pg_constraint con JOIN pg_class r ON r.oid = con.conrelid
  WHERE con.connamespace = $1::regnamespace
UNION ALL
  SELECT 5, c.relname, 0,
         format('relation %s %s %s', c.relname,
                CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                  WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' ELSE c.relkind::text END,
                CASE c.relpersistence WHEN 'p' THEN 'permanent' WHEN 'u' THEN 'unlogged'
                  ELSE 'temporary' END)
         || coalesce(' comment=' || obj_description(c.oid, 'pg_class'), '')
         || coalesce((SELECT format(' owned-by=%s.%s', t.relname, ta.attname)
                      FROM pg_depend dep
                      JOIN pg_class t ON t.oid = dep.refobjid
                      JOIN pg_attribute ta ON ta.attrelid = t.oid AND ta.attnum = dep.refobjsubid
                      WHERE dep.objid = c.oid AND dep.classid = 'pg_class'::regclass
                        AND dep.refclassid = 'pg_class'::regclass AND dep.deptype = 'a'
                        AND c.relkind = 'S'), '')
  FROM pg_class c WHERE c.relnamespace = $1::regnamespace
UNION ALL
  SELECT 6, t.typname, 0, format('type %s %s', t.typname,
                                 CASE t.typtype WHEN 'e' THEN 'enum' ELSE t.typtype::text END)
  FROM pg_type t
  WHERE t.typnamespace = $1::regnamespace AND t.typtype IN ('e', 'd', 'b', 'r', 'm')
    AND t.typelem = 0
UNION ALL
  SELECT 7, p.proname, 0, 'function ' || p.oid::regprocedure::text
  FROM pg_proc p WHERE p.pronamespace = $1::regnamespace
UNION ALL
  SELECT 8, tg.tgname, 0, format('trigger %s on %s', tg.tgname, c.relname)
  FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
  WHERE c.relnamespace = $1::regnamespace AND NOT tg.tgisinternal
) AS facts
ORDER BY part, k1, k2";

/// The facts of `catalog-facts.sql`, the query behind the recorded facts of the real installs,
/// run on `schema` with `leadership` read for `oban_peers` (oban-py's install has
/// `oban_leaders`), one line per row as `psql -XAt` prints it, in the recording's order.
async fn facts(pool: &PgPool, schema: &str, leadership: &str) -> Vec<String> {
    let sql = recording_text("catalog-facts.sql")
        .replace("'public", &format!("'{schema}"))
        .replace("'oban_peers'", &format!("'{leadership}'"));
    let mut lines = Vec::new();
    // With `schema` first on the search path, as `public` was for the recording: defaults
    // print their types unqualified.
    let mut conn = pool.acquire().await.unwrap().detach();
    sqlx::query("SELECT set_config('search_path', $1, false)")
        .bind(schema)
        .execute(&mut conn)
        .await
        .unwrap();
    for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
        let psql_rows = format!(
            "SELECT (SELECT string_agg(coalesce(value, ''), '|' ORDER BY n) \
                     FROM json_each_text(row_to_json(f)) WITH ORDINALITY AS e(key, value, n)) \
             FROM ({statement}) AS f"
        );
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(psql_rows))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        lines.extend(rows);
    }
    conn.close().await.unwrap();
    enum_ranks(lines)
}

/// The recorded catalog facts `name` of a real install, for `schema` instead of `public`.
fn recorded_facts(name: &str, schema: &str) -> Vec<String> {
    let lines = recording_text(name)
        .lines()
        .map(|line| line.replace("public.", &format!("{schema}.")))
        .collect();
    enum_ranks(lines)
}

/// The enum's sort keys as ranks: `ALTER TYPE ... ADD VALUE AFTER` (oban-py's installer) gives
/// `suspended` the key 2.5, a dump restored in one `CREATE TYPE` gives it 3; the order is the fact.
fn enum_ranks(lines: Vec<String>) -> Vec<String> {
    let mut rank = 0;
    lines
        .into_iter()
        .map(|line| match line.strip_prefix("enum|") {
            Some(rest) => {
                rank += 1;
                let label = rest.split_once('|').map_or(rest, |(_, label)| label);
                format!("enum|{rank}|{label}")
            }
            None => line,
        })
        .collect()
}

/// Elixir Oban 2.23.1's v14 install as recorded, for `schema`.
fn elixir_v14(schema: &str) -> Vec<String> {
    recorded_facts("elixir-v14-catalog-facts.txt", schema)
}

/// Elixir's v14 facts of `schema` on `pool`.
async fn v14_facts(pool: &PgPool, schema: &str) -> Vec<String> {
    facts(pool, schema, "oban_peers").await
}

/// The catalog lines for `schema` (see [`CATALOG_SQL`]).
async fn catalog(pool: &PgPool, schema: &str) -> Vec<String> {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SELECT set_config('search_path', $1, false)")
        .bind(schema)
        .execute(&mut *conn)
        .await
        .unwrap();
    let lines: Vec<String> = sqlx::query_scalar(CATALOG_SQL)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    // Leave the pooled connection as it was for the caller's next query.
    sqlx::query("RESET search_path")
        .execute(&mut *conn)
        .await
        .unwrap();
    lines
}

/// Asserts equality line by line, printing both listings in full when they differ.
fn assert_lines(actual: &[String], expected: &[String], context: &str) {
    if actual != expected {
        let missing: Vec<_> = expected.iter().filter(|l| !actual.contains(l)).collect();
        let extra: Vec<_> = actual.iter().filter(|l| !expected.contains(l)).collect();
        panic!(
            "{context}: catalog differs\nmissing: {missing:#?}\nunexpected: {extra:#?}\n\
             actual (in order):\n{}",
            actual.join("\n")
        );
    }
}

async fn pool() -> PgPool {
    let url = fresh_database().await.expect("a throwaway database");
    PgPoolOptions::new()
        .max_connections(6)
        .connect(&url)
        .await
        .unwrap()
}

fn public() -> Prefix {
    Prefix::default()
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap();
}

/// Applies `migrations/v01.sql` … `vNN.sql` by hand and records `version`, like an Elixir
/// application that stopped upgrading at that version.
async fn install_up_to(pool: &PgPool, prefix: &Prefix, version: usize) {
    const FILES: [&str; 14] = [
        include_str!("../../../../migrations/v01.sql"),
        include_str!("../../../../migrations/v02.sql"),
        include_str!("../../../../migrations/v03.sql"),
        include_str!("../../../../migrations/v04.sql"),
        include_str!("../../../../migrations/v05.sql"),
        include_str!("../../../../migrations/v06.sql"),
        include_str!("../../../../migrations/v07.sql"),
        include_str!("../../../../migrations/v08.sql"),
        include_str!("../../../../migrations/v09.sql"),
        include_str!("../../../../migrations/v10.sql"),
        include_str!("../../../../migrations/v11.sql"),
        include_str!("../../../../migrations/v12.sql"),
        include_str!("../../../../migrations/v13.sql"),
        include_str!("../../../../migrations/v14.sql"),
    ];
    for file in &FILES[..version] {
        exec(pool, prefix.render(file).as_str()).await;
    }
    exec(
        pool,
        &format!("COMMENT ON TABLE {prefix}.oban_jobs IS '{version}'"),
    )
    .await;
}

fn schema_error(result: oban_core::Result<SchemaInfo>) -> String {
    match result {
        Err(Error::Schema(message)) => message,
        other => panic!("expected Error::Schema, got {other:?}"),
    }
}

#[tokio::test]
async fn fresh_install_is_elixirs_v14_schema() {
    let pool = pool().await;
    let outcome = schema::migrate(&pool, &public()).await.unwrap();
    assert_eq!(outcome, Migration::Applied { from: 0 });
    assert_lines(
        &v14_facts(&pool, "public").await,
        &elixir_v14("public"),
        "fresh install",
    );

    let info = schema::check(&pool, &public()).await.unwrap();
    assert_eq!(
        info,
        SchemaInfo {
            version: SchemaVersion::Recorded(14),
            errors: ErrorsColumn::JsonbArray,
            leadership_table: Some(LeadershipTable::ObanPeers),
            oban_producers: false,
        }
    );

    // The enum labels added by the steps are usable once migrate has committed (pitfall 22).
    exec(
        &pool,
        "INSERT INTO oban_jobs (worker, state) VALUES ('W', 'suspended'), ('W', 'cancelled')",
    )
    .await;
}

#[tokio::test]
async fn migrating_again_changes_nothing() {
    let pool = pool().await;
    schema::migrate(&pool, &public()).await.unwrap();
    exec(
        &pool,
        "INSERT INTO oban_jobs (worker, args, priority) VALUES ('W', '{\"a\": 1}', 9)",
    )
    .await;
    let before = catalog(&pool, "public").await;

    let outcome = schema::migrate(&pool, &public()).await.unwrap();
    assert_eq!(outcome, Migration::UpToDate(SchemaVersion::Recorded(14)));
    assert_lines(&catalog(&pool, "public").await, &before, "second migrate");

    // Even with the comment lost, replaying every step leaves a v14 schema and its rows as they
    // were: the steps are idempotent and v10's 0..3 priority check is not re-added over v12's.
    exec(&pool, "COMMENT ON TABLE oban_jobs IS NULL").await;
    let outcome = schema::migrate(&pool, &public()).await.unwrap();
    assert_eq!(outcome, Migration::Applied { from: 0 });
    assert_lines(
        &v14_facts(&pool, "public").await,
        &elixir_v14("public"),
        "replayed steps",
    );
    let rows: Vec<(String, i32)> = sqlx::query_as("SELECT args::text, priority FROM oban_jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows, vec![("{\"a\": 1}".to_owned(), 9)]);
}

#[tokio::test]
async fn concurrent_migrations_apply_once() {
    let pool = pool().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { schema::migrate(&pool, &Prefix::default()).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run.await.unwrap().unwrap());
    }
    let applied = outcomes
        .iter()
        .filter(|o| **o == Migration::Applied { from: 0 })
        .count();
    let up_to_date = outcomes
        .iter()
        .filter(|o| **o == Migration::UpToDate(SchemaVersion::Recorded(14)))
        .count();
    assert_eq!((applied, up_to_date), (1, 3), "outcomes: {outcomes:?}");
    assert_lines(
        &v14_facts(&pool, "public").await,
        &elixir_v14("public"),
        "concurrent",
    );
}

#[tokio::test]
async fn non_public_prefix_gets_its_own_schema() {
    let pool = pool().await;
    let prefix = Prefix::new("tenant_a").unwrap();
    assert_eq!(
        schema::migrate(&pool, &prefix).await.unwrap(),
        Migration::Applied { from: 0 }
    );
    assert_lines(
        &v14_facts(&pool, "tenant_a").await,
        &elixir_v14("tenant_a"),
        "tenant_a",
    );
    assert_eq!(
        catalog(&pool, "public").await,
        Vec::<String>::new(),
        "public stays empty"
    );

    let info = schema::check(&pool, &prefix).await.unwrap();
    assert_eq!(info.version, SchemaVersion::Recorded(14));
    let message = schema_error(schema::check(&pool, &public()).await);
    assert!(message.contains("public.oban_jobs"), "{message}");
}

#[tokio::test]
async fn upgrades_an_older_elixir_schema() {
    let pool = pool().await;
    install_up_to(&pool, &public(), 11).await;
    exec(
        &pool,
        "INSERT INTO oban_jobs (worker, args) VALUES ('Old', '{}')",
    )
    .await;

    let message = schema_error(schema::check(&pool, &public()).await);
    for needle in [
        "version 11",
        "version 14 is required",
        "oban_core::schema::migrate",
        "Oban.Migration.up(version: 14",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }

    assert_eq!(
        schema::migrate(&pool, &public()).await.unwrap(),
        Migration::Applied { from: 11 }
    );
    assert_lines(
        &v14_facts(&pool, "public").await,
        &elixir_v14("public"),
        "from v11",
    );
    let workers: Vec<String> = sqlx::query_scalar("SELECT worker FROM oban_jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(workers, ["Old"]);
}

/// An Oban 1.x database: the enum as first shipped (no `suspended`, no `cancelled`) at v8. One
/// transaction adds both labels (v09, v14) and keeps going without using them.
#[tokio::test]
async fn upgrades_a_v8_schema_with_the_original_enum() {
    let pool = pool().await;
    exec(
        &pool,
        "CREATE TYPE oban_job_state AS ENUM \
         ('available', 'scheduled', 'executing', 'retryable', 'completed', 'discarded')",
    )
    .await;
    install_up_to(&pool, &public(), 8).await;
    exec(
        &pool,
        "INSERT INTO oban_jobs (worker, args, state) VALUES ('Old', '{}', 'completed')",
    )
    .await;

    assert_eq!(
        schema::migrate(&pool, &public()).await.unwrap(),
        Migration::Applied { from: 8 }
    );
    assert_lines(
        &v14_facts(&pool, "public").await,
        &elixir_v14("public"),
        "from v8",
    );
    exec(&pool, "UPDATE oban_jobs SET state = 'cancelled'").await;
}

#[tokio::test]
async fn check_refuses_a_missing_table_with_one_clear_message() {
    let pool = pool().await;
    let message = schema_error(schema::check(&pool, &public()).await);
    assert_eq!(
        message,
        "the Oban schema is not installed: there is no table public.oban_jobs; migrate it \
         with oban_core::schema::migrate or, from Elixir, \
         `Oban.Migration.up(version: 14, prefix: \"public\")`"
    );
}

#[tokio::test]
async fn version_comments_are_read_like_elixir_reads_them() {
    let pool = pool().await;
    schema::migrate(&pool, &public()).await.unwrap();

    exec(&pool, "COMMENT ON TABLE oban_jobs IS '∞'").await;
    assert_eq!(
        schema::check(&pool, &public()).await.unwrap().version,
        SchemaVersion::Unbounded
    );
    assert_eq!(
        schema::migrate(&pool, &public()).await.unwrap(),
        Migration::UpToDate(SchemaVersion::Unbounded)
    );

    exec(&pool, "COMMENT ON TABLE oban_jobs IS '15'").await;
    assert_eq!(
        schema::check(&pool, &public()).await.unwrap().version,
        SchemaVersion::Recorded(15)
    );

    exec(&pool, "COMMENT ON TABLE oban_jobs IS 'jobs'").await;
    let message = schema_error(schema::check(&pool, &public()).await);
    assert!(
        message.contains("\"jobs\", not an Oban schema version"),
        "{message}"
    );
}

/// Installs what oban-py 0.7.0's `oban install` created, replaying its recorded
/// `pg_dump --schema-only` on a connection of its own (the dump empties that session's
/// `search_path`).
async fn install_oban_py(pool: &PgPool) {
    let mut conn = pool.acquire().await.unwrap().detach();
    sqlx::raw_sql(AssertSqlSafe(recording_text("oban-py-0.7.0-schema.sql")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn accepts_and_leaves_alone_an_oban_py_install() {
    let pool = pool().await;
    install_oban_py(&pool).await;
    assert_lines(
        &facts(&pool, "public", "oban_leaders").await,
        &recorded_facts("oban-py-0.7.0-catalog-facts.txt", "public"),
        "oban-py's install, replayed",
    );
    let before = catalog(&pool, "public").await;

    let info = schema::check(&pool, &public()).await.unwrap();
    assert_eq!(
        info,
        SchemaInfo {
            version: SchemaVersion::ObanPy,
            errors: ErrorsColumn::Jsonb,
            leadership_table: Some(LeadershipTable::ObanLeaders),
            oban_producers: true,
        }
    );

    assert_eq!(
        schema::migrate(&pool, &public()).await.unwrap(),
        Migration::LeftObanPyInstall
    );
    assert_lines(
        &catalog(&pool, "public").await,
        &before,
        "oban-py install after migrate",
    );

    // oban-py <= 0.6.3 stamped '1' on its own table; the shape still says what it is.
    exec(&pool, "COMMENT ON TABLE oban_jobs IS '1'").await;
    assert_eq!(
        schema::check(&pool, &public()).await.unwrap().version,
        SchemaVersion::ObanPy
    );
}

/// On a schema oban-py installed (no `oban_peers`), a node leads through `oban_leaders` under
/// its own name beside oban-py's leader, whose row it never touches: it stages the due
/// retryable and scheduled jobs of its queue, records errors in the `jsonb` column, and takes
/// only its own row away when it stops.
#[tokio::test]
async fn a_node_leads_through_oban_leaders_on_an_oban_py_install() {
    let pool = pool().await;
    install_oban_py(&pool).await;
    exec(
        &pool,
        "INSERT INTO oban_leaders VALUES ('Oban', 'python-1', timezone('UTC', now()), \
         timezone('UTC', now()) + interval '1 hour')",
    )
    .await;
    let leaders = || async {
        let rows: Vec<(String, String, NaiveDateTime, NaiveDateTime)> = sqlx::query_as(
            "SELECT name, node, elected_at, expires_at FROM oban_leaders ORDER BY name",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        rows
    };
    let python = leaders().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO oban_jobs (worker, queue, state, attempt, scheduled_at, args) VALUES \
         ('Test.Scripted', 'default', 'retryable', 1, timezone('UTC', now()) - interval '1 second', '{}'), \
         ('Test.Scripted', 'default', 'scheduled', 0, timezone('UTC', now()) - interval '1 second', '{}'), \
         ('Test.Scripted', 'default', 'available', 0, timezone('UTC', now()), '{\"do\": \"error\"}') \
         RETURNING id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let config = oban_core::config::Config {
        node: "rust-1".into(),
        ..fast_config(&[("default", 2)])
    };
    let node = start_scripted(&pool, config).await;
    eventually("the node to lead", Duration::from_secs(10), || async {
        node.is_leader().then_some(())
    })
    .await;
    wait_for_state(&pool, ids[0], "completed").await;
    wait_for_state(&pool, ids[1], "completed").await;
    wait_for_state(&pool, ids[2], "retryable").await;
    let errors: Value = sqlx::query_scalar("SELECT errors FROM oban_jobs WHERE id = $1")
        .bind(ids[2])
        .fetch_one(&pool)
        .await
        .unwrap();
    let errors = errors.as_array().expect("errors stays one jsonb array");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["attempt"], 1);
    assert!(errors[0]["error"].as_str().unwrap().contains("boom"));

    let both = leaders().await;
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[0], python[0], "oban-py's leader row was touched");
    assert_eq!(
        (both[1].0.as_str(), both[1].1.as_str()),
        ("Oban.rust", "rust-1")
    );
    node.shutdown().await;
    assert_eq!(
        leaders().await,
        python,
        "resigning took more than its own row"
    );
}

/// Elixir first, then oban-py's installer on top (the supported mixed order): still Elixir's v14.
#[tokio::test]
async fn elixir_schema_with_oban_py_tables_is_still_v14() {
    let pool = pool().await;
    schema::migrate(&pool, &public()).await.unwrap();
    exec(
        &pool,
        "CREATE UNLOGGED TABLE oban_leaders (name text PRIMARY KEY, node text NOT NULL, \
         elected_at timestamp NOT NULL, expires_at timestamp NOT NULL); \
         CREATE UNLOGGED TABLE oban_producers (uuid uuid PRIMARY KEY, name text NOT NULL, \
         node text NOT NULL, queue text NOT NULL, meta jsonb NOT NULL DEFAULT '{}', \
         started_at timestamp NOT NULL, updated_at timestamp NOT NULL)",
    )
    .await;
    let info = schema::check(&pool, &public()).await.unwrap();
    assert_eq!(
        info,
        SchemaInfo {
            version: SchemaVersion::Recorded(14),
            errors: ErrorsColumn::JsonbArray,
            leadership_table: Some(LeadershipTable::ObanPeers),
            oban_producers: true,
        }
    );
    assert_eq!(
        schema::migrate(&pool, &public()).await.unwrap(),
        Migration::UpToDate(SchemaVersion::Recorded(14))
    );
}
