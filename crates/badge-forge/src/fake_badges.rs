//! Made-up attendees for demos and benchmarks, as Elixir's `enqueue_batch` makes them: names
//! and companies from several locales, so non-ASCII names always appear.

use fake::Fake;
use fake::faker::company::raw::CompanyName;
use fake::faker::name::raw::Name;
use fake::locales::{AR_SA, DE_DE, EN, FR_FR, JA_JP, PT_BR, ZH_CN};
use fake::rand::rngs::StdRng;
use fake::rand::{RngExt, SeedableRng};

use crate::render::{Badge, BadgeType};

/// `count` badges, reproducible for a given `seed`, with fresh UUIDs as ids.
pub fn fake_badges(count: usize, seed: u64) -> Vec<Badge> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let (name, company): (String, String) = match rng.random_range(0..10) {
                0 => (
                    Name(FR_FR).fake_with_rng(&mut rng),
                    CompanyName(FR_FR).fake_with_rng(&mut rng),
                ),
                1 => (
                    Name(DE_DE).fake_with_rng(&mut rng),
                    CompanyName(DE_DE).fake_with_rng(&mut rng),
                ),
                2 => (
                    Name(JA_JP).fake_with_rng(&mut rng),
                    CompanyName(JA_JP).fake_with_rng(&mut rng),
                ),
                3 => (
                    Name(ZH_CN).fake_with_rng(&mut rng),
                    CompanyName(ZH_CN).fake_with_rng(&mut rng),
                ),
                4 => (
                    Name(AR_SA).fake_with_rng(&mut rng),
                    CompanyName(EN).fake_with_rng(&mut rng),
                ),
                5 => (
                    Name(PT_BR).fake_with_rng(&mut rng),
                    CompanyName(PT_BR).fake_with_rng(&mut rng),
                ),
                _ => (
                    Name(EN).fake_with_rng(&mut rng),
                    CompanyName(EN).fake_with_rng(&mut rng),
                ),
            };
            let badge_type = BadgeType::ALL[rng.random_range(0..BadgeType::ALL.len())].clone();
            let id = uuid::Builder::from_random_bytes(rng.random())
                .into_uuid()
                .to_string();
            Badge {
                id,
                name,
                company,
                badge_type,
                fields: Default::default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_reproducible_and_mixes_scripts() {
        let badges = fake_badges(200, 7);
        assert_eq!(badges, fake_badges(200, 7));
        assert!(badges.iter().any(|badge| !badge.name.is_ascii()));
        assert!(
            badges
                .iter()
                .all(|badge| !badge.name.is_empty() && badge.id.len() == 36)
        );
    }
}
