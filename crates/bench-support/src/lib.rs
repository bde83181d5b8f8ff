//! Readings the workspace's benchmarks and long-running tests share, from Linux's `/proc` and
//! `getrusage`: CPU time of this process, of the child processes it ran and of a PostgreSQL
//! server on the same machine, resident memory and open files of a process, and the load
//! average. Wall-clock rates on a shared machine move with everyone else's load; CPU per job
//! much less, so the benchmarks report both.
//!
//! Every reading is `None` (or `"unknown"`) where `/proc` does not show it (another OS, a
//! server on another machine), and the benchmarks print "n/a" then.

use sqlx::PgPool;

pub mod soak;

/// The fields of `/proc/<pid>/stat` after the command name: index 0 is field 3 (`state`),
/// 1 `ppid`, 11 `utime`, 12 `stime`, 13 `cutime`, 14 `cstime`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Clock ticks per second, the unit of the `/proc/<pid>/stat` times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// User + system CPU seconds of `fields`' process, plus those of the children it has reaped
/// when `reaped_children`.
fn cpu_seconds(fields: &[String], reaped_children: bool) -> f64 {
    let field = |i: usize| -> u64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0) };
    let mut ticks = field(11) + field(12);
    if reaped_children {
        ticks += field(13) + field(14);
    }
    ticks as f64 / ticks_per_second()
}

/// CPU seconds (user + system) a process has used so far.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    Some(cpu_seconds(&stat_fields(pid)?, false))
}

/// CPU seconds (user + system) this process has used so far.
pub fn own_cpu_seconds() -> f64 {
    process_cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// User + system CPU seconds of this process's children that have ended and been waited for
/// (`getrusage(RUSAGE_CHILDREN)`): read before and after running one child, the difference is
/// what that child used, start-up included.
pub fn reaped_children_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU seconds of a whole PostgreSQL server so far: the postmaster, the children it has reaped
/// (closed connections, finished autovacuum workers) and its live children (backends, WAL
/// writer, checkpointer, autovacuum).
pub fn server_cpu_seconds(postmaster: u32) -> Option<f64> {
    let mut total = cpu_seconds(&stat_fields(postmaster)?, true);
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(fields) = stat_fields(pid)
            && fields.get(1).and_then(|ppid| ppid.parse::<u32>().ok()) == Some(postmaster)
        {
            total += cpu_seconds(&fields, false);
        }
    }
    Some(total)
}

/// The postmaster of the server `pool` talks to, when it runs on this machine: the parent of
/// this connection's backend, checked to be a PostgreSQL process serving this database.
pub async fn postmaster_pid(pool: &PgPool) -> Option<u32> {
    let (backend, database): (i32, String) =
        sqlx::query_as("SELECT pg_backend_pid(), current_database()")
            .fetch_one(pool)
            .await
            .ok()?;
    let backend = u32::try_from(backend).ok()?;
    let cmdline = std::fs::read(format!("/proc/{backend}/cmdline")).ok()?;
    if !String::from_utf8_lossy(&cmdline).contains(&database) {
        return None;
    }
    stat_fields(backend)?.get(1)?.parse().ok()
}

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn status_kib(key: &str) -> Option<u64> {
    process_status_kib(std::process::id(), key)
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `RssAnon`, ...), in KiB.
pub fn process_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| {
        line.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What a long-running process holds, for a test that it grows no more: resident memory and its
/// anonymous part (heap and stacks, what a leak grows), in KiB, and its open file descriptors.
/// `None` once the process is gone.
pub fn held_resources(pid: u32) -> Option<(u64, u64, usize)> {
    let rss = process_status_kib(pid, "VmRSS")?;
    let anon = process_status_kib(pid, "RssAnon")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, anon, fds))
}

/// Peak resident memory of this process so far (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    status_kib("VmHWM").map(|kib| kib as f64 / 1024.0)
}

/// Resets the peak (`VmHWM`) to the current resident memory, so that a run reports its own
/// peak; false if the kernel refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The 1, 5 and 15 minute load averages: how busy the machine was besides the benchmark.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work() {
        // Spin until the clock moves 50 ms (five ticks); a loaded machine only makes it slower.
        let before = own_cpu_seconds();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        while own_cpu_seconds() - before < 0.05 {
            assert!(
                std::time::Instant::now() < deadline,
                "a minute of spinning did not show 50 ms of CPU"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
    }

    #[test]
    fn a_reaped_child_adds_its_cpu_time() {
        // The shell counts to 300,000: about 0.3 s of CPU here, ten times the bound below on
        // any machine, while this process only forks and waits (far under it).
        let before = reaped_children_cpu_seconds();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .expect("run sh");
        assert!(status.success());
        let used = reaped_children_cpu_seconds() - before;
        assert!(used >= 0.03, "the child's CPU read as {used} s");
    }

    #[test]
    fn memory_readings_are_plausible() {
        let rss = status_kib("VmRSS").expect("VmRSS in /proc/self/status");
        let peak = peak_rss_mib().expect("VmHWM in /proc/self/status");
        assert!(rss > 0 && peak * 1024.0 >= rss as f64 - 1.0);
        assert_eq!(load_average().split(' ').count(), 3);
    }

    #[test]
    fn a_missing_process_reads_as_none() {
        assert_eq!(process_cpu_seconds(u32::MAX), None);
        assert_eq!(server_cpu_seconds(u32::MAX), None);
        assert_eq!(held_resources(u32::MAX), None);
    }

    #[test]
    fn held_resources_count_the_files_this_process_opens() {
        let pid = std::process::id();
        let (rss, anon, before) = held_resources(pid).expect("this process");
        assert!(
            rss >= anon && anon > 0,
            "{rss} KiB resident, {anon} KiB anonymous"
        );
        let files: Vec<std::fs::File> = (0..20)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        let (_, _, during) = held_resources(pid).unwrap();
        drop(files);
        // The other tests of this binary open and close a file or two meanwhile, at most.
        assert!(during >= before + 15, "{before} then {during} descriptors");
    }
}
