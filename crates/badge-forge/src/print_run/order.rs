//! The order of a print run, for the registration desk: by surname (or any field) under a
//! locale's collation, and the initial-letter groups a divider page goes before.
//!
//! Collation is ICU4X's (`icu_collator`) with its CLDR data compiled in: pure Rust, no data
//! files to ship, and the real tailorings (Swedish puts Å Ä Ö after Z, Danish Æ Ø Å, Polish Ł
//! after L, German Ü with U). Without a locale it is CLDR's root collation, which suits no
//! language exactly and every one acceptably: accented letters with their base letter.

use std::cmp::Ordering;
use std::str::FromStr;

use icu_collator::options::{CollatorOptions, Strength};
use icu_collator::{CollatorBorrowed, CollatorPreferences};
use icu_locale_core::Locale;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

use crate::render::Badge;

/// What a print run is sorted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// The surname ([`surname`]), then the whole name.
    Surname,
    /// The list's own order.
    File,
    /// A job-args field: `id`, `name`, `company`, `type` or any other key.
    Field(String),
}

impl SortKey {
    /// The args key a list must hold for this order, beyond the job args' own.
    pub fn extra_field(&self) -> Option<&str> {
        match self {
            SortKey::Field(key) if !matches!(key.as_str(), "id" | "name" | "company" | "type") => {
                Some(key)
            }
            _ => None,
        }
    }

    /// The text `badge` is sorted by.
    fn text<'a>(&self, badge: &'a Badge) -> &'a str {
        match self {
            SortKey::Surname => surname(&badge.name),
            SortKey::File => "",
            SortKey::Field(key) => match key.as_str() {
                "id" => &badge.id,
                "name" => &badge.name,
                "company" => &badge.company,
                "type" => badge.badge_type.as_str(),
                other => badge.fields.get(other).map_or("", String::as_str),
            },
        }
    }
}

impl FromStr for SortKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "surname" => Ok(SortKey::Surname),
            "none" => Ok(SortKey::File),
            "" => Err("the sort key is empty".into()),
            key => Ok(SortKey::Field(key.to_string())),
        }
    }
}

/// Generational suffixes that follow a surname rather than being one.
const SUFFIXES: [&str; 8] = ["jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "v"];

/// The part of `name` a desk files it under: the last word, after any generational suffix
/// ("Martin Luther King Jr." → "King"). Particles before it (van, von, de, da) are not part
/// of it, so "Vincent van Gogh" files under G, as German and Dutch desks do. A name in a Han,
/// kana or Hangul script puts the family name first, so its first word is the surname; a
/// name without spaces (common in those scripts) is its own surname.
pub fn surname(name: &str) -> &str {
    let mut words = name.split_whitespace();
    let Some(first) = words.next() else {
        return "";
    };
    if first.chars().next().is_some_and(family_name_first) {
        return first;
    }
    let words: Vec<&str> = std::iter::once(first).chain(words).collect();
    words
        .iter()
        .rev()
        .find(|w| !SUFFIXES.contains(&w.to_lowercase().as_str()))
        .or(words.last())
        .copied()
        .unwrap_or(first)
}

/// Whether a name starting with `c` is written family name first: Han, kana, Hangul.
fn family_name_first(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x11FF // Hangul Jamo
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3400..=0x4DBF // CJK Extension A
        | 0x4E00..=0x9FFF // CJK Unified Ideographs
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0xF900..=0xFAFF // CJK Compatibility Ideographs
        | 0x20000..=0x3134F) // CJK Extensions B to G
}

/// A locale's collation, at full strength for sorting and at primary strength for telling
/// which initials a desk files together (German Ü with U; Swedish Ö apart from O).
pub struct Collation {
    full: CollatorBorrowed<'static>,
    primary: CollatorBorrowed<'static>,
}

impl Collation {
    /// The collation of `locale` (a BCP 47 tag: `sv`, `da`, `pl`, `de`, `de-u-co-phonebk`),
    /// or CLDR's root collation.
    pub fn new(locale: Option<&str>) -> Result<Collation, String> {
        let locale = match locale {
            Some(tag) => tag
                .parse::<Locale>()
                .map_err(|e| format!("{tag:?} is not a locale (a BCP 47 tag such as sv): {e}"))?,
            None => Locale::UNKNOWN,
        };
        let collator = |strength| {
            let mut options = CollatorOptions::default();
            options.strength = strength;
            CollatorBorrowed::try_new(CollatorPreferences::from(&locale), options)
                .map_err(|e| format!("no collation for {locale}: {e}"))
        };
        Ok(Collation {
            full: collator(None)?,
            primary: collator(Some(Strength::Primary))?,
        })
    }

    /// The letter a group starting with `initial` is filed under: its base letter where
    /// this locale files the two together (German Ü under U), else itself (Swedish Ö),
    /// upper-cased.
    fn letter(&self, initial: &str) -> String {
        let base: String = initial.nfd().take(1).collect();
        let letter = if self.primary.compare(&base, initial).is_eq() {
            base
        } else {
            initial.to_string()
        };
        letter.to_uppercase()
    }

    /// Compares two texts as a desk of this locale orders them.
    pub fn compare(&self, a: &str, b: &str) -> Ordering {
        self.full.compare(a, b)
    }
}

/// The order `badges` print in: their indices, sorted by `key` under `collation` (ties by
/// the whole name, then in the list's order).
pub fn order(badges: &[Badge], key: &SortKey, collation: &Collation) -> Vec<usize> {
    let mut order: Vec<usize> = (0..badges.len()).collect();
    if *key != SortKey::File {
        order.sort_by(|&a, &b| {
            let (a, b) = (&badges[a], &badges[b]);
            collation
                .compare(key.text(a), key.text(b))
                .then_with(|| collation.compare(&a.name, &b.name))
        });
    }
    order
}

/// Where each initial-letter group of `sorted` (badges in print order) starts, with its
/// letter: a new group wherever the key's first character differs at primary strength
/// from the previous one's, filed under the group's first initial in collation order (so
/// German Olsen and Ødegård are both under O). Badges whose key is empty are filed under
/// "—"; a list in its own order has no groups.
pub fn groups(sorted: &[Badge], key: &SortKey, collation: &Collation) -> Vec<(usize, String)> {
    if *key == SortKey::File {
        return Vec::new();
    }
    let mut groups: Vec<(usize, &str)> = Vec::new();
    for (at, badge) in sorted.iter().enumerate() {
        let initial = key.text(badge).graphemes(true).next().unwrap_or("");
        match groups.last_mut() {
            Some((_, first)) if collation.primary.compare(first, initial).is_eq() => {
                if collation.compare(initial, first).is_lt() {
                    *first = initial;
                }
            }
            _ => groups.push((at, initial)),
        }
    }
    groups
        .into_iter()
        .map(|(at, initial)| {
            let letter = match initial {
                "" => "\u{2014}".to_string(),
                _ => collation.letter(initial),
            };
            (at, letter)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::BadgeType;

    #[test]
    fn surnames_are_last_words_without_suffixes() {
        for (name, expected) in [
            ("Ada Lovelace", "Lovelace"),
            ("Vincent van Gogh", "Gogh"),
            ("Martin Luther King Jr.", "King"),
            ("Cher", "Cher"),
            ("山田 太郎", "山田"),
            ("山田太郎", "山田太郎"),
            ("김 민준", "김"),
            ("  ", ""),
        ] {
            assert_eq!(surname(name), expected, "{name}");
        }
    }

    fn badges(names: &[&str]) -> Vec<Badge> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| Badge {
                id: i.to_string(),
                name: name.to_string(),
                company: String::new(),
                badge_type: BadgeType::ATTENDEE,
                fields: Default::default(),
            })
            .collect()
    }

    fn sorted(names: &[&str], locale: Option<&str>) -> Vec<String> {
        let badges = badges(names);
        let collation = Collation::new(locale).unwrap();
        order(&badges, &SortKey::Surname, &collation)
            .into_iter()
            .map(|i| surname(&badges[i].name).to_string())
            .collect()
    }

    #[test]
    fn each_locale_orders_its_letters() {
        let names = [
            "Zoë Zander",
            "Anders Ångström",
            "Eva Ödegård",
            "Ola Olsen",
            "Uwe Müller",
            "Paul Mann",
            "Jan Łukasz",
            "Ida Lund",
            "Max Mzyk",
        ];
        let sv = sorted(&names, Some("sv"));
        assert_eq!(
            sv[sv.len() - 2..],
            ["Ångström", "Ödegård"],
            "Swedish: Å and Ö after Z"
        );
        let de = sorted(&names, Some("de"));
        let at = |list: &[String], s: &str| list.iter().position(|x| x == s).unwrap();
        assert!(at(&de, "Mann") < at(&de, "Müller") && at(&de, "Müller") < at(&de, "Mzyk"));
        assert!(at(&de, "Ångström") < at(&de, "Lund"), "German: Å with A");
        let pl = sorted(&names, Some("pl"));
        assert!(at(&pl, "Lund") < at(&pl, "Łukasz") && at(&pl, "Łukasz") < at(&pl, "Mann"));
        let root = sorted(&names, None);
        assert_eq!(root[0], "Ångström", "root: Å with A");
    }

    #[test]
    fn groups_follow_the_collation() {
        let badges = badges(&["Ann Ulm", "Bo Über", "Cy Ölm", "Di Olm"]);
        for (locale, expected) in [
            ("de", vec!["O", "U"]),
            // Swedish files Ü with Y, after U; Ö after Z.
            ("sv", vec!["O", "U", "Ü", "Ö"]),
        ] {
            let collation = Collation::new(Some(locale)).unwrap();
            let order = order(&badges, &SortKey::Surname, &collation);
            let sorted: Vec<Badge> = order.iter().map(|&i| badges[i].clone()).collect();
            let letters: Vec<String> = groups(&sorted, &SortKey::Surname, &collation)
                .into_iter()
                .map(|(_, letter)| letter)
                .collect();
            assert_eq!(letters, expected, "{locale}");
        }
    }

    #[test]
    fn sort_keys_read_fields() {
        assert_eq!("surname".parse(), Ok(SortKey::Surname));
        assert_eq!("none".parse(), Ok(SortKey::File));
        let key: SortKey = "pronouns".parse().unwrap();
        assert_eq!(key.extra_field(), Some("pronouns"));
        assert_eq!("company".parse::<SortKey>().unwrap().extra_field(), None);
    }
}
