//! Processes for the end-to-end tests: the real `badge-forge` binary, the Elixir peer, and a
//! PostgreSQL database of their own. Nothing is mocked.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use oban_core::testing::{fresh_database, poll_until};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

/// Held by the tests that drive several runtimes or measure throughput (end to end, deployments,
/// soak), in every module: on 2 cores, two of them at once would slow each other past their limits.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The `badge-forge` binary cargo built for these tests.
pub const BADGE_FORGE: &str = env!("CARGO_BIN_EXE_badge-forge");

/// The Elixir peer's entry point.
pub fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/elixir/peer.exs")
}

/// A fresh database migrated by `badge-forge migrate`, as an operator would.
pub async fn database() -> (PgPool, String) {
    let (pool, url) = empty_database().await;
    let status = Command::new(BADGE_FORGE)
        .args(["migrate", "--database-url", &url])
        .stdout(Stdio::null())
        .status()
        .expect("run badge-forge migrate");
    assert!(status.success(), "badge-forge migrate failed");
    (pool, url)
}

/// A fresh database with no Oban schema yet.
pub async fn empty_database() -> (PgPool, String) {
    let url = fresh_database()
        .await
        .expect("a test database (see scripts/test)");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("connect");
    (pool, url)
}

/// A fresh output directory.
pub fn output_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bf-e2e-{name}-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `badge-forge work` process.
pub struct RustNode {
    pub name: String,
    child: Child,
}

impl RustNode {
    /// Starts `badge-forge work` on `url` writing into `output`, with `extra` flags; its
    /// producers poll every half second.
    pub fn start(url: &str, output: &Path, name: &str, extra: &[&str]) -> Self {
        Self::start_polling(url, output, name, 0.5, extra)
    }

    /// [`RustNode::start`] with producers that look for jobs themselves only every
    /// `poll_seconds`: slower than a test's bound, only a notification wakes them in time.
    pub fn start_polling(
        url: &str,
        output: &Path,
        name: &str,
        poll_seconds: f64,
        extra: &[&str],
    ) -> Self {
        let child = Command::new(BADGE_FORGE)
            .args(["work", "--database-url", url, "--node", name, "--output"])
            .arg(output)
            .args(["--poll-interval", &poll_seconds.to_string()])
            .args(["--grace-period", "10"])
            .args(extra)
            // Discarded bad input logs a warning per job; the tests assert on the rows instead.
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .spawn()
            .expect("start badge-forge work");
        Self {
            name: name.to_owned(),
            child,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL: the node dies mid-flight, as in a crash.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL badge-forge");
        self.child.wait().expect("reap badge-forge");
    }

    /// SIGTERM, then wait at most `limit` for the exit.
    pub fn terminate(mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        signal(self.pid(), "-TERM");
        let status = wait_at_most(&mut self.child, limit)
            .unwrap_or_else(|| panic!("badge-forge did not exit within {limit:?} of SIGTERM"));
        (status, started.elapsed())
    }
}

impl Drop for RustNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, at most `limit`: its status, or `None` if it still runs then
/// (the caller says what that means, and whether to kill it).
pub fn wait_at_most(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child process") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` (e.g. `-TERM`) to process `pid` with kill(1).
pub fn signal(pid: i32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Runs `command` (a `badge-forge work`) until it has printed a line containing each of
/// `until`, then stops it with SIGTERM and checks that it exits 0; returns all it printed,
/// stdout and stderr. Include `READY` unless a later line implies it: a SIGTERM before the
/// node handles signals kills it.
pub fn run_until(mut command: Command, until: &[&str]) -> String {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the badge-forge binary runs");
    let (lines, received) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    drop(lines);
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut unseen = until.to_vec();
    while !unseen.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                unseen.retain(|needle| !line.contains(needle));
                printed.push_str(&line);
                printed.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("badge-forge never printed {unseen:?}; it printed:\n{printed}");
            }
        }
    }
    signal(child.id() as i32, "-TERM");
    let status = child.wait().unwrap();
    printed.extend(received.iter().flat_map(|line| [line, "\n".to_owned()]));
    assert!(status.success(), "{status}; it printed:\n{printed}");
    printed
}

/// What `badge-forge work` logs once it handles SIGTERM.
pub const READY: &str = "ready; stop with SIGINT or SIGTERM";

/// The Elixir peer (`e2e/elixir/peer.exs`), reading its JSON event lines from stdout.
pub struct ElixirPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
    /// Forwards stdout's JSON lines to `events` until stdout closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ElixirPeer {
    /// Starts a long-running peer command (`print-center`, `coexist`) and waits until it is
    /// ready (LISTEN confirmed).
    pub fn start(url: &str, args: &[&str]) -> Self {
        let mut peer = Self::spawn(url, args);
        peer.wait_for("ready", Duration::from_secs(60));
        peer
    }

    fn spawn(url: &str, args: &[&str]) -> Self {
        let mut child = Command::new("elixir")
            .arg(peer_script())
            .args(args)
            .env("DATABASE_URL", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run elixir ({error}); run scripts/ensure-deps to install elixir and erlang-p1-pgsql"));
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && tx.send(event).is_err()
                {
                    break;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            events,
            reader: Some(reader),
        }
    }

    /// Runs a one-shot peer command (`enqueue ...`) to completion; returns its events.
    pub fn run(url: &str, args: &[&str]) -> Vec<Value> {
        let mut peer = Self::spawn(url, args);
        drop(peer.stdin.take());
        let status = peer.child.wait().expect("wait for the elixir peer");
        assert!(status.success(), "elixir peer {args:?} failed: {status}");
        // Every line is forwarded once stdout is closed and read to its end.
        peer.reader.take().map(std::thread::JoinHandle::join);
        peer.events.try_iter().collect()
    }

    /// Waits for the next event named `name`, returning it.
    pub fn wait_for(&mut self, name: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if event["event"] == name => return event,
                Ok(_) => {}
                Err(_) => panic!("the Elixir peer sent no {name:?} event within {limit:?}"),
            }
        }
    }

    /// Closes stdin (the peer's cue to stop) and returns its `stopped` event.
    pub fn stop(mut self) -> Value {
        drop(self.stdin.take());
        let stopped = self.wait_for("stopped", Duration::from_secs(30));
        let status = self.child.wait().expect("wait for the elixir peer");
        assert!(status.success(), "the Elixir peer exited with {status}");
        stopped
    }
}

impl Drop for ElixirPeer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `query` (one bigint) until it equals `want`; panics after `limit` saying `what`.
/// Returns how long it took.
pub async fn wait_for_count(
    pool: &PgPool,
    what: &str,
    query: &str,
    want: i64,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let got = Cell::new(0);
    let reached = poll_until(limit, || async {
        got.set(count(pool, query).await);
        (got.get() == want).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "timed out after {limit:?} waiting for {what}: {} of {want}",
        got.get()
    );
    started.elapsed()
}

/// One bigint.
pub async fn count(pool: &PgPool, query: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The text poppler extracts from a PDF.
pub fn pdftotext(path: &str) -> String {
    let out = Command::new("pdftotext")
        .args([path, "-"])
        .output()
        .expect("pdftotext (poppler-utils) must be installed: run scripts/ensure-deps");
    assert!(out.status.success(), "pdftotext failed on {path}");
    String::from_utf8(out.stdout).unwrap()
}

/// How a drained batch of badges ended, as the shared table records it.
pub struct BadgeTally {
    /// Completed badge jobs that needed one attempt only (the rest were rendered again).
    pub first_attempt: i64,
    /// Badge jobs per node that ran them last (`attempted_by[1]`), by node name.
    pub by_node: Vec<(String, i64)>,
}

/// Asserts that `expected` badge jobs completed, none is left executing, scheduled or
/// retryable, and there is exactly one `BadgeForge.PrintCenter` confirmation per completed badge,
/// naming its badge and pointing at a PDF on disk.
pub async fn assert_confirmed_once(pool: &PgPool, expected: i64) -> BadgeTally {
    let (completed, first_attempt): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE attempt = 1) FROM oban_jobs \
         WHERE queue = 'badges' AND state = 'completed'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(completed, expected, "badge jobs completed");
    let leftover = count(
        pool,
        "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' \
         AND state NOT IN ('completed', 'discarded')",
    )
    .await;
    assert_eq!(
        leftover, 0,
        "badge jobs left executing, scheduled or retryable"
    );
    // Elixir's malformed cases may carry the id under `badge_id`, as the article's Python reads it.
    let confirmations: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT c.args->>'path', c.args->>'name', b.args->>'name' \
         FROM oban_jobs c LEFT JOIN oban_jobs b ON b.queue = 'badges' AND b.state = 'completed' \
           AND coalesce(b.args->>'id', b.args->>'badge_id') = c.args->>'id' \
         WHERE c.queue = 'printing' AND c.worker = 'BadgeForge.PrintCenter'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        confirmations.len() as i64,
        expected,
        "exactly one confirmation per badge"
    );
    for (path, confirmed_name, badge_name) in confirmations {
        assert_eq!(
            Some(&confirmed_name),
            badge_name.as_ref(),
            "the confirmation for {path} names its badge"
        );
        let head = std::fs::read(&path).unwrap_or_default();
        assert!(head.starts_with(b"%PDF-"), "{path} is not a PDF");
    }
    let by_node = sqlx::query_as(
        "SELECT attempted_by[1], count(*) FROM oban_jobs WHERE queue = 'badges' \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    BadgeTally {
        first_attempt,
        by_node,
    }
}

/// How many badges the Elixir peer's PrintCenter has printed (its `print_log` rows).
pub const PRINTED: &str = "SELECT count(*) FROM print_log";

/// Asserts that the Elixir peer's PrintCenter printed each of `expected` badges exactly once
/// and completed every confirmation job.
pub async fn assert_printed_once(pool: &PgPool, expected: i64) {
    let (prints, reprints, distinct): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE prints > 1), count(DISTINCT id) FROM print_log",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (prints, reprints, distinct),
        (expected, 0, expected),
        "prints, reprints, distinct ids"
    );
    let unprinted = count(
        pool,
        "SELECT count(*) FROM oban_jobs WHERE queue = 'printing' AND state <> 'completed'",
    )
    .await;
    assert_eq!(unprinted, 0, "confirmations the peer did not complete");
}

/// A TCP port on 127.0.0.1 where nothing listens (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP response, read whole.
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The value of header `name`, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A plain HTTP/1.1 GET (the server sends Content-Length; the connection is closed after),
/// with this `Authorization` header if any.
pub async fn get(address: SocketAddr, path: &str, authorization: Option<&str>) -> Response {
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
