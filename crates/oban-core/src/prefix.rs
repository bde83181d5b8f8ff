//! The Oban prefix: the PostgreSQL schema that holds `oban_jobs` and names the channels.

use std::fmt;
use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use crate::{Error, Result};

/// A validated Oban prefix (a PostgreSQL schema name such as `public`).
///
/// Table names cannot be bind parameters, so the prefix is the one identifier that is written
/// into SQL text. It is therefore checked once, here, against a strict pattern
/// (`[A-Za-z_][A-Za-z0-9_]*`, at most 49 bytes so that the longest channel name,
/// `<prefix>.oban_cronitor`, stays under PostgreSQL's 64-byte limit) and always quoted.
/// Every value that comes from data is a bind parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prefix(String);

/// Longest prefix whose channel names still fit PostgreSQL's 63-byte identifiers.
const MAX_PREFIX_LEN: usize = 49;

impl Prefix {
    /// Validates `name` as a prefix.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let mut chars = name.chars();
        let valid_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_start || !valid_rest || name.len() > MAX_PREFIX_LEN {
            return Err(Error::Config(format!(
                "prefix {name:?} must match [A-Za-z_][A-Za-z0-9_]* and be at most {MAX_PREFIX_LEN} bytes"
            )));
        }
        Ok(Self(name))
    }

    /// The schema name as given, unquoted (for catalog lookups bound as parameters).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Replaces every `{prefix}` in a SQL template with the quoted schema name.
    ///
    /// Templates are the crate's own `.sql` files and the prefix was validated by [`Prefix::new`],
    /// which is why this is the one place that asserts dynamic SQL safe. Components render their
    /// statements once when they are built; the result is cheap to clone, and its text is stable,
    /// so sqlx caches its prepared form.
    #[expect(
        clippy::disallowed_methods,
        reason = "the crate's templates, with a name checked against [A-Za-z_][A-Za-z0-9_]*, quoted"
    )]
    pub fn render(&self, template: &str) -> SqlStr {
        let sql = template.replace("{prefix}", &format!("\"{}\"", self.0));
        AssertSqlSafe(Arc::<str>::from(sql)).into_sql_str()
    }

    /// The full channel name for an Oban channel such as `insert` or `signal`:
    /// `<prefix>.oban_<channel>`, exactly as Elixir and Python name it.
    pub fn channel(&self, channel: &str) -> String {
        format!("{}.oban_{channel}", self.0)
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Self("public".to_owned())
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_schema_names() {
        assert_eq!(Prefix::new("public").unwrap().as_str(), "public");
        assert_eq!(Prefix::new("_tenant_42").unwrap().as_str(), "_tenant_42");
    }

    #[test]
    fn rejects_anything_that_could_break_out_of_quotes() {
        for bad in ["", "1abc", "a\"b", "a;drop", "a b", "a.b", &"x".repeat(50)] {
            assert!(Prefix::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn renders_quoted_and_names_channels() {
        let p = Prefix::new("tenant").unwrap();
        assert_eq!(
            p.render("SELECT 1 FROM {prefix}.oban_jobs").as_str(),
            "SELECT 1 FROM \"tenant\".oban_jobs"
        );
        assert_eq!(p.channel("insert"), "tenant.oban_insert");
        assert_eq!(
            Prefix::new("x".repeat(49))
                .unwrap()
                .channel("cronitor")
                .len(),
            63
        );
    }
}
