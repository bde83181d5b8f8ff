//! A throwaway PgBouncer in transaction mode (cargo feature `testing`), for tests of a
//! node behind a connection pooler.
//!
//! [`TempPgBouncer::start`] writes a configuration into a fresh directory and runs Debian's
//! `pgbouncer` on `127.0.0.1` and a free port, forwarding every database to one PostgreSQL
//! server with `pool_mode = transaction` and trusting every client (the server behind it
//! decides). PgBouncer refuses to run as root, so a root process runs it as `nobody`.
//!
//! Like [`TempPostgres`](super::TempPostgres), cleanup does not depend on `Drop`: PgBouncer runs under a
//! small shell that holds the read end of a pipe only this process writes to, and stops
//! PgBouncer when the pipe closes, however this process ends.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

use crate::{Error, Result};

/// Stops PgBouncer (`$1` is its configuration) once stdin reaches end of file.
const WATCHDOG_SCRIPT: &str = r#"pgbouncer "$1" </dev/null >/dev/null 2>&1 &
bouncer=$!
read _ignored
kill "$bouncer" 2>/dev/null
wait "$bouncer"
"#;

/// A running PgBouncer; stopped and its directory removed on drop.
#[derive(Debug)]
pub struct TempPgBouncer {
    port: u16,
    dir: PathBuf,
    watchdog: Child,
}

impl TempPgBouncer {
    /// Starts PgBouncer in front of the server of `server_url` (its host and port), with at
    /// most `pool_size` server connections per database and user: fewer than the clients, so
    /// that clients really share server connections. Blocks until it accepts connections.
    pub fn start(server_url: &str, pool_size: u32) -> Result<Self> {
        let server: PgConnectOptions = server_url
            .parse()
            .map_err(|e| failure(format!("{server_url:?} is not a PostgreSQL URL: {e}")))?;
        let account = account()?;
        let dir = std::env::temp_dir().join(format!(
            "oban-pgbouncer-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&dir).map_err(|e| failure(format!("cannot create {dir:?}: {e}")))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .map_err(|e| failure(format!("no free port: {e}")))?;
        let user = server.get_username();
        let ini = format!(
            "[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {dir}/users.txt\npool_mode = transaction\n\
             default_pool_size = {pool_size}\nmax_client_conn = 1000\n\
             logfile = {dir}/pgbouncer.log\n\
             ignore_startup_parameters = extra_float_digits,search_path\n",
            host = server.get_host(),
            server_port = server.get_port(),
            dir = dir.display(),
        );
        let write = |name: &str, contents: &str| {
            let path = dir.join(name);
            std::fs::write(&path, contents)
                .map_err(|e| failure(format!("cannot write {path:?}: {e}")))
        };
        write("pgbouncer.ini", &ini)?;
        write("users.txt", &format!("\"{user}\" \"\"\n"))?;
        if let Some((uid, gid)) = account {
            for name in ["", "pgbouncer.ini", "users.txt"] {
                std::os::unix::fs::chown(dir.join(name), Some(uid), Some(gid))
                    .map_err(|e| failure(format!("cannot hand {dir:?} to nobody: {e}")))?;
            }
        }

        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("oban-temp-pgbouncer")
            .arg(dir.join("pgbouncer.ini"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = account {
            command.uid(uid).gid(gid);
        }
        let watchdog = command.spawn().map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            failure(format!("cannot start pgbouncer's shell: {e}"))
        })?;
        let bouncer = Self {
            port,
            dir,
            watchdog,
        };
        bouncer.wait_until_listening()?;
        Ok(bouncer)
    }

    /// `url` (a URL of the server behind it) pointed at PgBouncer instead: same user and
    /// database, PgBouncer's host and port.
    pub fn url(&self, url: &str) -> Result<String> {
        let authority = url
            .find("://")
            .map(|i| i + 3)
            .ok_or_else(|| failure(format!("{url:?} is not a URL")))?;
        let rest = &url[authority..];
        let host_start = rest.rfind('@').map_or(0, |i| i + 1);
        let host_end = rest[host_start..]
            .find(['/', '?'])
            .map_or(rest.len(), |i| host_start + i);
        Ok(format!(
            "{}{}127.0.0.1:{}{}",
            &url[..authority],
            &rest[..host_start],
            self.port,
            &rest[host_end..]
        ))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log so far (connections, errors, warnings such as packets from unlinked servers).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    fn wait_until_listening(&self) -> Result<()> {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(failure(format!(
                    "pgbouncer did not listen on port {} within 10 s (is Debian's pgbouncer \
                     installed? scripts/ensure-deps installs it)\n{}",
                    self.port,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for TempPgBouncer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.watchdog.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.watchdog.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `nobody`'s uid and gid when this process is root (PgBouncer refuses root), else `None`.
fn account() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| failure(format!("cannot read /etc/passwd: {e}")))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 3 && fields[0] == "nobody")
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .map(Some)
        .ok_or_else(|| failure("running as root and there is no `nobody` account".into()))
}

fn failure(message: String) -> Error {
    Error::Database(sqlx::Error::Io(io::Error::other(format!(
        "temporary PgBouncer: {message}"
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_point_at_the_bouncer() {
        let bouncer = TempPgBouncer {
            port: 6543,
            dir: PathBuf::from("/nonexistent"),
            watchdog: Command::new("true").stdin(Stdio::piped()).spawn().unwrap(),
        };
        assert_eq!(
            bouncer
                .url("postgres://postgres@127.0.0.1:5432/app?sslmode=disable")
                .unwrap(),
            "postgres://postgres@127.0.0.1:6543/app?sslmode=disable"
        );
        assert_eq!(
            bouncer.url("postgres://u:p@db.example:5432").unwrap(),
            "postgres://u:p@127.0.0.1:6543"
        );
    }
}
