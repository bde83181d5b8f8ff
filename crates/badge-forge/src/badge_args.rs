//! A GenerateBadge job's args, as Elixir's `enqueue_batch` writes them: the worker's typed
//! [`BadgeArgs`], and the checks beyond their types that make them a [`Badge`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::render::{Badge, BadgeType, MAX_TYPE_CHARS};

/// Longest id accepted; ids become file names.
const MAX_ID_LEN: usize = 128;

/// Why a job's args can never make a badge. The message is what the job's error entry says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid badge args: {0}")]
pub struct InvalidArgs(pub String);

/// `{id, name, company, type}` and any other keys, among them the `fields` a layout prints.
/// Decoding checks the types (args that do not decode are discarded by the node, naming the
/// field); [`BadgeArgs::into_badge`] checks the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadgeArgs {
    /// The badge id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<BadgeId>,
    /// The id under the name the article's Python worker reads; `id` wins when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge_id: Option<BadgeId>,
    /// The holder's name.
    pub name: String,
    /// The holder's company.
    pub company: String,
    /// The badge type's name; whether the layout takes it is the renderer's call.
    #[serde(rename = "type")]
    pub badge_type: String,
    /// Every other key: the layout's fields are read from here, the rest ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A badge id as jobs carry it: a string, or an integer (read as its decimal digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BadgeId(pub String);

impl<'de> Deserialize<'de> for BadgeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;

        impl serde::de::Visitor<'_> for IdVisitor {
            type Value = BadgeId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }

            fn visit_str<E>(self, id: &str) -> Result<BadgeId, E> {
                Ok(BadgeId(id.to_owned()))
            }

            fn visit_i64<E>(self, id: i64) -> Result<BadgeId, E> {
                Ok(BadgeId(id.to_string()))
            }

            fn visit_u64<E>(self, id: u64) -> Result<BadgeId, E> {
                Ok(BadgeId(id.to_string()))
            }
        }

        deserializer.deserialize_any(IdVisitor)
    }
}

impl BadgeArgs {
    /// The args of `badge`'s job, as Elixir writes them.
    pub fn of(badge: &Badge) -> Self {
        Self {
            id: Some(BadgeId(badge.id.clone())),
            badge_id: None,
            name: badge.name.clone(),
            company: badge.company.clone(),
            badge_type: badge.badge_type.to_string(),
            other: badge
                .fields
                .iter()
                .map(|(key, text)| (key.clone(), Value::from(text.as_str())))
                .collect(),
        }
    }

    /// The badge these args describe for a layout printing `fields` (`pronouns`: absent is
    /// fine, anything but a string is not). The id must be safe as a file name and the type a
    /// type name; text is checked further by the renderer.
    pub fn into_badge(self, fields: &[String]) -> Result<Badge, InvalidArgs> {
        let mut extra = BTreeMap::new();
        for key in fields {
            if let Some(text) = self.field(key)? {
                extra.insert(key.clone(), text);
            }
        }
        let id = self
            .id
            .or(self.badge_id)
            .ok_or_else(|| InvalidArgs("missing key \"id\" (or \"badge_id\")".into()))?
            .0;
        if !is_badge_id(&id) {
            return Err(InvalidArgs(format!(
                "\"id\" {:?} must be 1 to {MAX_ID_LEN} letters, digits, '-' or '_'",
                truncate(&id)
            )));
        }
        let badge_type = self.badge_type.parse::<BadgeType>().map_err(|_| {
            InvalidArgs(format!(
                "badge type {:?} must be 1 to {MAX_TYPE_CHARS} letters, digits, '-' or '_'",
                truncate(&self.badge_type)
            ))
        })?;
        Ok(Badge {
            id,
            name: self.name,
            company: self.company,
            badge_type,
            fields: extra,
        })
    }

    /// The text of the layout field `key`, which may also name one of the decoded keys.
    fn field(&self, key: &str) -> Result<Option<String>, InvalidArgs> {
        let known = match key {
            "name" => &self.name,
            "company" => &self.company,
            "type" => &self.badge_type,
            _ => {
                return match self.other.get(key) {
                    None => Ok(None),
                    Some(Value::String(text)) => Ok(Some(text.clone())),
                    Some(other) => Err(InvalidArgs(format!(
                        "\"{key}\" must be a string, got {}",
                        kind(other)
                    ))),
                };
            }
        };
        Ok(Some(known.clone()))
    }
}

/// Decodes `args` (a job's, a preview's, `render --args`) and makes them a badge for a layout
/// printing `fields`; a decoding error names the field, as the node's discards do.
pub fn badge_from_args(args: &Value, fields: &[String]) -> Result<Badge, InvalidArgs> {
    let args: BadgeArgs =
        serde_path_to_error::deserialize(args).map_err(|error| InvalidArgs(error.to_string()))?;
    args.into_badge(fields)
}

/// Whether `id` is a badge id this worker accepts: 1 to [`MAX_ID_LEN`] ASCII letters, digits,
/// `-` or `_`.
pub fn is_badge_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// At most 40 characters of `text`, for error messages about oversized input.
fn truncate(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args() -> Value {
        json!({"id": "0b8f-1", "name": "Zoë", "company": "Acme", "type": "speaker", "extra": 1})
    }

    #[test]
    fn reads_elixirs_args_and_ignores_unknown_keys() {
        let badge = badge_from_args(&args(), &[]).unwrap();
        assert_eq!(
            (
                badge.id.as_str(),
                badge.name.as_str(),
                badge.company.as_str()
            ),
            ("0b8f-1", "Zoë", "Acme")
        );
        assert_eq!(badge.badge_type, BadgeType::SPEAKER);
    }

    #[test]
    fn reads_the_fields_a_layout_prints_and_any_type() {
        let mut args = args();
        args["type"] = json!("Press");
        let fields = ["pronouns".to_string(), "team".to_string()];
        let badge = badge_from_args(&args, &fields).unwrap();
        assert_eq!(badge.badge_type.as_str(), "press");
        assert!(badge.fields.is_empty(), "absent fields are not made up");
        args["pronouns"] = json!("she/her");
        let badge = badge_from_args(&args, &fields).unwrap();
        assert_eq!(
            badge.fields.get("pronouns").map(String::as_str),
            Some("she/her")
        );
        assert!(
            !badge.fields.contains_key("extra"),
            "unused keys are not kept"
        );
    }

    #[test]
    fn accepts_badge_id_and_integer_ids() {
        let mut args = args();
        args.as_object_mut().unwrap().remove("id");
        args["badge_id"] = json!(42);
        assert_eq!(badge_from_args(&args, &[]).unwrap().id, "42");
    }

    #[test]
    fn explains_every_kind_of_bad_input() {
        let cases = [
            (json!([1]), "invalid type: sequence"),
            (
                json!({"name": "a", "company": "b", "type": "attendee"}),
                "missing key \"id\"",
            ),
            (
                json!({"id": "1", "company": "b", "type": "attendee"}),
                "missing field `name`",
            ),
            (
                json!({"id": "1", "name": 7, "company": "b", "type": "attendee"}),
                "name: invalid type: integer `7`, expected a string",
            ),
            (
                json!({"id": "1", "name": "a", "company": "b", "type": "v i p"}),
                "badge type \"v i p\" must be 1 to 32 letters",
            ),
            (
                json!({"id": "1", "name": "a", "company": "b", "type": "x", "pronouns": 3}),
                "\"pronouns\" must be a string, got a number",
            ),
            (
                json!({"id": "../../etc/passwd", "name": "a", "company": "b", "type": "attendee"}),
                "must be 1 to 128 letters",
            ),
            (
                json!({"id": 1.5, "name": "a", "company": "b", "type": "attendee"}),
                "id: invalid type: floating point `1.5`, expected a string or an integer",
            ),
        ];
        for (args, expected) in cases {
            let error = badge_from_args(&args, &["pronouns".to_string()])
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{args}: {error}");
        }
    }
}
