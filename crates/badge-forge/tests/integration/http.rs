//! `badge-forge work --http` as a process against a real PostgreSQL: `/metrics` parses as
//! Prometheus text and its numbers follow the jobs, `/healthz` fails once the LISTEN
//! connection has been gone longer than the threshold and recovers, the live page, loaded
//! in headless Chromium while jobs run, shows numbers that move, and attendees' names are
//! shown only to those with the credentials, and never in a metric's label.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use badge_forge::worker::QUEUE_LIMIT;
use oban_core::temp_postgres::fresh_database;
use oban_core::{Prefix, schema};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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

    async fn metrics(&self) -> BTreeMap<String, f64> {
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

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The `Authorization` header value for `credentials` (`USER:PASSWORD`).
fn basic(credentials: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// A plain HTTP/1.1 GET (the server sends Content-Length; the connection is closed after),
/// with this `Authorization` header if any.
async fn get(address: SocketAddr, path: &str, authorization: Option<&str>) -> Response {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let authorization =
        authorization.map_or(String::new(), |value| format!("Authorization: {value}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("a response within 10 s")
        .unwrap();
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("headers end");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|line| {
            let (key, value) = line.split_once(':').unwrap();
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Parses the Prometheus text format strictly enough to catch what scrapers reject: every
/// sample belongs to a family declared once with `# TYPE` (histogram and summary samples by
/// their suffixes), names and label names are valid, label values are quoted and escaped,
/// values are numbers, and no series repeats. Returns `name{labels}` → value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |name: &str| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(valid_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                families.insert(name.to_owned(), kind.to_owned()).is_none(),
                "family declared twice: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(valid_name(rest.split(' ').next().unwrap()), "{line}");
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "{line}");
        let family = families
            .iter()
            .find(|(family, kind)| {
                name == family.as_str()
                    || match kind.as_str() {
                        "histogram" => ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|suffix| name == format!("{family}{suffix}")),
                        "summary" => ["_sum", "_count"]
                            .iter()
                            .any(|suffix| name == format!("{family}{suffix}")),
                        _ => false,
                    }
            })
            .unwrap_or_else(|| panic!("sample without a declared family: {line}"));
        if family.1 == "counter" {
            assert!(value >= 0.0, "{line}");
        }
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                check_labels(labels, line);
            }
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "series repeated: {line}"
        );
    }
    samples
}

/// `{key="value",...}` with escaped values; returns the values as written.
fn check_labels<'a>(labels: &'a str, line: &str) -> Vec<&'a str> {
    let inner = labels
        .strip_prefix('{')
        .and_then(|labels| labels.strip_suffix('}'))
        .unwrap_or_else(|| panic!("labels not braced: {line}"));
    let mut rest = inner;
    let mut keys = BTreeSet::new();
    let mut values = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && keys.insert(key),
            "{line}"
        );
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let (_, escaped) = chars.next().unwrap();
                    assert!(matches!(escaped, '\\' | '"' | 'n'), "{line}");
                }
                Some((at, '"')) => break at,
                Some(_) => {}
                None => panic!("unterminated label value: {line}"),
            }
        };
        values.push(&after[..end]);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    values
}

/// Every label value of every series.
fn label_values(metrics: &BTreeMap<String, f64>) -> Vec<&str> {
    metrics
        .keys()
        .filter_map(|series| Some((series, &series[series.find('{')?..])))
        .flat_map(|(series, labels)| check_labels(labels, series))
        .collect()
}

const WORKER: &str = "badge_forge.generator.GenerateBadge";

fn jobs_total(metrics: &BTreeMap<String, f64>, state: &str) -> f64 {
    let key =
        format!("badge_forge_jobs_total{{queue=\"badges\",worker=\"{WORKER}\",state=\"{state}\"}}");
    metrics.get(&key).copied().unwrap_or(0.0)
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    assert!(after["badge_forge_ack_duration_seconds_count"] >= 1.0);
    assert!(after["badge_forge_claimed_jobs_total"] >= 21.0);
    assert!(
        after["badge_forge_claim_duration_seconds_count"]
            > before["badge_forge_claim_duration_seconds_count"]
    );
    assert!(after["badge_forge_claim_duration_seconds_sum"] > 0.0);

    // The duration histogram: cumulative buckets ending in +Inf = count, sum positive.
    let labels = format!("queue=\"badges\",worker=\"{WORKER}\",state=\"completed\"");
    let buckets: Vec<f64> = after
        .iter()
        .filter(|(series, _)| {
            series.starts_with(&format!(
                "badge_forge_job_duration_seconds_bucket{{{labels},le="
            ))
        })
        .map(|(_, value)| *value)
        .collect();
    assert_eq!(buckets.len(), 13);
    let infinite =
        after[&format!("badge_forge_job_duration_seconds_bucket{{{labels},le=\"+Inf\"}}")];
    let count = after[&format!("badge_forge_job_duration_seconds_count{{{labels}}}")];
    assert_eq!((infinite, count), (20.0, 20.0));
    let mut finite: Vec<(f64, f64)> = after
        .iter()
        .filter_map(|(series, value)| {
            let le = series
                .strip_prefix(&format!(
                    "badge_forge_job_duration_seconds_bucket{{{labels},le=\""
                ))?
                .strip_suffix("\"}")?;
            le.parse::<f64>().ok().map(|le| (le, *value))
        })
        .collect();
    finite.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        finite.windows(2).all(|pair| pair[0].1 <= pair[1].1),
        "{finite:?}"
    );
    assert!(after[&format!("badge_forge_job_duration_seconds_sum{{{labels}}}")] > 0.0);

    // Queue depth from the database (sampled every 2 s): the badges are done and their
    // confirmations wait for Elixir's PrintCenter.
    let depth = |queue: &str, state: &str| {
        format!("badge_forge_queue_jobs{{queue=\"{queue}\",state=\"{state}\"}}")
    };
    let sampled = eventually(
        "the depth sample to catch up",
        Duration::from_secs(10),
        || async {
            let metrics = server.metrics().await;
            (metrics.get(&depth("printing", "available")) == Some(&20.0)).then_some(metrics)
        },
    )
    .await;
    assert_eq!(sampled[&depth("badges", "available")], 0.0);
    assert_eq!(sampled[&depth("badges", "executing")], 0.0);
    let pool = after["badge_forge_db_pool_connections{state=\"in_use\"}"]
        + after["badge_forge_db_pool_connections{state=\"idle\"}"];
    assert!((1.0..=10.0).contains(&pool), "{pool}");
    assert_eq!(after["badge_forge_up{component=\"database\"}"], 1.0);
    assert_eq!(after["badge_forge_leader"], 1.0);

    // No label carries an attendee's name, company or badge id.
    let values = label_values(&sampled);
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

#[tokio::test]
async fn healthz_fails_when_listen_is_gone_longer_than_the_threshold() {
    let server = Server::start("2").await;
    let healthz = || async {
        let response = server.get("/healthz").await;
        assert_eq!(response.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["threshold_seconds"], 2.0);
        (response.status, body)
    };
    eventually(
        "a healthy node hearing its LISTEN",
        Duration::from_secs(20),
        || async {
            let (status, body) = healthz().await;
            (status == 200 && body["listener"]["up"] == true).then_some(())
        },
    )
    .await;

    // Kill the LISTEN connection and keep it from coming back (new connections to this
    // database are refused; the pool's open connections keep working).
    let options: PgConnectOptions = server.url.parse().unwrap();
    let database = options.get_database().unwrap().to_owned();
    // From another database: PostgreSQL refuses to lock out the current one.
    let mut admin = PgConnection::connect_with(&options.database("postgres"))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let killed_at = tokio::time::Instant::now();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND query ILIKE 'LISTEN%'",
    )
    .bind(&database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 1, "the node's LISTEN connection");

    // Down, but within the threshold: still 200.
    let (status, body) = eventually("the listener to notice", Duration::from_secs(2), || async {
        let (status, body) = healthz().await;
        (body["listener"]["up"] == false).then_some((status, body))
    })
    .await;
    assert!(killed_at.elapsed() < Duration::from_secs(2));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");

    // Past the threshold: 503, blaming the listener, not the database.
    let body = eventually("503", Duration::from_secs(10), || async {
        let (status, body) = healthz().await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(killed_at.elapsed() > Duration::from_secs(2));
    assert_eq!(body["status"], "failing");
    assert!(
        body["listener"]["down_seconds"].as_f64().unwrap() >= 2.0,
        "{body}"
    );
    assert_eq!(body["database"]["up"], true, "{body}");
    let metrics = server.metrics().await;
    assert_eq!(metrics["badge_forge_up{component=\"listener\"}"], 0.0);

    // Connections allowed again: the listener reconnects and the node is healthy.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    eventually("recovery", Duration::from_secs(30), || async {
        let (status, body) = healthz().await;
        (status == 200 && body["listener"]["up"] == true).then_some(())
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
