//! What a badge is and what can go wrong: the inputs ([`Badge`], [`BadgeType`], [`EventInfo`]),
//! the limits they are validated against, and [`RenderError`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest name or company accepted, in characters (after NFC normalisation).
///
/// A 200-character name still renders (in two lines of small type); past this limit a
/// name is not a name, and no badge could print it legibly.
pub const MAX_TEXT_CHARS: usize = 256;

/// The longest badge id accepted, in characters; it is encoded in the QR code.
pub const MAX_ID_CHARS: usize = 128;

/// The most combining marks one character of a name or company may carry. Names need a few
/// (Vietnamese tones, Hebrew points, Indic conjuncts); a stack of more ("Zalgo" text) is drawn
/// above and below the line until it leaves the badge.
pub const MAX_MARKS: usize = 6;

/// The kind of badge (`"type"` in job args), shown as the coloured band: a lowercase name of
/// 1 to [`MAX_TYPE_CHARS`] ASCII letters, digits, `-` or `_`. Any such name is a type; which
/// ones get their own colour and label is the layout's business.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BadgeType(Cow<'static, str>);

/// The longest badge type name accepted, in characters.
pub const MAX_TYPE_CHARS: usize = 32;

impl BadgeType {
    /// A conference attendee.
    pub const ATTENDEE: BadgeType = BadgeType(Cow::Borrowed("attendee"));
    /// A speaker.
    pub const SPEAKER: BadgeType = BadgeType(Cow::Borrowed("speaker"));
    /// A sponsor's representative.
    pub const SPONSOR: BadgeType = BadgeType(Cow::Borrowed("sponsor"));
    /// A member of the organising team.
    pub const ORGANIZER: BadgeType = BadgeType(Cow::Borrowed("organizer"));

    /// The four types of the default layout, in band-colour order.
    pub const ALL: [BadgeType; 4] = [
        BadgeType::ATTENDEE,
        BadgeType::SPEAKER,
        BadgeType::SPONSOR,
        BadgeType::ORGANIZER,
    ];

    /// The lowercase name used in job args (`"speaker"`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BadgeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a badge type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("badge type {0:?} must be 1 to {MAX_TYPE_CHARS} letters, digits, '-' or '_'")]
pub struct UnknownBadgeType(pub String);

impl FromStr for BadgeType {
    type Err = UnknownBadgeType;

    /// Reads a type name, ignoring ASCII case and surrounding whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        let valid = (1..=MAX_TYPE_CHARS).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(UnknownBadgeType(s.to_string()));
        }
        Ok(BadgeType::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .unwrap_or(BadgeType(Cow::Owned(name))))
    }
}

impl TryFrom<String> for BadgeType {
    type Error = UnknownBadgeType;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BadgeType> for String {
    fn from(t: BadgeType) -> String {
        t.0.into_owned()
    }
}

/// One badge to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Badge {
    /// Identifier, encoded in the QR code (never used for anything on disk here).
    #[serde(alias = "badge_id")]
    pub id: String,
    /// The attendee's name, in any script.
    pub name: String,
    /// Company or affiliation; may be empty.
    #[serde(default)]
    pub company: String,
    /// Kind of badge (`"type"` in job args).
    #[serde(rename = "type")]
    pub badge_type: BadgeType,
    /// Any other text fields of the job args a layout prints (`args.pronouns`), by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// The event printed at the top of every badge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// Conference name, e.g. "Oban Conf 2026".
    pub title: String,
    /// City, e.g. "Edinburgh"; may be empty.
    pub city: String,
}

impl Default for EventInfo {
    fn default() -> Self {
        EventInfo {
            title: "Oban Conf 2026".to_string(),
            city: "Edinburgh".to_string(),
        }
    }
}

/// Which input a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// [`Badge::id`].
    Id,
    /// [`Badge::name`].
    Name,
    /// [`Badge::company`].
    Company,
    /// [`EventInfo::title`].
    EventTitle,
    /// [`EventInfo::city`].
    EventCity,
    /// A layout's text filled from job args or the badge type.
    Text,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Id => "badge id",
            Field::Name => "name",
            Field::Company => "company",
            Field::EventTitle => "event title",
            Field::EventCity => "event city",
            Field::Text => "layout text",
        })
    }
}

/// Why a badge could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The field is empty or only whitespace.
    #[error("{field} is empty")]
    Empty {
        /// The offending input.
        field: Field,
    },
    /// The field contains a control character (newline, tab, NUL, ...).
    #[error("{field} contains control character U+{:04X}", u32::from(*ch))]
    ControlCharacter {
        /// The offending input.
        field: Field,
        /// The first control character found.
        ch: char,
    },
    /// The field is longer than anything printable.
    #[error("{field} is {len} characters long; at most {max} can be printed")]
    TooLong {
        /// The offending input.
        field: Field,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// One character carries more combining marks than can be printed.
    #[error("{field} has {marks} combining marks on {ch:?}; at most {max} can be printed")]
    TooManyMarks {
        /// The offending input.
        field: Field,
        /// The base character of the cluster.
        ch: char,
        /// How many marks it carries.
        marks: usize,
        /// The limit.
        max: usize,
    },
    /// No bundled font has a glyph for a character.
    #[error("no bundled font can draw {ch:?} (U+{:04X}) in the {field}", u32::from(*ch))]
    MissingGlyph {
        /// The offending input.
        field: Field,
        /// The character.
        ch: char,
    },
    /// The job args lack a field the layout requires.
    #[error("args lack {key:?}, which the layout requires")]
    MissingField {
        /// The args key.
        key: String,
    },
    /// One of the job args' fields the layout prints cannot be printed.
    #[error("args {key:?}: {source}")]
    InField {
        /// The args key.
        key: String,
        /// What is wrong with its text.
        source: Box<RenderError>,
    },
    /// The layout's types are closed and do not include this one.
    #[error("badge type {kind:?} is not one of this layout's types ({known})")]
    UnknownType {
        /// The type of the badge.
        kind: String,
        /// The layout's types, comma-separated.
        known: String,
    },
    /// The id cannot be encoded as a QR code.
    #[error("badge id cannot be encoded as a QR code: {0}")]
    QrCode(String),
    /// The layout's badge does not fit the label stock.
    #[error("{0}")]
    Stock(String),
    /// A sheet was requested with no badges.
    #[error("a sheet needs at least one badge")]
    NoBadges,
    /// One badge of a sheet failed.
    #[error("badge {index} (id {id:?}): {source}")]
    InSheet {
        /// Position of the badge in the input slice.
        index: usize,
        /// Its id.
        id: String,
        /// What went wrong.
        source: Box<RenderError>,
    },
    /// A bundled font failed to parse (a build defect, not bad input).
    #[error("bundled font {0} failed to parse")]
    Font(&'static str),
    /// Font subsetting failed.
    #[error("font subsetting failed: {0}")]
    Subset(String),
    /// printpdf reported an error while writing.
    #[error("PDF writing failed: {0}")]
    Pdf(String),
    /// The SVG template failed.
    #[error("SVG template failed: {0}")]
    Svg(String),
}

impl RenderError {
    /// `true` when the input itself can never render (bad name, unknown glyph, ...):
    /// retrying is pointless. `false` for failures of the renderer itself.
    pub fn is_permanent(&self) -> bool {
        match self {
            RenderError::Empty { .. }
            | RenderError::ControlCharacter { .. }
            | RenderError::TooLong { .. }
            | RenderError::TooManyMarks { .. }
            | RenderError::MissingGlyph { .. }
            | RenderError::QrCode(_)
            | RenderError::MissingField { .. }
            | RenderError::UnknownType { .. }
            | RenderError::Stock(_)
            | RenderError::NoBadges => true,
            RenderError::InSheet { source, .. } | RenderError::InField { source, .. } => {
                source.is_permanent()
            }
            RenderError::Font(_)
            | RenderError::Subset(_)
            | RenderError::Pdf(_)
            | RenderError::Svg(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badge_type_round_trips() {
        for t in BadgeType::ALL {
            assert_eq!(t.to_string().parse::<BadgeType>(), Ok(t.clone()));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{t}\""));
        }
        assert_eq!(" Speaker ".parse::<BadgeType>(), Ok(BadgeType::SPEAKER));
        assert_eq!("VIP".parse::<BadgeType>().unwrap().as_str(), "vip");
        for bad in ["", "v i p", "../x", &"x".repeat(MAX_TYPE_CHARS + 1)] {
            assert!(bad.parse::<BadgeType>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn badge_reads_job_args() {
        let badge: Badge = serde_json::from_str(
            r#"{"badge_id": "b-1", "name": "Ada", "type": "sponsor", "extra": 1}"#,
        )
        .unwrap();
        assert_eq!(badge.id, "b-1");
        assert_eq!(badge.company, "");
        assert_eq!(badge.badge_type, BadgeType::SPONSOR);
    }

    #[test]
    fn permanence() {
        assert!(RenderError::Empty { field: Field::Name }.is_permanent());
        assert!(!RenderError::Pdf("x".into()).is_permanent());
        let nested = RenderError::InSheet {
            index: 0,
            id: "a".into(),
            source: Box::new(RenderError::MissingGlyph {
                field: Field::Name,
                ch: '\u{E000}',
            }),
        };
        assert!(nested.is_permanent());
        assert_eq!(
            nested.to_string(),
            "badge 0 (id \"a\"): no bundled font can draw '\\u{e000}' (U+E000) in the name"
        );
    }
}
