//! `badge-forge work --http` as a process against a real PostgreSQL: `/metrics` parses as
//! Prometheus text and its numbers follow the jobs, `/healthz` fails once the LISTEN
//! connection or the database has been gone longer than the threshold and recovers, the live page, loaded
//! in headless Chromium while jobs run, shows numbers that move, and attendees' names are
//! shown only to those with the credentials, and never in a metric's label.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Response, get};
use badge_forge::worker::QUEUE_LIMIT;
use oban_core::testing::{eventually, fresh_database};
use oban_core::{Prefix, schema};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A GenerateBadge job as Elixir's `enqueue_batch` inserts it.
const ELIXIR_INSERT: &str = "INSERT INTO oban_jobs (args, attempt, errors, max_attempts, meta, queue, state, tags, worker) \
     VALUES ($1, 0, '{}', 20, '{}', 'badges', 'available', '{}', 'badge_forge.generator.GenerateBadge')";

/// A running `badge-forge work --http 127.0.0.1:0`.
struct Server {
    child: Child,
    address: SocketAddr,
    url: String,
    pool: PgPool,
    output: PathBuf,
    /// The `Authorization` header every request carries, if any.
    authorization: Option<String>,
}

impl Server {
    async fn start(health_threshold: &str) -> Self {
        Self::start_with(health_threshold, &[]).await
    }

    async fn start_with(health_threshold: &str, more_args: &[&str]) -> Self {
        let url = fresh_database().await.expect("a test database");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap();
        schema::migrate(&pool, &Prefix::default()).await.unwrap();
        let output = std::env::temp_dir().join(format!("bf-http-{}", rand::random::<u32>()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_badge-forge"))
            .args(["--log-format", "json", "work", "--http", "127.0.0.1:0"])
            .args([
                "--health-threshold",
                health_threshold,
                "--poll-interval",
                "0.2",
            ])
            .args(more_args)
            .arg("--output")
            .arg(&output)
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the badge-forge binary runs");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(address) = event["address"].as_str() {
                    return address.parse::<SocketAddr>().unwrap();
                }
            }
            panic!("badge-forge work exited before serving HTTP");
        })
        .await
        .expect("badge-forge work announces its HTTP address");
        // Keep reading the log so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            child,
            address,
            url,
            pool,
            output,
            authorization: None,
        }
    }

    /// A server asking for `credentials` (`USER:PASSWORD`), which its requests carry.
    async fn start_with_auth(credentials: &str) -> Self {
        let mut server = Self::start_with("30", &["--http-auth", credentials]).await;
        server.authorization = Some(basic(credentials));
        server
    }

    async fn get(&self, path: &str) -> Response {
        get(self.address, path, self.authorization.as_deref()).await
    }

    async fn metrics(&self) -> Scrape {
        let response = self.get("/metrics").await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        parse_prometheus(&response.body)
    }

    async fn enqueue(&self, args: Value) {
        sqlx::query(ELIXIR_INSERT)
            .bind(args)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    async fn stop(mut self) {
        // SIGTERM: the node drains and the process exits 0.
        let pid = self.child.id().expect("still running").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("badge-forge work stops after SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}");
        let _ = std::fs::remove_dir_all(&self.output);
    }
}

fn badge(i: usize) -> Value {
    json!({"id": format!("b{i}"), "name": format!("Ada Lovelace {i}"), "company": "Analytical Engines", "type": "speaker"})
}

/// The `Authorization` header value for `credentials` (`USER:PASSWORD`).
fn basic(credentials: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// One scrape of `/metrics`: each sample by its series, `name{key="value",...}` with the labels
/// sorted by key (histogram buckets as `name_bucket` with their `le`), and every label value.
struct Scrape {
    series: BTreeMap<String, f64>,
    label_values: BTreeSet<String>,
}

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series.get(&series(name, labels)).copied()
    }
}

impl std::ops::Index<&str> for Scrape {
    type Output = f64;

    fn index(&self, series: &str) -> &f64 {
        self.series
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in the scrape"))
    }
}

/// `name{key="value",...}` with the labels sorted by key, as [`Scrape`] names its series.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let mut labels = labels.to_vec();
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// Reads an exposition as Prometheus does: Prometheus's own `promtool check metrics` (its text
/// parser and its lint) must accept it whole, then `prometheus-parse` reads the samples.
fn parse_prometheus(text: &str) -> Scrape {
    let checked = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut promtool| {
            std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes())?;
            promtool.wait_with_output()
        })
        .expect("promtool (Prometheus's own checker) runs; scripts/ensure-deps installs it");
    assert!(
        checked.status.success(),
        "promtool rejects /metrics: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("read from memory");
    let mut scrape = Scrape {
        series: BTreeMap::new(),
        label_values: BTreeSet::new(),
    };
    for sample in parsed.samples {
        let labels: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        scrape
            .label_values
            .extend(labels.iter().map(|(_, v)| v.to_string()));
        let mut add = |name: &str, labels: &[(&str, &str)], value: f64| {
            let series = series(name, labels);
            assert!(
                scrape.series.insert(series.clone(), value).is_none(),
                "series repeated: {series}"
            );
        };
        match sample.value {
            prometheus_parse::Value::Histogram(buckets) => {
                for bucket in buckets {
                    let le = match bucket.less_than {
                        bound if bound.is_infinite() => "+Inf".to_owned(),
                        bound => bound.to_string(),
                    };
                    let with_le: Vec<(&str, &str)> = labels
                        .iter()
                        .copied()
                        .chain([("le", le.as_str())])
                        .collect();
                    add(&format!("{}_bucket", sample.metric), &with_le, bucket.count);
                }
            }
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => add(&sample.metric, &labels, value),
            prometheus_parse::Value::Summary(_) => panic!("no summary expected: {}", sample.metric),
        }
    }
    scrape
}

const WORKER: &str = "badge_forge.generator.GenerateBadge";

/// The finite bounds of the job duration histogram, as its `le` labels read.
const DURATION_BOUNDS: [&str; 12] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.5", "1", "5", "30",
];

fn jobs_total(metrics: &Scrape, state: &str) -> f64 {
    let labels = [("queue", "badges"), ("worker", WORKER), ("state", state)];
    metrics
        .get("badge_forge_jobs_total", &labels)
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_follow_the_jobs() {
    let server = Server::start("30").await;
    let before = server.metrics().await;
    assert_eq!(before["badge_forge_badges_rendered_total"], 0.0);
    assert_eq!(jobs_total(&before, "completed"), 0.0);
    // The default `--queue badges:N`.
    assert_eq!(
        before["badge_forge_queue_limit{queue=\"badges\"}"],
        QUEUE_LIMIT as f64
    );
    assert_eq!(before["badge_forge_db_pool_max_connections"], 10.0);

    for i in 0..20 {
        server.enqueue(badge(i)).await;
    }
    server
        .enqueue(json!({"id": "x", "name": "No Type", "company": ""}))
        .await;
    // Jobs are counted when they end and acked just after, in a batch.
    let after = eventually(
        "21 jobs finished and acked",
        Duration::from_secs(60),
        || async {
            let metrics = server.metrics().await;
            (jobs_total(&metrics, "completed") + jobs_total(&metrics, "discarded") == 21.0
                && metrics["badge_forge_acked_jobs_total"] == 21.0)
                .then_some(metrics)
        },
    )
    .await;
    assert_eq!(jobs_total(&after, "completed"), 20.0);
    assert_eq!(jobs_total(&after, "discarded"), 1.0);
    assert_eq!(after["badge_forge_badges_rendered_total"], 20.0);
    assert!(
        after["badge_forge_pdf_bytes_total"] > 20.0 * 1_000.0,
        "{}",
        after["badge_forge_pdf_bytes_total"]
    );
    assert!(after["badge_forge_render_seconds_total"] > 0.0);
    assert_eq!(after["badge_forge_acked_jobs_total"], 21.0);
    assert!(after["badge_forge_acks_total"] >= 1.0);
    assert!(after["badge_forge_claimed_jobs_total"] >= 21.0);
    assert!(after["badge_forge_claims_total"] > before["badge_forge_claims_total"]);
    assert!(after["badge_forge_claim_seconds_total"] > 0.0);
    assert!(after["badge_forge_ack_seconds_total"] > 0.0);

    // The duration histogram: cumulative buckets ending in +Inf = count, sum positive.
    let labels = [
        ("queue", "badges"),
        ("worker", WORKER),
        ("state", "completed"),
    ];
    let histogram = "badge_forge_job_duration_seconds";
    let mut buckets: Vec<(f64, f64)> = DURATION_BOUNDS
        .iter()
        .map(|le| {
            let with_le = [&labels[..], &[("le", le)]].concat();
            let cumulative = after.get(&format!("{histogram}_bucket"), &with_le);
            (
                le.parse().unwrap(),
                cumulative.unwrap_or_else(|| panic!("no bucket le={le}")),
            )
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
        "{buckets:?}"
    );
    let infinite = after.get(
        &format!("{histogram}_bucket"),
        &[&labels[..], &[("le", "+Inf")]].concat(),
    );
    let count = after.get(&format!("{histogram}_count"), &labels);
    assert_eq!((infinite, count), (Some(20.0), Some(20.0)));
    assert!(buckets.last().unwrap().1 <= 20.0);
    assert!(after.get(&format!("{histogram}_sum"), &labels).unwrap() > 0.0);

    // Queue depth from the database (sampled every 2 s): the badges are done and their
    // confirmations wait for Elixir's PrintCenter.
    let depth = |metrics: &Scrape, queue: &str, state: &str| {
        metrics.get(
            "badge_forge_queue_jobs",
            &[("queue", queue), ("state", state)],
        )
    };
    let sampled = eventually(
        "the depth sample to catch up",
        Duration::from_secs(10),
        || async {
            let metrics = server.metrics().await;
            (depth(&metrics, "printing", "available") == Some(20.0)).then_some(metrics)
        },
    )
    .await;
    assert_eq!(depth(&sampled, "badges", "available"), Some(0.0));
    assert_eq!(depth(&sampled, "badges", "executing"), Some(0.0));
    let pool = after["badge_forge_db_pool_connections{state=\"in_use\"}"]
        + after["badge_forge_db_pool_connections{state=\"idle\"}"];
    assert!((1.0..=10.0).contains(&pool), "{pool}");
    assert_eq!(after["badge_forge_up{component=\"database\"}"], 1.0);
    assert_eq!(after["badge_forge_leader"], 1.0);

    // No label carries an attendee's name, company or badge id.
    let values: Vec<&str> = sampled.label_values.iter().map(String::as_str).collect();
    assert!(
        values.contains(&"badges") && values.contains(&WORKER),
        "{values:?}"
    );
    for value in values {
        let personal = ["Ada", "Lovelace", "Analytical", "No Type"]
            .iter()
            .any(|text| value.contains(text))
            || (0..20).any(|i| value == format!("b{i}"))
            || value == "x";
        assert!(!personal, "personal data in a label: {value:?}");
    }
    server.stop().await;
}

/// A connection to the `postgres` database of `server`'s cluster, and the name of the node's
/// database, which it can close to new connections (PostgreSQL refuses to lock out the
/// database a session is on).
async fn admin_of(server: &Server) -> (PgConnection, String) {
    let options: PgConnectOptions = server.url.parse().unwrap();
    let database = options.get_database().unwrap().to_owned();
    let admin = PgConnection::connect_with(&options.database("postgres"))
        .await
        .unwrap();
    (admin, database)
}

/// Lets new connections into `database`, or refuses them (open ones keep working).
async fn allow_connections(admin: &mut PgConnection, database: &str, allowed: bool) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allowed}"
    )))
    .execute(admin)
    .await
    .unwrap();
}

/// `/healthz` of `server`: its status and JSON body, after checking the body's threshold.
async fn healthz(server: &Server, threshold: f64) -> (u16, Value) {
    let response = server.get("/healthz").await;
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(body["threshold_seconds"], threshold);
    (response.status, body)
}

/// The health threshold of the `/healthz` tests, in seconds: long enough that a loaded machine
/// answers a request within it, short enough to wait out.
const THRESHOLD: f64 = 5.0;

/// Asserts what `/healthz` guarantees while `component` is down: 200 while every outage is
/// within the threshold (by the body's own `down_seconds`), 503 past it, blaming `component`.
/// Returns the first 503's body in which `component` is down past the threshold.
async fn assert_fails_past_the_threshold(server: &Server, component: &str) -> Value {
    let body = eventually(
        &format!("503 for the {component}"),
        Duration::from_secs(60),
        || async {
            let (status, body) = healthz(server, THRESHOLD).await;
            // The longest outage of any component; `down_seconds` is rounded to 0.1 s.
            let down = ["database", "listener"]
                .iter()
                .filter_map(|component| body[component]["down_seconds"].as_f64())
                .fold(0.0, f64::max);
            if down < THRESHOLD - 0.1 {
                assert_eq!(status, 200, "down within the threshold: {body}");
                assert_eq!(body["status"], "ok");
            }
            if down > THRESHOLD + 0.1 {
                assert_eq!(status, 503, "down past the threshold: {body}");
            }
            let blamed = body[component]["down_seconds"]
                .as_f64()
                .is_some_and(|down| down > THRESHOLD);
            (status == 503 && blamed).then_some(body)
        },
    )
    .await;
    assert_eq!(body["status"], "failing", "{body}");
    assert_eq!(body[component]["up"], false, "{body}");
    body
}

#[tokio::test]
async fn healthz_fails_when_listen_is_gone_longer_than_the_threshold() {
    let server = Server::start(&THRESHOLD.to_string()).await;
    eventually(
        "a healthy node hearing its LISTEN",
        Duration::from_secs(20),
        || async {
            let (status, body) = healthz(&server, THRESHOLD).await;
            (status == 200 && body["listener"]["up"] == true).then_some(())
        },
    )
    .await;

    // Kill the LISTEN connection and keep it from coming back (new connections to this
    // database are refused; the pool's open connections keep working).
    let (mut admin, database) = admin_of(&server).await;
    allow_connections(&mut admin, &database, false).await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(&database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 1, "the node's LISTEN connection");

    // Past the threshold: 503, blaming the listener, not the database.
    let body = assert_fails_past_the_threshold(&server, "listener").await;
    assert_eq!(body["database"]["up"], true, "{body}");
    let metrics = server.metrics().await;
    assert_eq!(metrics["badge_forge_up{component=\"listener\"}"], 0.0);

    // Connections allowed again: the listener reconnects and the node is healthy.
    allow_connections(&mut admin, &database, true).await;
    eventually("recovery", Duration::from_secs(30), || async {
        let (status, body) = healthz(&server, THRESHOLD).await;
        (status == 200 && body["listener"]["up"] == true).then_some(())
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn healthz_fails_when_the_database_is_gone_longer_than_the_threshold() {
    let server = Server::start(&THRESHOLD.to_string()).await;
    eventually("a healthy node", Duration::from_secs(20), || async {
        let (status, body) = healthz(&server, THRESHOLD).await;
        (status == 200 && body["database"]["up"] == true).then_some(())
    })
    .await;

    // The node's probe (its count of queued jobs) waits behind an exclusive lock past its
    // timeout, while its LISTEN connection stays up.
    let mut lock = server.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE oban_jobs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let body = assert_fails_past_the_threshold(&server, "database").await;
    assert!(body["database"]["error"].is_string(), "{body}");
    assert_eq!(body["listener"]["up"], true, "{body}");

    lock.rollback().await.unwrap();
    eventually("recovery", Duration::from_secs(60), || async {
        let (status, body) = healthz(&server, THRESHOLD).await;
        (status == 200 && body["database"]["up"] == true).then_some(())
    })
    .await;
    server.stop().await;
}

/// Loads `url` in headless Chromium and returns the DOM after `budget` of virtual time.
async fn dump_dom(url: &str, budget: Duration) -> String {
    let profile = std::env::temp_dir().join(format!("bf-chromium-{}", rand::random::<u32>()));
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("chromium finishes within 90 s");
    let _ = std::fs::remove_dir_all(&profile);
    let output = match output {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("chromium is not installed: run scripts/ensure-deps (Debian package `chromium`)")
        }
        Err(error) => panic!("cannot run chromium: {error}"),
    };
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The number inside the element with this id: `id="completed">12<`.
fn number_by_id(dom: &str, id: &str) -> u64 {
    let start = dom
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in the page"))
        + id.len()
        + 6;
    dom[start..]
        .split('<')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("#{id} is not a number"))
}

#[tokio::test]
async fn the_live_page_shows_numbers_that_move_in_chromium() {
    let server = Server::start("30").await;
    server
        .enqueue(json!({"id": "broken", "name": "Nobody", "company": "", "type": "al/ien"}))
        .await;
    // Jobs keep arriving while the page is looked at.
    let feeder = {
        let pool = server.pool.clone();
        tokio::spawn(async move {
            for i in 0.. {
                sqlx::query(ELIXIR_INSERT)
                    .bind(badge(i))
                    .execute(&pool)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    let page = format!("http://{}/", server.address);
    eventually("a few badges", Duration::from_secs(30), || async {
        let metrics = server.metrics().await;
        (metrics["badge_forge_badges_rendered_total"] >= 3.0).then_some(())
    })
    .await;

    let first = dump_dom(&page, Duration::from_millis(100)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // This load also runs the page's script for five seconds of virtual time.
    let second = dump_dom(&page, Duration::from_secs(5)).await;
    feeder.abort();

    for dom in [&first, &second] {
        assert!(dom.contains("<tr data-queue=\"badges\">"), "queue row");
        assert!(
            dom.contains("id=\"database\">database up<"),
            "database status"
        );
        assert!(dom.contains("src=\"/badges/"), "badge previews");
        assert!(
            dom.contains("invalid badge args: badge type \"al/ien\" must be"),
            "error message"
        );
    }
    let (renders, later) = (
        number_by_id(&first, "renders"),
        number_by_id(&second, "renders"),
    );
    assert!(
        renders >= 3 && later > renders,
        "renders {renders} then {later}"
    );
    assert!(number_by_id(&second, "completed") > number_by_id(&first, "completed"));
    assert_eq!(number_by_id(&second, "failed"), 1);
    // The script replaced the live part at least once.
    let refreshes = second
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|count| count.parse::<u32>().ok())
        .expect("the page's script refreshed the live part");
    assert!(refreshes >= 1, "{refreshes}");
    assert!(
        !first.contains("data-refreshes"),
        "no refresh before the first interval"
    );

    // The previews the page links to are SVG images of the badges, by badge id.
    let badge = first
        .split("src=\"/badges/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    assert!(badge.starts_with('b'), "{badge}");
    let preview = server.get(&format!("/badges/{badge}/preview.svg")).await;
    assert_eq!(preview.status, 200);
    assert_eq!(preview.header("content-type"), Some("image/svg+xml"));
    assert!(
        preview.body.starts_with("<svg") || preview.body.starts_with("<?xml"),
        "{}",
        &preview.body[..60]
    );
    assert!(preview.body.contains("Ada Lovelace"));
    assert_eq!(server.get("/badges/b999999/preview.svg").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn oban_web_sees_the_process_and_its_counts() {
    let server = Server::start_with("30", &["--full-counts", "--node", "badge-forge-test"]).await;
    let mut tap = sqlx::postgres::PgListener::connect(&server.url)
        .await
        .unwrap();
    tap.listen_all(["public.oban_gossip", "public.oban_metrics"])
        .await
        .unwrap();
    for i in 0..5 {
        server.enqueue(badge(i)).await;
    }
    let (mut uuid, mut printing) = (None, None);
    tokio::time::timeout(Duration::from_secs(30), async {
        while uuid.is_none() || printing != Some(5) {
            let notification = tap.recv().await.unwrap();
            let payload = oban_core::notifier::decode_payload(notification.payload()).unwrap();
            if notification.channel() == "public.oban_gossip" {
                for check in payload["checks"].as_array().unwrap() {
                    assert_eq!(check["node"], "badge-forge-test");
                    assert_eq!(check["name"], "Oban");
                    assert_eq!(check["queue"], "badges");
                    assert_eq!(check["local_limit"], QUEUE_LIMIT);
                    uuid = check["uuid"].as_str().map(str::to_owned);
                }
            } else {
                assert_eq!(payload["node"], "badge-forge-test");
                for metric in payload["metrics"].as_array().unwrap() {
                    if metric["series"] == "full_count"
                        && metric["queue"] == "printing"
                        && metric["state"] == "available"
                    {
                        printing = metric["value"]["data"][0].as_u64();
                    }
                }
            }
        }
    })
    .await
    .expect("gossip checks and full counts from badge-forge work --full-counts");
    // Oban Web attributes the badge jobs to this check's producer.
    let attempted_by: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT attempted_by[2] FROM oban_jobs WHERE queue = 'badges'")
            .fetch_all(&server.pool)
            .await
            .unwrap();
    assert_eq!(attempted_by, vec![uuid.unwrap()]);
    server.stop().await;
}

/// Hostile names, companies and ids: the live page and the preview show them as text (escaped
/// by the templates), a path-like id is discarded and never reaches the file system, and
/// path-like preview URLs find nothing.
#[tokio::test]
async fn hostile_text_is_escaped_on_the_page_and_ids_never_reach_the_file_system() {
    let server = Server::start("30").await;
    let name = "</figcaption></figure><script>alert(1)</script>";
    let company = "\"><img src=x onerror=alert(2)> & Co";
    server
        .enqueue(json!({"id": "h1", "name": name, "company": company, "type": "speaker"}))
        .await;
    // Discarded; its error message, which quotes the id, is listed on the page.
    server
        .enqueue(json!({"id": "../../etc/<script>alert(3)</script>", "name": "x", "company": "", "type": "attendee"}))
        .await;
    let page = eventually(
        "the page listing the badge and the discarded job",
        Duration::from_secs(60),
        || async {
            let page = server.get("/").await;
            (page.body.contains("id=\"badges\"") && page.body.contains("id=\"errors\""))
                .then_some(page)
        },
    )
    .await;
    assert_eq!(page.status, 200);
    for raw in [
        "<script>alert(",
        "<img src=x",
        "</figcaption></figure><script",
    ] {
        assert!(
            !page.body.contains(raw),
            "unescaped {raw:?} on the live page"
        );
    }
    for shown in ["alert(1)", "onerror=alert(2)", "alert(3)"] {
        assert!(page.body.contains(shown), "{shown:?} not shown as text");
    }
    // Exactly the page's own script and images: none injected.
    assert_eq!(page.body.matches("<script").count(), 1, "{}", page.body);
    assert_eq!(page.body.matches("<img ").count(), 1);

    let svg = server.get("/badges/h1/preview.svg").await;
    assert_eq!(svg.status, 200);
    assert!(
        !svg.body.contains("<script") && !svg.body.contains("<img"),
        "{}",
        svg.body
    );
    for path in [
        "/badges/../../etc/passwd/preview.svg",
        "/badges/..%2F..%2Fetc%2Fpasswd/preview.svg",
        "/badges/%2e%2e/preview.svg",
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status, 404, "{path}: {}", response.body);
    }

    let files: Vec<String> = std::fs::read_dir(&server.output)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["badge-h1.pdf"]);
    server.stop().await;
}

/// The credentials `authentication_guards_everything_but_healthz` serves with.
const CREDENTIALS: &str = "ops:c0rrect-h0rse-B4ttery";

#[tokio::test]
async fn authentication_guards_everything_but_healthz() {
    let server = Server::start_with_auth(CREDENTIALS).await;
    server.enqueue(badge(0)).await;
    eventually("the badge rendered", Duration::from_secs(60), || async {
        let metrics = server.metrics().await;
        (metrics["badge_forge_badges_rendered_total"] == 1.0).then_some(())
    })
    .await;
    let private = [
        "/",
        "/live",
        "/live.css",
        "/live.js",
        "/metrics",
        "/badges/b0/preview.svg",
    ];
    let wrong = [
        None,
        Some(basic("ops:c0rrect-h0rse-B4tterz")),
        Some(basic("ops:c0rrect-h0rse-B4ttery-")),
        Some(basic("Ops:c0rrect-h0rse-B4ttery")),
        Some(format!("Bearer {}", &basic(CREDENTIALS)[6..])),
    ];
    for path in private {
        for authorization in &wrong {
            let refused = get(server.address, path, authorization.as_deref()).await;
            assert_eq!(refused.status, 401, "{path} with {authorization:?}");
            assert_eq!(
                refused.header("www-authenticate"),
                Some(r#"Basic realm="badge-forge", charset="UTF-8""#),
                "browsers prompt for the credentials"
            );
            assert!(!refused.body.contains("Ada"), "{}", refused.body);
        }
        let served = server.get(path).await;
        assert_eq!(served.status, 200, "{path}: {}", served.body);
        assert_private_headers(&served, path);
    }
    // A load balancer's probe needs no credentials: it shows no personal data.
    let health = get(server.address, "/healthz", None).await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(!health.body.contains("Ada"));
    server.stop().await;
}

/// The headers that keep the page and previews out of caches, referrers and content sniffing,
/// and the page to its own script, styles and images.
fn assert_private_headers(response: &Response, path: &str) {
    assert_eq!(response.header("cache-control"), Some("no-store"), "{path}");
    assert_eq!(
        response.header("referrer-policy"),
        Some("no-referrer"),
        "{path}"
    );
    assert_eq!(
        response.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    let policy = response
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{path} has no Content-Security-Policy"));
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{path}: {policy}");
    }
    assert!(!policy.contains("unsafe"), "{path}: {policy}");
}

/// Previews are addressed by the badge id only: walking the sequential job ids finds nothing,
/// and an id no badge has is the same 404 as one no badge could have.
#[tokio::test]
async fn previews_cannot_be_enumerated_by_job_id() {
    let server = Server::start("30").await;
    for i in 0..3 {
        server.enqueue(badge(i)).await;
    }
    // An integer badge id, as the article's Python worker's args may carry it.
    server
        .enqueue(
            json!({"badge_id": 4242, "name": "Grace Hopper", "company": "Navy", "type": "speaker"}),
        )
        .await;
    eventually("the badges rendered", Duration::from_secs(60), || async {
        let metrics = server.metrics().await;
        (metrics["badge_forge_badges_rendered_total"] == 4.0).then_some(())
    })
    .await;
    let jobs: Vec<i64> = sqlx::query_scalar("SELECT id FROM oban_jobs WHERE queue = 'badges'")
        .fetch_all(&server.pool)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 4);
    let unknown = server.get("/badges/b999/preview.svg").await;
    assert_eq!(unknown.status, 404);
    for path in jobs
        .iter()
        .map(|job| format!("/badges/{job}/preview.svg"))
        .chain([
            "/badges/b.0/preview.svg".to_owned(),
            "/badges/%20b0/preview.svg".to_owned(),
        ])
    {
        let response = server.get(&path).await;
        assert_eq!(
            (response.status, &response.body),
            (unknown.status, &unknown.body),
            "{path}"
        );
    }
    for (badge, name) in [("b1", "Ada Lovelace 1"), ("4242", "Grace Hopper")] {
        let preview = server.get(&format!("/badges/{badge}/preview.svg")).await;
        assert_eq!(preview.status, 200, "{badge}");
        assert!(preview.body.contains(name), "{badge}");
        assert_private_headers(&preview, badge);
    }
    server.stop().await;
}

/// Binding beyond loopback without credentials is refused before anything starts, with one
/// message saying why and what to do; credentials or --http-public let it past that check (to
/// the missing database here).
#[test]
fn a_public_address_without_credentials_is_refused() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_badge-forge"))
            .args(["work", "--http", "0.0.0.0:0"])
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8(output.stderr).unwrap()
    };
    let refused = run(&[]);
    assert!(
        refused.starts_with("error: refusing to serve the live page, previews and metrics on 0.0.0.0:0 without authentication")
            && refused.contains("--http-auth USER:PASSWORD")
            && refused.contains("--http-public"),
        "{refused}"
    );
    assert_eq!(refused.lines().count(), 1, "one clear error: {refused}");
    for allowed in [&["--http-auth", "ops:pw"][..], &["--http-public"]] {
        let stderr = run(allowed);
        assert!(
            stderr.contains("no database given"),
            "{allowed:?}: {stderr}"
        );
    }
}
