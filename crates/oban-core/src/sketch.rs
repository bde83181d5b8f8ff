//! The DDSketch that oban_met uses for job times, bin for bin, so that both runtimes put the same
//! time in the same bin: filled by [`crate::telemetry`], published by [`crate::met`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// oban_met's relative error: every value is reported within 2 % of its true value.
const ERROR: f64 = 0.02;

/// A DDSketch as oban_met's `Oban.Met.Values.Sketch` encodes it: positive integer values
/// (nanoseconds here) counted in logarithmic bins, `bin = ceil(ln(v) / ln(γ))` with
/// `γ = 1.02 / 0.98`. On the wire: `{"data": {"<bin>": count, ...}, "size": n}`, bins as JSON
/// strings (how Elixir encodes integer map keys).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sketch {
    /// Values per bin.
    #[serde(deserialize_with = "bins_from_strings")]
    pub data: BTreeMap<i32, u64>,
    /// Number of values added.
    pub size: u64,
}

impl Sketch {
    /// The bin of `value`, computed exactly as oban_met does (`ln(v) * (1 / ln γ)`, then
    /// `ceil`) so that both runtimes put the same value in the same bin. Values below 1 are
    /// clamped to 1 (bin 0), as oban_met clamps zero and negative times.
    pub fn bin(value: u64) -> i32 {
        let gamma = (1.0 + ERROR) / (1.0 - ERROR);
        let inv_log_gamma = 1.0 / gamma.ln();
        ((value.max(1) as f64).ln() * inv_log_gamma).ceil() as i32
    }

    /// Adds one value.
    pub fn add(&mut self, value: u64) {
        *self.data.entry(Self::bin(value)).or_default() += 1;
        self.size += 1;
    }

    /// The value a bin stands for (the midpoint oban_met reports for quantiles).
    pub fn bin_value(bin: i32) -> f64 {
        let gamma = (1.0 + ERROR) / (1.0 - ERROR);
        2.0 * gamma.powi(bin) / (gamma + 1.0)
    }
}

/// Reads bins keyed by JSON strings. (serde_json would read them into integer keys by itself,
/// but not once an untagged enum has buffered them, as [`MetricValue`](crate::met::MetricValue) does.)
fn bins_from_strings<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<BTreeMap<i32, u64>, D::Error> {
    BTreeMap::<String, u64>::deserialize(deserializer)?
        .into_iter()
        .map(|(bin, count)| {
            bin.parse().map(|bin| (bin, count)).map_err(|_| {
                serde::de::Error::custom(format!("sketch bin {bin:?} is not an integer"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_match_oban_met() {
        // ceil(ln(v) / ln(1.02/0.98)), checked by hand: ln γ = 0.0400053...
        assert_eq!(Sketch::bin(0), 0);
        assert_eq!(Sketch::bin(1), 0);
        assert_eq!(Sketch::bin(2), 18);
        assert_eq!(Sketch::bin(1_000), 173);
        assert_eq!(Sketch::bin(1_000_000), 346);
        assert_eq!(Sketch::bin(1_000_000_000), 519);
    }

    #[test]
    fn bin_values_are_within_two_percent() {
        for value in [1u64, 7, 1_000, 123_456, 5_000_000_000] {
            let estimate = Sketch::bin_value(Sketch::bin(value));
            let error = (estimate - value as f64).abs() / value as f64;
            assert!(error <= ERROR + 1e-9, "{value}: {estimate}");
        }
    }
}
