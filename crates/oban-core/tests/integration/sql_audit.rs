//! The "no string is ever spliced into SQL" guarantee, made checkable.
//!
//! sqlx 0.9 accepts statement text only as `impl SqlSafeStr`: a `&'static str`, a `SqlStr`, or
//! text wrapped in `AssertSqlSafe`. A `SqlStr` in turn is made only from a `&'static str` or
//! from `AssertSqlSafe`. So the compiler already refuses a runtime `String` as a statement, and
//! what is left to audit is small. Clippy checks the escape hatches (`clippy.toml`'s
//! `disallowed-methods`, under `-D warnings`):
//!
//! 1. `AssertSqlSafe` appears only where an `#[expect(clippy::disallowed_methods, reason)]`
//!    says why it is safe: `Prefix::render` (which substitutes only a validated, quoted schema
//!    name) and the throwaway-cluster helper.
//! 2. Nothing leaks runtime text into a `&'static str` (`Box::leak`, `String::leak`,
//!    `Vec::leak`), which sqlx would take as a constant; the one leak, of font bytes, says so.
//!
//! The scans below parse every `crates/*/src` file with `syn` and check what clippy cannot:
//!
//! 3. No static item holds owned text (`&*STATIC` would be a `&'static str` made at run time).
//! 4. Every `Prefix::render` template is a constant (`include_str!` of a `.sql` file or a
//!    literal), and every `{…}` placeholder in the templates is `{prefix}` (or the
//!    `{insert_jobs}` and `{job_filter}` fragments, themselves constants).
//! 5. Every `sqlx::query*`/`raw_sql` call gets a literal, a constant, a rendered constant or a
//!    variable holding one (which the type system then guarantees is a `SqlStr`).
//! 6. No `format!` builds SQL text except the audited ones (an integer constant, generated
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
use quote::ToTokens;
use serde_json::json;
use sqlx::postgres::PgListener;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Expr, Lit, Token};

/// Every `format!` in product code whose text starts like SQL, as (file, function), with the
/// reason it is safe.
const AUDITED_FORMATS: [(&str, &str, &str); 2] = [
    (
        "crates/oban-core/src/schema.rs",
        "migrate",
        "interpolates the integer constant CURRENT_VERSION, then goes through Prefix::render",
    ),
    (
        "crates/oban-core/src/testing/temp_postgres.rs",
        "fresh_database",
        "test clusters: the name is oban_test_<pid>_<counter>_<random u32>",
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

/// Computed templates the audited renderers are called with: schema.rs's `execute` gets the
/// version comment (an audited format) and each of `STEPS` (checked to be migration files).
const AUDITED_TEMPLATES: [(&str, &str); 2] = [("execute", "& record"), ("execute", "step")];

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One place in the sources: file, line, and the function it is in.
#[derive(Clone)]
struct Place {
    path: String,
    line: usize,
    function: String,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path, self.line)?;
        if !self.function.is_empty() {
            write!(f, " (in {})", self.function)?;
        }
        Ok(())
    }
}

/// A call found by the scan: where, the name it calls, and its arguments.
struct Call {
    place: Place,
    name: String,
    arguments: Vec<Expr>,
}

/// What the scan collects over all of `crates/*/src`.
#[derive(Default)]
struct Scan {
    path: String,
    functions: Vec<String>,
    /// Every `const` item: name → (file, initialiser).
    constants: BTreeMap<String, (String, Expr)>,
    /// Static items whose type holds owned text.
    owned_statics: Vec<(Place, String)>,
    /// `prefix.render(…)` calls (by a receiver named `prefix` or ending in `.prefix`).
    renders: Vec<Call>,
    /// `sqlx::query*(…)` and `sqlx::raw_sql(…)` calls, named by the function.
    statements: Vec<Call>,
    /// Calls of a plain path (`name(…)`, `module::name(…)`), named by its last segment.
    calls: Vec<Call>,
    /// `format!`-like macros: where, and their format string.
    formats: Vec<(Place, String)>,
}

impl Scan {
    fn place(&self, span: proc_macro2::Span) -> Place {
        Place {
            path: self.path.clone(),
            line: span.start().line,
            function: self.functions.last().cloned().unwrap_or_default(),
        }
    }

    fn in_function(&mut self, name: String, visit: impl FnOnce(&mut Self)) {
        self.functions.push(name);
        visit(self);
        self.functions.pop();
    }
}

impl<'ast> Visit<'ast> for Scan {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.in_function(item.sig.ident.to_string(), |scan| {
            visit::visit_item_fn(scan, item)
        });
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.in_function(item.sig.ident.to_string(), |scan| {
            visit::visit_impl_item_fn(scan, item)
        });
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        self.in_function(item.sig.ident.to_string(), |scan| {
            visit::visit_trait_item_fn(scan, item)
        });
    }

    fn visit_item_const(&mut self, item: &'ast syn::ItemConst) {
        self.constants.insert(
            item.ident.to_string(),
            (self.path.clone(), (*item.expr).clone()),
        );
        visit::visit_item_const(self, item);
    }

    fn visit_item_static(&mut self, item: &'ast syn::ItemStatic) {
        let ty = item.ty.to_token_stream().to_string();
        if ["String", "Box < str >", "Arc < str >", "Cow <"]
            .iter()
            .any(|owned| ty.contains(owned))
        {
            let place = self.place(item.span());
            self.owned_statics.push((place, ty));
        }
        visit::visit_item_static(self, item);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let receiver = call.receiver.to_token_stream().to_string();
        if call.method == "render" && (receiver == "prefix" || receiver.ends_with(". prefix")) {
            self.renders.push(Call {
                place: self.place(call.method.span()),
                name: "render".to_owned(),
                arguments: call.args.iter().cloned().collect(),
            });
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let Expr::Path(function) = &*call.func {
            let segments: Vec<String> = function
                .path
                .segments
                .iter()
                .map(|segment| segment.ident.to_string())
                .collect();
            let name = segments.last().cloned().unwrap_or_default();
            let found = Call {
                place: self.place(function.span()),
                name: name.clone(),
                arguments: call.args.iter().cloned().collect(),
            };
            let statement = ["query", "query_as", "query_scalar", "query_with", "raw_sql"];
            if segments.len() == 2 && segments[0] == "sqlx" && statement.contains(&name.as_str()) {
                self.statements.push(found);
            } else {
                self.calls.push(found);
            }
        }
        visit::visit_expr_call(self, call);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let name = mac.path.segments.last().map(|s| s.ident.to_string());
        if let Some("format" | "write" | "writeln" | "format_args") = name.as_deref() {
            // The format string: the first string literal of the call.
            let text = mac.tokens.clone().into_iter().find_map(|token| {
                syn::parse2::<syn::LitStr>(token.into_token_stream())
                    .ok()
                    .map(|literal| literal.value())
            });
            if let Some(text) = text {
                let place = self.place(mac.path.span());
                self.formats.push((place, text));
            }
        }
        // Macro arguments that are expressions (`assert!`, `vec!`, `format!`…) are scanned too.
        if let Ok(arguments) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
        {
            for argument in &arguments {
                self.visit_expr(argument);
            }
        }
        visit::visit_macro(self, mac);
    }
}

/// Every `.rs` file under `crates/*/src`, parsed and scanned.
fn scan() -> Scan {
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
    let mut scan = Scan::default();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let file =
            syn::parse_file(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        scan.path = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        scan.visit_file(&file);
    }
    let seen = |end: &str| files.iter().any(|path| path.ends_with(end));
    assert!(
        seen("oban-core/src/prefix.rs") && seen("badge-forge/src/worker.rs"),
        "the scan must see both crates"
    );
    scan
}

/// The text of a string literal expression.
fn string_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(text),
            ..
        }) => Some(text.value()),
        _ => None,
    }
}

/// The file an `include_str!("…")` expression names.
fn included_file(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Macro(mac) if mac.mac.path.is_ident("include_str") => mac
            .mac
            .parse_body::<syn::LitStr>()
            .ok()
            .map(|file| file.value()),
        _ => None,
    }
}

/// Whether `expr` is a statement known at compile time: a literal, or a constant (by any path)
/// initialised with a literal or an `include_str!` of a `.sql` file.
fn is_constant(expr: &Expr, constants: &BTreeMap<String, (String, Expr)>) -> bool {
    match expr {
        Expr::Reference(reference) => is_constant(&reference.expr, constants),
        Expr::Paren(inner) => is_constant(&inner.expr, constants),
        Expr::Lit(_) => string_literal(expr).is_some(),
        Expr::Path(path) => {
            let name = path.path.segments.last().unwrap().ident.to_string();
            let is_const_name = name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_const_name
                && constants.get(&name).is_some_and(|(_, init)| {
                    string_literal(init).is_some()
                        || included_file(init).is_some_and(|file| file.ends_with(".sql"))
                })
        }
        _ => false,
    }
}

/// Whether `(file, function)` is one of the audited renderers.
fn is_audited_renderer(place: &Place) -> bool {
    AUDITED_RENDERERS
        .iter()
        .any(|(path, name, _)| *path == place.path && *name == place.function)
}

#[test]
fn no_runtime_text_becomes_static() {
    let found: Vec<String> = scan()
        .owned_statics
        .iter()
        .map(|(place, ty)| format!("{place}: static of type {ty}"))
        .collect();
    assert!(
        found.is_empty(),
        "runtime text as &'static str would pass as an SQL constant:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_rendered_template_is_a_constant() {
    let scan = scan();
    let mut problems = Vec::new();
    for render in &scan.renders {
        let template = &render.arguments[0];
        if !is_constant(template, &scan.constants) && !is_audited_renderer(&render.place) {
            problems.push(format!(
                "{}: renders {}, not a constant",
                render.place,
                template.to_token_stream()
            ));
        }
    }
    // The audited renderers' callers (in the same crate): every template they get is a
    // constant, or one of the audited computed templates.
    for (path, function, _) in AUDITED_RENDERERS {
        let krate = &path[..path.find("/src/").unwrap()];
        for call in &scan.calls {
            if call.name != function || !call.place.path.starts_with(krate) {
                continue;
            }
            let audited = call.arguments.iter().any(|argument| {
                let text = argument.to_token_stream().to_string();
                is_constant(argument, &scan.constants)
                    || AUDITED_TEMPLATES.contains(&(function, text.as_str()))
            });
            if !audited {
                problems.push(format!(
                    "{}: {function} called with no constant template",
                    call.place
                ));
            }
        }
    }
    // The migration steps `execute` runs: include_str! of migrations/*.sql, nothing else.
    let (_, steps) = &scan.constants["STEPS"];
    let Expr::Array(steps) = steps else {
        panic!("STEPS is an array")
    };
    for step in &steps.elems {
        let file = included_file(step).unwrap_or_default();
        assert!(
            file.starts_with("../migrations/v") && file.ends_with(".sql"),
            "STEPS holds {}",
            step.to_token_stream()
        );
    }
    let schema = std::fs::read_to_string(root().join("crates/oban-core/src/schema.rs")).unwrap();
    assert!(schema.contains("for step in &STEPS["));

    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        scan.renders.len() > 15,
        "only {} render calls found: is the scan blind?",
        scan.renders.len()
    );
}

#[test]
fn templates_have_no_placeholder_but_the_prefix() {
    let root = root();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("crates/oban-core/src/sql"))
        .unwrap()
        .chain(std::fs::read_dir(root.join("crates/oban-core/migrations")).unwrap())
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
    for (name, (path, init)) in scan().constants {
        if let Some(text) = string_literal(&init).filter(|text| text.contains("{prefix}")) {
            texts.push((format!("{path}: {name}"), text));
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
    let scan = scan();
    let mut problems = Vec::new();
    for call in &scan.statements {
        let statement = &call.arguments[0];
        let rendered_constant = match statement {
            Expr::MethodCall(render) => {
                render.method == "render"
                    && render
                        .args
                        .first()
                        .is_some_and(|template| is_constant(template, &scan.constants))
            }
            _ => false,
        };
        // A variable or field: the compiler only lets a `SqlStr` (audited above) or a
        // `&'static str` (a constant, given the no-leak check) through.
        let variable = statement
            .to_token_stream()
            .to_string()
            .trim_end_matches(". clone ()")
            .chars()
            .all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.' || c == ' '
            });
        if !(is_constant(statement, &scan.constants)
            || rendered_constant
            || variable
            || is_audited_renderer(&call.place))
        {
            problems.push(format!(
                "{}: sqlx::{}({})",
                call.place,
                call.name,
                statement.to_token_stream()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "statements not known at compile time:\n{}",
        problems.join("\n")
    );
    assert!(
        scan.statements.len() > 20,
        "only {} sqlx calls found: is the scan blind?",
        scan.statements.len()
    );
}

#[test]
fn no_format_builds_sql() {
    const STARTS: [&str; 17] = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "COMMENT", "LISTEN",
        "UNLISTEN", "NOTIFY", "GRANT", "REVOKE", "TRUNCATE", "SET", "WITH", "DO",
    ];
    let scan = scan();
    let mut unaudited = Vec::new();
    for (place, text) in &scan.formats {
        let word: String = text
            .trim_start()
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        let audited = AUDITED_FORMATS
            .iter()
            .any(|(path, function, _)| *path == place.path && *function == place.function);
        if STARTS.contains(&word.as_str()) && !audited {
            unaudited.push(format!("{place}: {text:?}"));
        }
    }
    assert!(
        unaudited.is_empty(),
        "SQL built with format! (use a bind parameter, or review and list it in AUDITED_FORMATS):\n{}",
        unaudited.join("\n")
    );
    assert!(
        scan.formats.len() > 50,
        "only {} format strings found: is the scan blind?",
        scan.formats.len()
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
