//! Oban's default retry backoff and the jitter it uses for timers.
//!
//! Elixir (`Oban.Worker.backoff/1`, `Oban.Backoff`) and oban-py (`jittery_clamped`) compute the
//! same thing: `15 + 2^c` seconds plus up to 10 % added jitter, where `c` is the attempt that just
//! failed, clamped onto 20 steps when `max_attempts` is larger than 20.

use std::time::Duration;

use rand::Rng;

/// The default backoff in whole seconds, with jitter drawn from `rng`.
pub fn default_backoff(attempt: i32, max_attempts: i32, rng: &mut impl Rng) -> u64 {
    let base = base_backoff(attempt, max_attempts);
    base + (rng.random::<f64>() * 0.1 * base as f64) as u64
}

/// The backoff before jitter: `15 + 2^c` seconds, saturating instead of overflowing.
pub fn base_backoff(attempt: i32, max_attempts: i32) -> u64 {
    let clamped = if max_attempts <= 20 {
        attempt.max(0) as u32
    } else {
        // Elixir's round/1 rounds halves away from zero, as f64::round does.
        (f64::from(attempt) / f64::from(max_attempts) * 20.0).round() as u32
    };
    15u64.saturating_add(2u64.checked_pow(clamped).unwrap_or(u64::MAX))
}

/// `time` with up to `mult` of it subtracted, to spread periodic work of many nodes
/// (Oban's `jitter(time, mode: :dec)`).
pub fn jitter_down(time: Duration, mult: f64, rng: &mut impl Rng) -> Duration {
    time.mul_f64(1.0 - rng.random::<f64>() * mult)
}

/// Exponential backoff with full jitter for reconnecting to the database:
/// `min(cap, base * 2^failures)`, scaled by a random factor in [0.5, 1).
pub fn reconnect_delay(
    failures: u32,
    base: Duration,
    cap: Duration,
    rng: &mut impl Rng,
) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(failures.min(16)));
    exp.min(cap).mul_f64(0.5 + rng.random::<f64>() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_matches_the_worked_values_of_the_protocol() {
        let expected = [17, 19, 23, 31, 47, 79, 143, 271, 527, 1039];
        for (attempt, want) in (1..=10).zip(expected) {
            assert_eq!(base_backoff(attempt, 20), want, "attempt {attempt}");
        }
        assert_eq!(base_backoff(19, 20), 524_303);
    }

    #[test]
    fn clamps_onto_twenty_steps_rounding_halves_away_from_zero() {
        // attempt 1 of 40: 1/40*20 = 0.5 rounds to 1 (Elixir), not 0 (Python).
        assert_eq!(base_backoff(1, 40), 17);
        assert_eq!(base_backoff(40, 40), 15 + (1 << 20));
    }

    #[test]
    fn jitter_only_adds_up_to_ten_percent() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let delay = default_backoff(5, 20, &mut rng);
            assert!((47..=51).contains(&delay), "{delay}");
        }
    }

    #[test]
    fn reconnect_delay_is_capped_and_jittered() {
        let mut rng = rand::rng();
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(5));
        for failures in 0..40 {
            let delay = reconnect_delay(failures, base, cap, &mut rng);
            assert!(delay <= cap && delay >= base / 2, "{delay:?}");
        }
    }
}
