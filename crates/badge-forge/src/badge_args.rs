//! Reading a GenerateBadge job's args, as Elixir's `enqueue_batch` writes them.

use serde_json::{Map, Value};

use std::collections::BTreeMap;

use crate::render::{Badge, BadgeType, MAX_TYPE_CHARS};

/// Longest id accepted; ids become file names.
const MAX_ID_LEN: usize = 128;

/// Why a job's args can never make a badge. The message is what the job's error entry says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid badge args: {0}")]
pub struct InvalidArgs(pub String);

/// Reads `{id, name, company, type}` (`badge_id` accepted for `id`, as the article's Python
/// worker reads it) and the `fields` a layout prints (`pronouns`: absent is fine, anything
/// but a string is not); other keys are ignored. Any type name is read: whether the layout
/// takes it is the renderer's call. Text is checked further by the renderer.
pub fn badge_from_args(args: &Value, fields: &[String]) -> Result<Badge, InvalidArgs> {
    let args = args
        .as_object()
        .ok_or_else(|| InvalidArgs(format!("args must be a JSON object, got {}", kind(args))))?;
    let id = match (args.get("id"), args.get("badge_id")) {
        (Some(id), _) | (None, Some(id)) => badge_id(id)?,
        (None, None) => return Err(InvalidArgs("missing key \"id\" (or \"badge_id\")".into())),
    };
    let name = string(args, "name")?;
    let company = string(args, "company")?;
    let badge_type = string(args, "type")?;
    let badge_type = badge_type.parse::<BadgeType>().map_err(|_| {
        InvalidArgs(format!(
            "badge type {:?} must be 1 to {MAX_TYPE_CHARS} letters, digits, '-' or '_'",
            truncate(&badge_type)
        ))
    })?;
    let mut extra = BTreeMap::new();
    for key in fields {
        if args.contains_key(key) {
            extra.insert(key.clone(), string(args, key)?);
        }
    }
    Ok(Badge {
        id,
        name,
        company,
        badge_type,
        fields: extra,
    })
}

/// The id as a string that is safe as a file name: letters, digits, `-` and `_` only, so no id
/// can name a path outside the output directory.
fn badge_id(id: &Value) -> Result<String, InvalidArgs> {
    let id = match id {
        Value::String(id) => id.clone(),
        Value::Number(id) if id.is_i64() || id.is_u64() => id.to_string(),
        other => {
            return Err(InvalidArgs(format!(
                "\"id\" must be a string or an integer, got {}",
                kind(other)
            )));
        }
    };
    if !is_badge_id(&id) {
        return Err(InvalidArgs(format!(
            "\"id\" {:?} must be 1 to {MAX_ID_LEN} letters, digits, '-' or '_'",
            truncate(&id)
        )));
    }
    Ok(id)
}

/// Whether `id` is a badge id this worker accepts: 1 to [`MAX_ID_LEN`] ASCII letters, digits,
/// `-` or `_`.
pub fn is_badge_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn string(args: &Map<String, Value>, key: &str) -> Result<String, InvalidArgs> {
    match args.get(key) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(InvalidArgs(format!(
            "\"{key}\" must be a string, got {}",
            kind(other)
        ))),
        None => Err(InvalidArgs(format!("missing key \"{key}\""))),
    }
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
            (json!([1]), "args must be a JSON object, got an array"),
            (
                json!({"name": "a", "company": "b", "type": "attendee"}),
                "missing key \"id\"",
            ),
            (
                json!({"id": "1", "company": "b", "type": "attendee"}),
                "missing key \"name\"",
            ),
            (
                json!({"id": "1", "name": 7, "company": "b", "type": "attendee"}),
                "\"name\" must be a string, got a number",
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
                "must be a string or an integer",
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
