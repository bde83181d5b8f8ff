//! A throwaway PostgreSQL cluster for tests, benchmarks and demos (cargo feature `testing`).
//!
//! [`TempPostgres::start`] runs `initdb` into a fresh directory under the temp dir and starts
//! the server on `127.0.0.1` and a free port, trusting every local connection as the superuser
//! `postgres`. PostgreSQL refuses to run as root, so when the process is root the cluster runs as
//! the `postgres` account (or `nobody` when there is none).
//!
//! The cluster is tuned for speed, not durability: `fsync`, `synchronous_commit` and
//! `full_page_writes` are off (a crash may corrupt it, which does not matter for a cluster that
//! is deleted afterwards), `max_connections` is 200 so that many test pools fit, and
//! `shared_buffers` is 256 MB so that benchmark tables stay in memory. Never point anything
//! that matters at it.
//!
//! Cleanup does not depend on `Drop` running: a small watchdog process (a shell, running as the
//! cluster's account) holds the read end of a pipe whose write end only this process has. When
//! this process ends in any way (normal exit, panic, SIGKILL) the pipe closes, and the watchdog
//! stops the server (fast shutdown) and deletes the directory. `Drop` simply closes the pipe
//! early and waits for the watchdog. The watchdog and the server sit in their own process
//! groups, so a Ctrl-C aimed at this process does not take the database away from under a
//! graceful shutdown.
//!
//! Fault tests can configure a cluster before it starts ([`TempPostgres::builder`]: extra
//! settings, files in the data directory, `pg_hba.conf` rules, TLS with a certificate made up
//! on the spot by [`TestCertificates`]), and stop, start or restart a running one in any
//! shutdown mode ([`TempPostgres::restart`]), always on the same port so that clients can
//! reconnect to the same URL.

use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, PgConnection};
use tokio::sync::OnceCell;

use crate::{Error, Result};

/// Settings appended to the cluster's `postgresql.conf` (see the module docs for why).
const TUNING: &str = "\
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
";

const CREATE_LOGIN_ROLE: &str = include_str!("../sql/create_login_role.sql");

/// How many free ports to try before giving up (another process may grab a port between our
/// probe and the server's bind).
const START_ATTEMPTS: usize = 5;

/// The watchdog: wait for EOF on stdin (this process gone or `Drop`), then stop the server and
/// delete the directory. `$1` is pg_ctl, `$2` the cluster's root directory.
const WATCHDOG_SCRIPT: &str = r#"cat >/dev/null 2>&1
"$1" -D "$2/data" -m fast -w -t 60 stop >/dev/null 2>&1
rm -rf "$2""#;

/// A private PostgreSQL cluster in a temporary directory, removed when dropped or when this
/// process dies.
#[derive(Debug)]
pub struct TempPostgres {
    url: String,
    root: PathBuf,
    port: u16,
    bindir: PathBuf,
    account: Option<Account>,
    watchdog: Child,
}

/// How [`TempPostgres::stop`] and [`TempPostgres::restart`] shut the server down (`pg_ctl -m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Waits for every client to disconnect.
    Smart,
    /// Rolls back open transactions and disconnects clients, then shuts down cleanly.
    Fast,
    /// Kills every server process at once, like a crash; the next start runs crash recovery.
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// Configures a [`TempPostgres`] before it starts; see [`TempPostgres::builder`].
#[derive(Clone, Debug, Default)]
pub struct TempPostgresBuilder {
    settings: String,
    files: Vec<(String, Vec<u8>)>,
    hba: Vec<String>,
}

impl TempPostgresBuilder {
    /// Adds `name = value` to `postgresql.conf`, after (and so overriding) the default tuning,
    /// e.g. `.setting("max_connections", "20")` or `.setting("ssl", "on")`. `value` is written
    /// as is: quote strings yourself (`"'server.crt'"`).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push_str(&format!("{name} = {value}\n"));
        self
    }

    /// Writes `contents` to `name` inside the data directory, readable only by the server's
    /// account (as PostgreSQL requires of a TLS key), e.g. `server.crt` and `server.key`.
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.to_owned(), contents.into()));
        self
    }

    /// Puts `line` into `pg_hba.conf` before the default rules (which trust every local
    /// connection), so it takes precedence: e.g.
    /// `"host all app 127.0.0.1/32 scram-sha-256"` makes role `app` log in with its password,
    /// `"hostnossl all app 0.0.0.0/0 reject"` forces it onto TLS. Lines keep their order.
    pub fn hba(mut self, line: &str) -> Self {
        self.hba.push(line.to_owned());
        self
    }

    /// Serves TLS with `certificates` (`ssl = on`, the server's key pair in the data
    /// directory). Plain connections are still accepted unless a rule refuses them, e.g.
    /// `.hba("hostnossl all all 0.0.0.0/0 reject")`.
    pub fn tls(self, certificates: &TestCertificates) -> Self {
        self.file("server.crt", certificates.server_cert_pem.as_bytes())
            .file("server.key", certificates.server_key_pem.as_bytes())
            .setting("ssl", "on")
            .setting("ssl_cert_file", "'server.crt'")
            .setting("ssl_key_file", "'server.key'")
    }

    /// Creates and starts the cluster; see [`TempPostgres::start`].
    pub fn start(self) -> Result<TempPostgres> {
        TempPostgres::start_with(self)
    }
}

/// A certificate authority made up on the spot and a server certificate it signed for
/// `localhost` and `127.0.0.1`, for [`TempPostgresBuilder::tls`]. The keys are P-256; both
/// certificates are valid for two days. Never trust it outside a test.
#[derive(Clone)]
pub struct TestCertificates {
    /// The authority's certificate (PEM): what a client passes as `sslrootcert` for
    /// `sslmode=verify-full`.
    pub ca_pem: String,
    /// The server's certificate (PEM), signed by the authority.
    pub server_cert_pem: String,
    /// The server's private key (PEM).
    server_key_pem: String,
}

impl std::fmt::Debug for TestCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCertificates")
            .field("ca_pem", &self.ca_pem)
            .field("server_cert_pem", &self.server_cert_pem)
            .finish_non_exhaustive()
    }
}

/// The server certificate's extensions: what rustls (webpki) insists on for a server: the
/// names in `subjectAltName` (it ignores the common name), not a CA, usable for TLS servers.
const SERVER_EXTENSIONS: &str = "\
subjectAltName = DNS:localhost, IP:127.0.0.1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
";

impl TestCertificates {
    /// Makes a fresh authority and server certificate with the `openssl` command line tool
    /// (in a scratch directory, removed afterwards). Blocks for a fraction of a second.
    pub fn generate() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "oban-tls-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| failure(format!("could not create {}: {e}", dir.display())))?;
        let generated = Self::generate_in(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        generated
    }

    fn generate_in(dir: &Path) -> Result<Self> {
        const P256: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1";
        // `command` is split on spaces: no argument below contains one.
        let openssl = |command: &str| -> Result<()> {
            let output = run(
                Command::new("openssl")
                    .args(command.split(' '))
                    .current_dir(dir),
                "openssl (install it, e.g. `apt-get install openssl`)",
            )?;
            if output.status.success() {
                Ok(())
            } else {
                Err(failure(format!(
                    "openssl {command} failed: {}",
                    output_text(&output)
                )))
            }
        };
        // A name of its own: verifiers look an issuer up by name, so two authorities of one
        // name would fail with a bad signature instead of an unknown issuer.
        openssl(&format!(
            "req -x509 -new -nodes -days 2 {P256} -keyout ca.key -out ca.pem \
             -subj /CN=oban-core-test-CA-{:08x} -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign",
            rand::random::<u32>()
        ))?;
        openssl(&format!(
            "req -new -nodes {P256} -keyout server.key -out server.csr -subj /CN=localhost"
        ))?;
        std::fs::write(dir.join("server.ext"), SERVER_EXTENSIONS)
            .map_err(|e| failure(format!("could not write server.ext: {e}")))?;
        openssl(
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
             -extfile server.ext -out server.crt",
        )?;
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| failure(format!("could not read the generated {name}: {e}")))
        };
        Ok(Self {
            ca_pem: read("ca.pem")?,
            server_cert_pem: read("server.crt")?,
            server_key_pem: read("server.key")?,
        })
    }
}

/// The OS account that owns and runs the cluster.
#[derive(Debug, Clone)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

impl TempPostgres {
    /// Creates and starts a cluster; takes about a second.
    ///
    /// This blocks (it runs `initdb` and waits for the server), so from async code call it
    /// inside `tokio::task::spawn_blocking`.
    pub fn start() -> Result<Self> {
        Self::start_with(TempPostgresBuilder::default())
    }

    /// A cluster with extra settings, files or `pg_hba.conf` rules:
    /// `TempPostgres::builder().setting("max_connections", "20").start()`.
    pub fn builder() -> TempPostgresBuilder {
        TempPostgresBuilder::default()
    }

    fn start_with(options: TempPostgresBuilder) -> Result<Self> {
        let bindir = find_bindir()?;
        let account = cluster_account()?;
        let root = create_root(account.as_ref())?;

        // The watchdog comes first so that every later failure is cleaned up by it too.
        let watchdog = as_account(
            Command::new("sh")
                .arg("-c")
                .arg(WATCHDOG_SCRIPT)
                .arg("oban-temp-postgres-watchdog")
                .arg(bindir.join("pg_ctl"))
                .arg(&root)
                .current_dir(&root)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0),
            account.as_ref(),
        )
        .spawn()
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(&root);
            failure(format!("could not spawn the watchdog shell: {e}"))
        })?;
        let mut cluster = Self {
            url: String::new(),
            root,
            port: 0,
            bindir,
            account,
            watchdog,
        };
        let (bindir, account) = (cluster.bindir.clone(), cluster.account.clone());

        let data = cluster.root.join("data");
        let initdb = run(
            as_account(
                Command::new(bindir.join("initdb"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
                    .args(["--no-sync", "--no-instructions"])
                    .current_dir(&cluster.root),
                account.as_ref(),
            ),
            "initdb",
        )?;
        if !initdb.status.success() {
            return Err(failure(format!("initdb failed: {}", output_text(&initdb))));
        }

        let conf = format!(
            "\n# oban-core temp_postgres\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n{TUNING}{}",
            cluster.root.display(),
            options.settings
        );
        append(&data.join("postgresql.conf"), &conf)?;
        for (name, contents) in &options.files {
            write_private(&data.join(name), contents, account.as_ref())?;
        }
        if !options.hba.is_empty() {
            let hba = data.join("pg_hba.conf");
            let defaults = std::fs::read_to_string(&hba)
                .map_err(|e| failure(format!("could not read {}: {e}", hba.display())))?;
            let rules = format!("{}\n{defaults}", options.hba.join("\n"));
            write_private(&hba, rules.as_bytes(), account.as_ref())?;
        }

        for attempt in 1..=START_ATTEMPTS {
            cluster.port = free_port()?;
            let started = cluster.pg_ctl_start()?;
            if started.status.success() {
                cluster.url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
                return Ok(cluster);
            }
            let server_log = cluster.log();
            let port_taken = server_log.contains("could not bind");
            if !port_taken || attempt == START_ATTEMPTS {
                return Err(failure(format!(
                    "the server did not start: {}\n--- server log ---\n{}",
                    output_text(&started),
                    tail(&server_log, 40)
                )));
            }
        }
        unreachable!("the last attempt always returns")
    }

    /// The superuser URL of the `postgres` database: `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates role `role`, which logs in with `password`, and a database `database` it owns:
    /// an application's account as an operator sets one up. A [`TempPostgresBuilder::hba`] rule
    /// such as `"host all app 127.0.0.1/32 scram-sha-256"` makes the server ask for the password.
    ///
    /// The password stands in no statement text that a log could show: it travels as a
    /// connection setting, and the server quotes it (the names go the same way, and to
    /// `createdb`).
    pub async fn create_login_role(
        &self,
        role: &str,
        password: &str,
        database: &str,
    ) -> Result<()> {
        let mut conn = self
            .url
            .parse::<PgConnectOptions>()?
            .options([
                ("oban_testing.role", role),
                ("oban_testing.password", password),
            ])
            .disable_statement_logging()
            .connect()
            .await?;
        sqlx::raw_sql(CREATE_LOGIN_ROLE).execute(&mut conn).await?;
        conn.close().await?;
        let port = self.port.to_string();
        let created = tokio::process::Command::new(self.bindir.join("createdb"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--username",
                "postgres",
            ])
            .args(["--owner", role, "--", database])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| failure(format!("could not run createdb: {e}")))?;
        if !created.status.success() {
            return Err(failure(format!(
                "createdb {database} failed: {}",
                output_text(&created)
            )));
        }
        Ok(())
    }

    /// The cluster's directory (data directory and server log).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The TCP port the server listens on (on 127.0.0.1); it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default()
    }

    /// Stops the server (`pg_ctl stop -m MODE`) and waits until it is down. The data stays;
    /// [`TempPostgres::start_again`] brings the server back. Blocks like [`TempPostgres::start`].
    pub fn stop(&self, mode: StopMode) -> Result<()> {
        let stopped = self.pg_ctl(
            &["-w", "-t", "60", "-m", mode.as_str(), "stop"],
            "pg_ctl stop",
        )?;
        if !stopped.status.success() {
            return Err(failure(format!(
                "pg_ctl stop -m {} failed: {}",
                mode.as_str(),
                output_text(&stopped)
            )));
        }
        Ok(())
    }

    /// Starts a stopped server again on the same port and waits until it accepts connections
    /// (after crash recovery, if it was stopped with [`StopMode::Immediate`]).
    pub fn start_again(&self) -> Result<()> {
        let started = self.pg_ctl_start()?;
        if !started.status.success() {
            return Err(failure(format!(
                "the server did not start again: {}\n--- server log ---\n{}",
                output_text(&started),
                tail(&self.log(), 40)
            )));
        }
        Ok(())
    }

    /// `pg_ctl restart -m MODE`: stops the server as `mode` says, starts it again on the same
    /// port, and waits until it accepts connections. Every client connection is broken.
    pub fn restart(&self, mode: StopMode) -> Result<()> {
        self.stop(mode)?;
        self.start_again()
    }

    fn pg_ctl_start(&self) -> Result<Output> {
        let log = self.root.join("postgres.log");
        let port = format!("-p {}", self.port);
        let log = log
            .to_str()
            .ok_or_else(|| failure("non-UTF-8 temp dir".into()))?;
        self.pg_ctl(
            &["-l", log, "-w", "-t", "60", "-o", &port, "start"],
            "pg_ctl start",
        )
    }

    /// Runs `pg_ctl -D <data> ARGS` as the cluster's account, in its own process group.
    fn pg_ctl(&self, args: &[&str], what: &str) -> Result<Output> {
        run(
            as_account(
                Command::new(self.bindir.join("pg_ctl"))
                    .arg("-D")
                    .arg(self.root.join("data"))
                    .args(args)
                    .current_dir(&self.root)
                    .process_group(0),
                self.account.as_ref(),
            ),
            what,
        )
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // Closing the pipe is the watchdog's cue; waiting makes the shutdown synchronous.
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// The cluster shared by every [`fresh_database`] call of this process when `DATABASE_URL` is
/// unset. Statics are never dropped: the watchdog removes it when the process exits.
static SHARED: OnceCell<TempPostgres> = OnceCell::const_new();

/// Counts databases made by this process, to keep names short and unique together with the pid.
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A fresh empty database for one test: on `$DATABASE_URL`'s server when that is set, otherwise
/// on one process-wide [`TempPostgres`] started on first use. Returns its URL.
///
/// The database is named `oban_test_<random>`. On a `$DATABASE_URL` server it is left behind
/// (the caller may drop it); the process-wide cluster disappears with the process.
pub async fn fresh_database() -> Result<String> {
    let server = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => SHARED
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(TempPostgres::start)
                    .await
                    .map_err(|e| failure(format!("the start-up task failed: {e}")))?
            })
            .await?
            .url()
            .to_owned(),
    };

    let name = format!(
        "oban_test_{}_{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let mut conn = PgConnection::connect(&server).await?;
    #[expect(
        clippy::disallowed_methods,
        reason = "test clusters: the name is oban_test_<pid>_<counter>_<random u32>"
    )]
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await?;
    conn.close().await?;
    Ok(with_database(&server, &name))
}

/// `url` with its database (the path) replaced by `database`, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A database-unreachable error carrying `message`.
fn failure(message: String) -> Error {
    Error::Database(sqlx::Error::Io(io::Error::other(format!(
        "temporary PostgreSQL: {message}"
    ))))
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `pg_config --bindir` when it has
/// them, else the newest `/usr/lib/postgresql/*/bin`, else the directory of `initdb` on `PATH`.
fn find_bindir() -> Result<PathBuf> {
    let has_server = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };

    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }

    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return Ok(dir);
    }

    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has_server(dir)) {
        return Ok(dir);
    }

    Err(failure(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found via `pg_config --bindir`, \
         /usr/lib/postgresql/*/bin or PATH; run `scripts/ensure-deps` \
         (or `apt-get install postgresql`), or set DATABASE_URL to an existing server"
            .to_owned(),
    ))
}

/// `None` when this process may run PostgreSQL itself; the unprivileged account to use when it
/// is root.
fn cluster_account() -> Result<Option<Account>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| failure(format!("running as root and cannot read /etc/passwd: {e}")))?;
    let lookup = |wanted: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || fields[0] != wanted {
                return None;
            }
            Some(Account {
                name: wanted.to_owned(),
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
            })
        })
    };
    lookup("postgres")
        .or_else(|| lookup("nobody"))
        .map(Some)
        .ok_or_else(|| {
            failure(
                "running as root, and neither a `postgres` nor a `nobody` account exists \
                 to run the server as"
                    .to_owned(),
            )
        })
}

/// Makes `<tmp>/oban-pg-<pid>-<n>-<random>`, private to the cluster's account.
fn create_root(account: Option<&Account>) -> Result<PathBuf> {
    static CLUSTERS: AtomicU32 = AtomicU32::new(0);
    // As root the account must be able to reach the directory; /tmp always lets it, while a
    // TMPDIR inside root's home might not. The name stays short: socket paths are limited to
    // about 100 bytes.
    let base = if account.is_some() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let root = base.join(format!(
        "oban-pg-{}-{}-{:08x}",
        std::process::id(),
        CLUSTERS.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    ));
    let setup = || -> io::Result<()> {
        std::fs::create_dir(&root)?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
        if let Some(account) = account {
            std::os::unix::fs::chown(&root, Some(account.uid), Some(account.gid))?;
        }
        Ok(())
    };
    setup().map_err(|e| {
        let _ = std::fs::remove_dir_all(&root);
        failure(format!("could not create {}: {e}", root.display()))
    })?;
    Ok(root)
}

/// Runs `command` as `account` (when given).
fn as_account<'a>(command: &'a mut Command, account: Option<&Account>) -> &'a mut Command {
    if let Some(account) = account {
        command
            .uid(account.uid)
            .gid(account.gid)
            .env("USER", &account.name)
            .env("LOGNAME", &account.name)
            .env_remove("HOME");
    }
    command
}

/// Runs `command` to completion, capturing its output.
fn run(command: &mut Command, what: &str) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failure(format!("could not run {what}: {e}")))
}

/// An OS-assigned free TCP port on 127.0.0.1.
fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| failure(format!("could not find a free port: {e}")))
}

/// Writes `contents` to `path` with mode 0600, owned by `account`.
fn write_private(path: &Path, contents: &[u8], account: Option<&Account>) -> Result<()> {
    let write = || -> io::Result<()> {
        std::fs::write(path, contents)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        if let Some(account) = account {
            std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))?;
        }
        Ok(())
    };
    write().map_err(|e| failure(format!("could not write {}: {e}", path.display())))
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| failure(format!("could not write {}: {e}", path.display())))
}

fn output_text(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text.trim().to_owned()
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use super::*;

    /// `127.0.0.1:PORT` of a cluster URL.
    fn address(url: &str) -> SocketAddr {
        let port = url.rsplit(':').next().unwrap().split('/').next().unwrap();
        format!("127.0.0.1:{port}").parse().unwrap()
    }

    /// Polls for up to 20 s until the server is gone and its directory removed.
    fn wait_until_gone(dir: &Path, address: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while dir.exists() || TcpStream::connect(address).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{} or its server outlived its owner",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[tokio::test]
    async fn starts_a_tuned_cluster_and_drop_removes_it() {
        let started = Instant::now();
        let cluster = tokio::task::spawn_blocking(TempPostgres::start)
            .await
            .unwrap()
            .unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "start took {took:?}");
        eprintln!("TempPostgres::start took {took:?}");

        let dir = cluster.dir().to_owned();
        assert!(dir.join("data").join("PG_VERSION").is_file());
        let mut conn = PgConnection::connect(cluster.url()).await.unwrap();
        let settings: Vec<String> = sqlx::query_scalar(
            "SELECT current_setting(name) FROM unnest(ARRAY['fsync', 'max_connections', \
             'listen_addresses', 'server_encoding']) AS name",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(settings, ["off", "200", "127.0.0.1", "UTF8"]);
        conn.close().await.unwrap();

        let address = address(cluster.url());
        tokio::task::spawn_blocking(move || drop(cluster))
            .await
            .unwrap();
        assert!(!dir.exists(), "drop must remove {}", dir.display());
        assert!(
            TcpStream::connect(address).is_err(),
            "drop must stop the server"
        );
    }

    /// Runs a blocking cluster operation off the async runtime.
    async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(f).await.unwrap()
    }

    #[tokio::test]
    async fn stops_starts_and_restarts_on_the_same_port_keeping_the_data() {
        let cluster = std::sync::Arc::new(blocking(TempPostgres::start).await.unwrap());
        let url = cluster.url().to_owned();
        let mut conn = PgConnection::connect(&url).await.unwrap();
        conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
            .await
            .unwrap();

        for mode in [StopMode::Fast, StopMode::Immediate] {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let restarting = cluster.clone();
            blocking(move || restarting.restart(mode)).await.unwrap();
            assert!(
                sqlx::query("SELECT 1").execute(&mut conn).await.is_err(),
                "{mode:?}: a restart breaks every connection"
            );
            conn = PgConnection::connect(&url).await.unwrap();
            let (kept, new_pid): (i32, i32) =
                sqlx::query_as("SELECT (SELECT x FROM kept), pg_backend_pid()")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            assert_eq!(kept, 42, "{mode:?}: the data survives");
            assert_ne!(pid, new_pid);
        }

        let stopping = cluster.clone();
        blocking(move || stopping.stop(StopMode::Fast))
            .await
            .unwrap();
        assert!(TcpStream::connect(address(&url)).is_err(), "stopped");
        let starting = cluster.clone();
        blocking(move || starting.start_again()).await.unwrap();
        assert!(PgConnection::connect(&url).await.is_ok(), "started again");
        assert!(cluster.log().contains("database system is ready"));
        drop(conn);
        let cluster = std::sync::Arc::into_inner(cluster).unwrap();
        blocking(move || drop(cluster)).await;
    }

    #[tokio::test]
    async fn the_builder_applies_settings_files_and_hba_rules_first() {
        let cluster = blocking(|| {
            TempPostgres::builder()
                .setting("max_connections", "17")
                .file("note.txt", "hello")
                .hba("host all locked_out 127.0.0.1/32 reject")
                .start()
        })
        .await
        .unwrap();
        let mut conn = PgConnection::connect(cluster.url()).await.unwrap();
        let max: String = sqlx::query_scalar("SHOW max_connections")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(max, "17");
        conn.execute("CREATE ROLE locked_out LOGIN").await.unwrap();
        let note = cluster.dir().join("data").join("note.txt");
        assert_eq!(std::fs::read_to_string(&note).unwrap(), "hello");
        let mode = std::fs::metadata(&note).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let as_locked_out = cluster.url().replace("postgres@", "locked_out@");
        let refused = PgConnection::connect(&as_locked_out).await.unwrap_err();
        assert!(
            refused.to_string().contains("pg_hba.conf rejects"),
            "{refused}"
        );
        blocking(move || drop(cluster)).await;
    }

    /// Set in the copy of this test binary that `a_killed_owner_leaves_nothing_behind` runs.
    const HOLDER: &str = "OBAN_TEMP_POSTGRES_HOLDER";

    #[test]
    fn a_killed_owner_leaves_nothing_behind() {
        if std::env::var_os(HOLDER).is_some() {
            // The owner's role: start a cluster, say where it is, wait for SIGKILL.
            let cluster = TempPostgres::start().unwrap();
            println!("CLUSTER {} {}", cluster.url(), cluster.dir().display());
            std::thread::sleep(Duration::from_secs(60));
            panic!("the owner was not killed");
        }

        let mut owner = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "testing::temp_postgres::tests::a_killed_owner_leaves_nothing_behind",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(HOLDER, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let line = BufReader::new(owner.stdout.take().unwrap())
            .lines()
            .map_while(|line| line.ok())
            // libtest prints the test's name on the same line, before the report.
            .find_map(|line| line.find("CLUSTER ").map(|at| line[at..].to_owned()));
        let Some(line) = line else {
            let _ = owner.kill();
            panic!(
                "the owner process did not report a cluster: {:?}",
                owner.wait()
            );
        };
        let mut fields = line.split(' ').skip(1);
        let (url, dir) = (
            fields.next().unwrap(),
            PathBuf::from(fields.next().unwrap()),
        );
        let address = address(url);
        assert!(
            TcpStream::connect(address).is_ok(),
            "the owner's server should be up"
        );

        owner.kill().unwrap(); // SIGKILL: no destructor, no atexit.
        owner.wait().unwrap();
        wait_until_gone(&dir, address);
    }

    #[test]
    fn replaces_the_database_and_keeps_the_rest() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t2"), "postgres://h/t2");
        assert_eq!(with_database("postgres://h:1/", "t3"), "postgres://h:1/t3");
        assert_eq!(
            with_database("postgresql:///db?host=/run/postgresql", "t4"),
            "postgresql:///t4?host=/run/postgresql"
        );
    }

    #[test]
    fn tails_logs() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
