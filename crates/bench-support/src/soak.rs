//! A soak test's record of the process it soaks: its resources sampled from start to end, and
//! how they compare mid-run and at the end (a leak shows as growth after start-up).

use crate::held_resources;

/// One sample of the soaked process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the soak started.
    pub secs: f64,
    /// Units of work done so far (jobs, badges).
    pub done: i64,
    /// All resident memory (VmRSS), in KiB.
    pub rss_kb: u64,
    /// Of which anonymous (heap, stacks): what a leak grows. The rest is mostly pages of the
    /// binary, paged in as the work reaches them (bundled fonts, for instance).
    pub anon_kb: u64,
    /// Open file descriptors.
    pub fds: usize,
    /// The process's connections to the database.
    pub connections: i64,
}

impl Sample {
    /// Reads process `pid`'s memory and descriptors now, `secs` into the soak, beside `done`
    /// and `connections` that the caller counted.
    ///
    /// # Panics
    ///
    /// When the process is gone: a soaked process must live to the end.
    pub fn take(pid: u32, secs: f64, done: i64, connections: i64) -> Self {
        let (rss_kb, anon_kb, fds) =
            held_resources(pid).unwrap_or_else(|| panic!("the soaked process (pid {pid}) is gone"));
        Self {
            secs,
            done,
            rss_kb,
            anon_kb,
            fds,
            connections,
        }
    }
}

/// Prints about fifteen rows of `curve` under `header`, the last one always.
pub fn print_curve(header: &str, curve: &[Sample]) {
    println!("{header} (s, done, RSS MiB, of which anonymous MiB, fds, connections):");
    let step = (curve.len() / 14).max(1);
    for (i, s) in curve.iter().enumerate() {
        if i % step == 0 || i + 1 == curve.len() {
            println!(
                "  {:7.1} {:>9} {:6.1} {:6.1} {:>4} {:>3}",
                s.secs,
                s.done,
                s.rss_kb as f64 / 1024.0,
                s.anon_kb as f64 / 1024.0,
                s.fds,
                s.connections
            );
        }
    }
}

/// Mid-run (medians of the samples from 40% to 60% of the run) against the end (medians of the
/// last fifth), and the peaks: start-up, with its pool filling, is left out of the medians.
#[derive(Clone, Copy, Debug)]
pub struct Flatness {
    /// Highest resident memory of the whole run, KiB.
    pub rss_peak: u64,
    /// Median resident memory mid-run, KiB.
    pub rss_mid: u64,
    /// Median resident memory at the end, KiB.
    pub rss_end: u64,
    /// Median anonymous memory mid-run, KiB.
    pub anon_mid: u64,
    /// Median anonymous memory at the end, KiB.
    pub anon_end: u64,
    /// Median open descriptors mid-run.
    pub fds_mid: usize,
    /// Median open descriptors at the end.
    pub fds_end: usize,
    /// Most open descriptors after start-up (which opens the pool's sockets one by one).
    pub fds_peak: usize,
    /// Most database connections of the whole run.
    pub connections_peak: i64,
}

impl Flatness {
    /// The comparison over `curve`, which must hold at least one sample.
    pub fn of(curve: &[Sample]) -> Self {
        let fifth = (curve.len() / 5).max(1);
        let mid = &curve[(2 * fifth).min(curve.len() - 1)..(3 * fifth).min(curve.len())];
        let end = &curve[curve.len() - fifth..];
        let median = |samples: &[Sample], field: fn(&Sample) -> u64| {
            let mut values: Vec<u64> = samples.iter().map(field).collect();
            values.sort_unstable();
            values[values.len() / 2]
        };
        Self {
            rss_peak: curve.iter().map(|s| s.rss_kb).max().unwrap(),
            rss_mid: median(mid, |s| s.rss_kb),
            rss_end: median(end, |s| s.rss_kb),
            anon_mid: median(mid, |s| s.anon_kb),
            anon_end: median(end, |s| s.anon_kb),
            fds_mid: median(mid, |s| s.fds as u64) as usize,
            fds_end: median(end, |s| s.fds as u64) as usize,
            fds_peak: curve[fifth.min(curve.len() - 1)..]
                .iter()
                .map(|s| s.fds)
                .max()
                .unwrap(),
            connections_peak: curve.iter().map(|s| s.connections).max().unwrap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: usize) -> Sample {
        Sample {
            secs: i as f64,
            done: i as i64 * 100,
            // Start-up grows for two samples, then a leak of 10 KiB per sample.
            rss_kb: if i < 2 {
                1_000 * i as u64
            } else {
                5_000 + 10 * i as u64
            },
            anon_kb: 2_000 + 10 * i as u64,
            fds: if i == 0 { 30 } else { 12 },
            connections: if i == 1 { 11 } else { 10 },
        }
    }

    #[test]
    fn compares_mid_run_with_the_end_leaving_start_up_out() {
        let curve: Vec<Sample> = (0..10).map(sample).collect();
        let flat = Flatness::of(&curve);
        // Mid-run is samples 4 and 5, the end 8 and 9 (upper medians).
        assert_eq!((flat.rss_mid, flat.rss_end), (5_050, 5_090));
        assert_eq!((flat.anon_mid, flat.anon_end), (2_050, 2_090));
        assert_eq!(flat.rss_peak, 5_090);
        // The 30 descriptors of start-up are left out of the peak.
        assert_eq!((flat.fds_mid, flat.fds_end, flat.fds_peak), (12, 12, 12));
        assert_eq!(flat.connections_peak, 11);
    }

    #[test]
    fn a_short_curve_still_compares() {
        let flat = Flatness::of(&[sample(3)]);
        assert_eq!(
            (flat.rss_mid, flat.rss_end, flat.fds_peak),
            (5_030, 5_030, 12)
        );
    }
}
