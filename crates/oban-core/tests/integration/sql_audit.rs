//! The "no string is ever spliced into SQL" guarantee, made checkable.
//!
//! sqlx 0.9 accepts statement text only as `impl SqlSafeStr`: a `&'static str`, a `SqlStr`, or
//! text wrapped in `AssertSqlSafe`. A `SqlStr` in turn is made only from a `&'static str` or
//! from `AssertSqlSafe`. So the compiler already refuses a runtime `String` as a statement, and
//! what is left to audit is small; the scans below check it over every `crates/*/src` file:
//!
//! 1. `AssertSqlSafe` appears only in the audited places: `Prefix::render` (which substitutes
//!    only a validated, quoted schema name) and the throwaway-cluster helper.
//! 2. Nothing turns runtime text into a `&'static str` (`leak`, statics holding a `String`),
//!    which sqlx would take as a constant.
//! 3. Every `Prefix::render` template is a constant (`include_str!` of a `.sql` file or a
//!    literal), and every `{…}` placeholder in the templates is `{prefix}` (or the
//!    `{insert_jobs}` and `{job_filter}` fragments, themselves constants).
//! 4. Every `sqlx::query*`/`raw_sql` call gets a literal, a constant, a rendered constant or a
//!    variable holding one (which the type system then guarantees is a `SqlStr`).
//! 5. No `format!` builds SQL text except the audited ones (an integer constant, generated
//!    database names).
//!
//! The database tests then prove the runtime side: hostile prefixes are refused before any
//! SQL exists, the accepted ones that need quoting (mixed case, reserved words, the longest)
//! work end to end with LISTEN/NOTIFY, and hostile values travel as parameters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oban_core::insert::NewJob;
use oban_core::notifier::{Channel, decode_payload};
use oban_core::{Client, Prefix, schema};
use serde_json::json;
use sqlx::postgres::PgListener;

/// Every `AssertSqlSafe(` in product code, as (file, the line it is on), with the reason it is
/// safe. A new one fails the audit until it is reviewed and listed here.
const AUDITED_ASSERTS: [(&str, &str, &str); 2] = [
    (
        "crates/oban-core/src/prefix.rs",
        "AssertSqlSafe(Arc::<str>::from(sql)).into_sql_str()",
        "Prefix::render: the crate's templates with a name checked against [A-Za-z_][A-Za-z0-9_]*, quoted",
    ),
    (
        "crates/oban-core/src/testing/temp_postgres.rs",
        r#"conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))"#,
        "test clusters: the name is oban_test_<pid>_<counter>_<random u32>",
    ),
];

/// Every `format!` in product code whose text starts like SQL, with the reason it is safe.
const AUDITED_FORMATS: [(&str, &str, &str); 2] = [
    (
        "crates/oban-core/src/schema.rs",
        r#"let record = format!("COMMENT ON TABLE {{prefix}}.oban_jobs IS '{CURRENT_VERSION}'");"#,
        "interpolates the integer constant CURRENT_VERSION, then goes through Prefix::render",
    ),
    (
        "crates/oban-core/src/testing/temp_postgres.rs",
        r#"conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))"#,
        "test clusters: see AUDITED_ASSERTS",
    ),
];

/// Functions that pass a computed template to `Prefix::render`, with the reason it is safe.
/// Their callers are checked to pass constants.
const AUDITED_RENDERERS: [(&str, &str, &str); 3] = [
    (
        "crates/oban-core/src/schema.rs",
        "execute",
        "runs the migration steps (include_str! constants), a literal and the version comment",
    ),
    (
        "crates/oban-core/src/insert.rs",
        "render_with_insert",
        "splices the constant insert_jobs.sql into a constant template, with an integer parameter number",
    ),
    (
        "crates/oban-core/src/jobs.rs",
        "render_with_filter",
        "splices the constant job_filter.sql into a constant template",
    ),
];

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One source file: `code` has comments blanked, `shape` also has the inside of string and
/// character literals blanked (so structure searches never match text), both byte-aligned with
/// the original.
struct Source {
    path: String,
    code: String,
    shape: String,
}

impl Source {
    fn line_of(&self, at: usize) -> usize {
        self.code[..at].matches('\n').count() + 1
    }

    /// The trimmed line holding byte `at`, from `code`.
    fn line_text(&self, at: usize) -> &str {
        let start = self.code[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = self.code[at..]
            .find('\n')
            .map_or(self.code.len(), |i| at + i);
        self.code[start..end].trim()
    }

    /// Byte offsets of `needle` in code (not inside comments or literals).
    fn find_all(&self, needle: &str) -> Vec<usize> {
        self.shape.match_indices(needle).map(|(i, _)| i).collect()
    }

    /// The first argument of the call whose `(` is at `open`, trimmed, from `code`.
    fn first_argument(&self, open: usize) -> &str {
        let bytes = self.shape.as_bytes();
        let mut depth = 0usize;
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 1 => return self.code[open + 1..i].trim(),
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 1 => return self.code[open + 1..i].trim(),
                _ => {}
            }
        }
        panic!("{}:{}: unbalanced call", self.path, self.line_of(open));
    }

    /// The name of the function whose body holds byte `at` (the last `fn` before it).
    fn enclosing_fn(&self, at: usize) -> &str {
        let start = self.shape[..at].rfind("fn ").expect("inside a function") + 3;
        let end = start
            + self.shape[start..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap();
        &self.code[start..end]
    }
}

/// Blanks comments (and, for `shape`, literal contents) of Rust source, keeping byte offsets.
fn lex(text: &str) -> (String, String) {
    let bytes = text.as_bytes();
    let mut code = bytes.to_vec();
    let mut shape = bytes.to_vec();
    let blank = |buffer: &mut Vec<u8>, range: std::ops::Range<usize>| {
        for b in &mut buffer[range] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |n| i + n);
            blank(&mut code, i..end);
            blank(&mut shape, i..end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (1, i + 2);
            while depth > 0 && j < bytes.len() {
                if bytes[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if bytes[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut code, i..j);
            blank(&mut shape, i..j);
            i = j;
        } else if let Some(hashes) = raw_string_start(bytes, i) {
            // r"…", r#"…"#, br"…": no escapes, ends at the quote and as many hashes.
            let open = i + bytes[i..].iter().position(|&b| b == b'"').unwrap();
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let end = open + 1 + find(&bytes[open + 1..], &close).expect("raw string ends");
            blank(&mut shape, open + 1..end);
            i = end + close.len();
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut shape, i + 1..j);
            i = j + 1;
        } else if bytes[i] == b'\'' {
            // A character literal ('x', '\n', '\u{..}', '"') or a lifetime ('a).
            let end = if rest.get(1) == Some(&b'\\') {
                rest[2..]
                    .iter()
                    .position(|&b| b == b'\'')
                    .map(|n| i + 2 + n)
            } else {
                let width = std::str::from_utf8(&rest[1..rest.len().min(5)])
                    .map_or_else(|e| e.valid_up_to(), |s| s.len())
                    .min(text[i + 1..].chars().next().map_or(1, char::len_utf8));
                (rest.get(1 + width) == Some(&b'\'')).then_some(i + 1 + width)
            };
            match end {
                Some(end) => {
                    blank(&mut shape, i + 1..end);
                    i = end + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    // Blanking only ever replaced ASCII-or-continuation bytes inside literals with spaces;
    // lossy conversion keeps offsets because each replaced byte became one space.
    (
        String::from_utf8_lossy(&code).into_owned(),
        String::from_utf8_lossy(&shape).into_owned(),
    )
}

/// `Some(hash count)` when a raw string literal (`r"`, `r#"`, `br"`) starts at `i`.
fn raw_string_start(bytes: &[u8], i: usize) -> Option<usize> {
    let previous_is_ident = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    if previous_is_ident {
        return None;
    }
    let after_prefix = match bytes.get(i..i + 2) {
        Some(b"br") => i + 2,
        Some([b'r', _]) => i + 1,
        _ => return None,
    };
    let hashes = bytes[after_prefix..]
        .iter()
        .take_while(|&&b| b == b'#')
        .count();
    (bytes.get(after_prefix + hashes) == Some(&b'"')).then_some(hashes)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every `.rs` file under `crates/*/src`.
fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = root();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            walk(&src, &mut files);
        }
    }
    files.sort();
    let sources: Vec<Source> = files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let (code, shape) = lex(&text);
            assert_eq!(code.len(), text.len(), "{}", path.display());
            Source {
                path: path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                code,
                shape,
            }
        })
        .collect();
    assert!(
        sources
            .iter()
            .any(|s| s.path.ends_with("oban-core/src/prefix.rs"))
            && sources
                .iter()
                .any(|s| s.path.ends_with("badge-forge/src/worker.rs")),
        "the scan must see both crates"
    );
    sources
}

/// `const NAME: &str = …` across all sources: name → initialiser (trimmed, up to its `;`).
fn string_constants(sources: &[Source]) -> BTreeMap<String, (String, String)> {
    let mut constants = BTreeMap::new();
    for source in sources {
        for at in source.find_all("const ") {
            let rest = &source.code[at + 6..];
            let Some((name, rest)) = rest.split_once(':') else {
                continue;
            };
            let Some(init) = rest.trim_start().strip_prefix("&str =") else {
                continue;
            };
            let init_at = source.code.len() - init.len();
            let end = init_at + source.shape[init_at..].find(';').unwrap();
            constants.insert(
                name.trim().to_owned(),
                (
                    source.path.clone(),
                    source.code[init_at..end].trim().to_owned(),
                ),
            );
        }
    }
    constants
}

/// Whether `expr` is a statement known at compile time: a literal, or a constant (by any path)
/// initialised with a literal or an `include_str!` of a `.sql` file.
fn is_constant(expr: &str, constants: &BTreeMap<String, (String, String)>) -> bool {
    let expr = expr.trim().trim_start_matches('&');
    if expr.starts_with('"') || raw_string_start(expr.as_bytes(), 0).is_some() {
        return true;
    }
    let name = expr.rsplit("::").next().unwrap();
    let is_const_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_const_name
        && constants.get(name).is_some_and(|(_, init)| {
            init.starts_with('"')
                || raw_string_start(init.as_bytes(), 0).is_some()
                || (init.starts_with("include_str!(\"") && init.ends_with(".sql\")"))
        })
}

#[test]
fn assert_sql_safe_appears_only_in_audited_places() {
    let mut unaudited = Vec::new();
    let mut seen = 0;
    for source in &sources() {
        for at in source.find_all("AssertSqlSafe(") {
            let line = source.line_text(at);
            if AUDITED_ASSERTS
                .iter()
                .any(|(path, text, _)| *path == source.path && *text == line)
            {
                seen += 1;
            } else {
                unaudited.push(format!("{}:{}: {line}", source.path, source.line_of(at)));
            }
        }
    }
    assert!(
        unaudited.is_empty(),
        "unaudited AssertSqlSafe (review it, then list it in AUDITED_ASSERTS):\n{}",
        unaudited.join("\n")
    );
    assert_eq!(
        seen,
        AUDITED_ASSERTS.len(),
        "an audited AssertSqlSafe is gone: update the list"
    );
}

#[test]
fn no_runtime_text_becomes_static() {
    let mut found = Vec::new();
    for source in &sources() {
        for needle in [".leak()", "Box::leak", "String::leak"] {
            for at in source.find_all(needle) {
                found.push(format!(
                    "{}:{}: {}",
                    source.path,
                    source.line_of(at),
                    source.line_text(at)
                ));
            }
        }
        // A static item holding owned text (a `&'static str` in one can only be a constant,
        // given the leak check).
        for at in source.find_all("static ") {
            let line = source.line_text(at);
            let item = line
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub(super) ")
                .trim_start_matches("pub ");
            let owned = ["String", "Box<str>", "Arc<str>", "Cow<"];
            if item.starts_with("static ") && owned.iter().any(|text| item.contains(text)) {
                found.push(format!("{}:{}: {line}", source.path, source.line_of(at)));
            }
        }
    }
    assert!(
        found.is_empty(),
        "runtime text as &'static str would pass as an SQL constant:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_rendered_template_is_a_constant() {
    let sources = sources();
    let constants = string_constants(&sources);
    let mut problems = Vec::new();
    let mut rendered = 0;
    for source in &sources {
        for at in source.find_all("prefix.render(") {
            rendered += 1;
            let template = source.first_argument(at + "prefix.render".len());
            if is_constant(template, &constants) {
                continue;
            }
            let function = source.enclosing_fn(at);
            if AUDITED_RENDERERS
                .iter()
                .any(|(path, name, _)| *path == source.path && *name == function)
            {
                continue;
            }
            problems.push(format!(
                "{}:{}: renders {template:?}, not a constant",
                source.path,
                source.line_of(at)
            ));
        }
        // The audited renderers' callers: every template they get is a constant, or the
        // audited version comment.
        for (path, function, _) in AUDITED_RENDERERS {
            let krate = &path[..path.find("/src/").unwrap()];
            if !source.path.starts_with(krate) {
                continue;
            }
            for at in source.find_all(&format!("{function}(")) {
                // Calls of the function itself: not a longer name, its definition or a method.
                let before = &source.shape[..at];
                let previous = before.chars().next_back().unwrap_or(' ');
                let trimmed = before.trim_end();
                if previous.is_alphanumeric()
                    || previous == '_'
                    || trimmed.ends_with('.')
                    || trimmed.ends_with("fn")
                {
                    continue;
                }
                let call = &source.code[at..at + source.shape[at..].find(')').unwrap()];
                let arguments: Vec<&str> = call[function.len() + 1..].split(',').collect();
                let audited = arguments.iter().any(|argument| is_constant(argument, &constants))
                    // schema.rs: the version comment, and each of STEPS (checked below).
                    || call == "execute(&mut tx, prefix, &record"
                    || call == "execute(&mut tx, prefix, step";
                if !audited {
                    problems.push(format!(
                        "{}:{}: {function} called with {call:?}",
                        source.path,
                        source.line_of(at)
                    ));
                }
            }
        }
    }
    // The migration steps `execute` runs: include_str! of migrations/*.sql, nothing else.
    let schema = sources
        .iter()
        .find(|source| source.path == "crates/oban-core/src/schema.rs")
        .unwrap();
    let at = schema
        .code
        .find("const STEPS:")
        .expect("schema.rs defines STEPS");
    let end = at + schema.shape[at..].find("];").unwrap();
    let items = schema.code[at..end].split_once("= [").unwrap().1;
    for item in items
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let is_migration =
            item.starts_with("include_str!(\"../../../migrations/v") && item.ends_with(".sql\")");
        assert!(is_migration, "STEPS holds {item:?}");
    }
    assert!(schema.code.contains("for step in &STEPS["));

    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        rendered > 15,
        "only {rendered} render calls found: is the scan blind?"
    );
}

#[test]
fn templates_have_no_placeholder_but_the_prefix() {
    let root = root();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("crates/oban-core/src/sql"))
        .unwrap()
        .chain(std::fs::read_dir(root.join("migrations")).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() > 20, "{files:?}");
    let mut texts: Vec<(String, String)> = files
        .iter()
        .map(|path| {
            (
                path.display().to_string(),
                std::fs::read_to_string(path).unwrap(),
            )
        })
        .collect();
    for (name, (path, init)) in string_constants(&sources()) {
        if init.contains("{prefix}") {
            texts.push((format!("{path}: {name}"), init));
        }
    }
    // A `{name}` other than these would be left in the statement as is: a sign that someone
    // meant to fill in a value, which must be a bind parameter instead.
    for (what, text) in texts {
        for line in text
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
        {
            for (open, _) in line.match_indices('{') {
                let Some(close) = line[open..].find('}').map(|i| open + i) else {
                    continue;
                };
                let inside = &line[open + 1..close];
                let is_placeholder = !inside.is_empty()
                    && inside
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                assert!(
                    !is_placeholder || matches!(inside, "prefix" | "insert_jobs" | "job_filter"),
                    "{what}: unexpected placeholder {{{inside}}} in {line:?}"
                );
            }
        }
    }
}

#[test]
fn statements_are_constants_or_rendered() {
    let sources = sources();
    let constants = string_constants(&sources);
    let mut problems = Vec::new();
    let mut calls = 0;
    for source in &sources {
        for function in ["query", "query_as", "query_scalar", "query_with", "raw_sql"] {
            for at in source.find_all(&format!("sqlx::{function}")) {
                let after = at + "sqlx::".len() + function.len();
                // sqlx::query_as::<_, (…)>(…) or sqlx::query_as(…); not sqlx::query::QueryAs.
                let open = if source.shape[after..].starts_with("::<") {
                    let mut depth = 0;
                    let close = source.shape[after..]
                        .char_indices()
                        .find(|&(_, c)| {
                            depth += match c {
                                '<' => 1,
                                '>' => -1,
                                _ => 0,
                            };
                            c == '>' && depth == 0
                        })
                        .unwrap()
                        .0;
                    after + close + 1
                } else {
                    after
                };
                if !source.shape[open..].starts_with('(') {
                    continue;
                }
                calls += 1;
                let statement = source.first_argument(open);
                let rendered_constant = statement
                    .split_once("prefix.render(")
                    .is_some_and(|(_, rest)| is_constant(rest.trim_end_matches(')'), &constants));
                // A variable or field: the compiler only lets a `SqlStr` (audited above) or a
                // `&'static str` (a constant, given the no-leak check) through.
                let variable = statement
                    .trim_end_matches(".clone()")
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
                let audited_renderer = AUDITED_RENDERERS.iter().any(|(path, function, _)| {
                    *path == source.path && *function == source.enclosing_fn(at)
                });
                if !(is_constant(statement, &constants)
                    || rendered_constant
                    || variable
                    || audited_renderer)
                {
                    problems.push(format!(
                        "{}:{}: sqlx::{function}({statement})",
                        source.path,
                        source.line_of(at)
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "statements not known at compile time:\n{}",
        problems.join("\n")
    );
    assert!(
        calls > 20,
        "only {calls} sqlx calls found: is the scan blind?"
    );
}

#[test]
fn no_format_builds_sql() {
    const STARTS: [&str; 17] = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "COMMENT", "LISTEN",
        "UNLISTEN", "NOTIFY", "GRANT", "REVOKE", "TRUNCATE", "SET", "WITH", "DO",
    ];
    let mut unaudited = Vec::new();
    for source in &sources() {
        for macro_name in ["format!(", "write!(", "writeln!(", "format_args!("] {
            for at in source.find_all(macro_name) {
                // The first string literal of the call: the format string.
                let open = at + macro_name.len() - 1;
                let Some(quote) = source.code[open..].find('"') else {
                    continue;
                };
                let text = source.code[open + quote + 1..].trim_start();
                let word: String = text.chars().take_while(char::is_ascii_alphabetic).collect();
                if !STARTS.contains(&word.as_str()) {
                    continue;
                }
                let line = source.line_text(at);
                if !AUDITED_FORMATS
                    .iter()
                    .any(|(path, audited, _)| *path == source.path && *audited == line)
                {
                    unaudited.push(format!("{}:{}: {line}", source.path, source.line_of(at)));
                }
            }
        }
    }
    assert!(
        unaudited.is_empty(),
        "SQL built with format! (use a bind parameter, or review and list it in AUDITED_FORMATS):\n{}",
        unaudited.join("\n")
    );
}

/// Prefixes that try to leave the quoted identifier, the schema, or ASCII.
const HOSTILE_PREFIXES: [&str; 16] = [
    "x; DROP TABLE oban_jobs",
    "public\"; DROP TABLE oban_jobs; --",
    "public\".oban_jobs; --",
    "public'",
    "pub$$lic",
    "public.oban_jobs",
    "pub lic",
    "public\0",
    "public\n",
    "publ\u{0131}c",
    "\u{ff50}\u{ff55}\u{ff42}\u{ff4c}\u{ff49}\u{ff43}",
    "caf\u{e9}",
    "{prefix}",
    "-- x",
    "1public",
    "",
];

#[test]
fn hostile_prefixes_are_refused_before_any_sql_exists() {
    for hostile in HOSTILE_PREFIXES {
        let error = Prefix::new(hostile).expect_err(hostile);
        assert!(
            error.to_string().contains("must match"),
            "{hostile:?}: {error}"
        );
    }
    assert!(
        Prefix::new("x".repeat(50)).is_err(),
        "longer than a channel allows"
    );
}

/// Accepted prefixes that only work if every use quotes them: mixed case (folded to lower case
/// unquoted), a reserved word, and the longest allowed. Each is migrated, used for an insert
/// with hostile values, and heard on its insert channel, against a real PostgreSQL.
#[tokio::test]
async fn prefixes_needing_quotes_work_end_to_end_and_values_stay_parameters() {
    let (pool, _, url) = crate::support::database().await;
    let hostile = "x'); DROP TABLE oban_jobs; -- \"{prefix}\" $1 \u{202e}ليلى 💥";
    for name in ["MixedCase", "select", &"p".repeat(49)] {
        let prefix = Prefix::new(name).unwrap();
        schema::migrate(&pool, &prefix)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let exact: Option<String> =
            sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = $1")
                .bind(name)
                .fetch_optional(&pool)
                .await
                .unwrap();
        assert_eq!(
            exact.as_deref(),
            Some(name),
            "the schema keeps its exact name"
        );

        let mut listener = PgListener::connect(&url).await.unwrap();
        let channel = prefix.channel(Channel::Insert.name());
        listener.listen(&channel).await.unwrap();

        let client = Client::new(pool.clone(), prefix.clone());
        let job = NewJob::new(hostile, &json!({"name": hostile, hostile: [hostile]}))
            .unwrap()
            .queue(hostile)
            .tags([hostile])
            .meta(&json!({"note": hostile}))
            .unwrap();
        let inserted = client
            .insert(&job)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        let row: (
            String,
            String,
            serde_json::Value,
            Vec<String>,
            serde_json::Value,
        ) = sqlx::query_as(prefix.render(
            "SELECT worker, queue, args, tags, meta FROM {prefix}.oban_jobs WHERE id = $1",
        ))
        .bind(inserted.id)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(row.0, hostile);
        assert_eq!(row.1, hostile);
        assert_eq!(row.2, json!({"name": hostile, hostile: [hostile]}));
        assert_eq!(row.3, [hostile.to_lowercase()]);
        assert_eq!(row.4, json!({"note": hostile}));

        let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .unwrap_or_else(|_| panic!("{name}: no insert notification on {channel}"))
            .unwrap();
        assert_eq!(notification.channel(), channel);
        assert_eq!(
            decode_payload(notification.payload()).unwrap(),
            json!({"queue": hostile})
        );
    }
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname = 'oban_jobs' AND relkind IN ('r', 'p')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        tables, 4,
        "public and the three prefixes still have their oban_jobs"
    );
}
