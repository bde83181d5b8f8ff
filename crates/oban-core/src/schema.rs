//! Installing and checking the Oban schema (version 14).
//!
//! [`migrate`] brings a database to the schema Elixir Oban 2.23 creates at version 14, applying
//! the same steps Elixir applies (`migrations/v01.sql` … `v14.sql` in this crate, one
//! per Elixir version) and recording the version as the comment on `oban_jobs`, where Elixir
//! reads it. [`check`] is what a node runs at start: it refuses a missing or outdated schema
//! with one message that says how to fix it, and reports the facts that differ between the
//! schemas Elixir and oban-py create.

use sqlx::{PgPool, Postgres, Transaction};

use crate::{Error, Prefix, Result};

/// The schema version this crate is written against (Elixir Oban 2.21 – 2.23).
pub const CURRENT_VERSION: u32 = 14;

/// `migrations/vNN.sql`, in order: index 0 is version 1.
const STEPS: [&str; CURRENT_VERSION as usize] = [
    include_str!("../migrations/v01.sql"),
    include_str!("../migrations/v02.sql"),
    include_str!("../migrations/v03.sql"),
    include_str!("../migrations/v04.sql"),
    include_str!("../migrations/v05.sql"),
    include_str!("../migrations/v06.sql"),
    include_str!("../migrations/v07.sql"),
    include_str!("../migrations/v08.sql"),
    include_str!("../migrations/v09.sql"),
    include_str!("../migrations/v10.sql"),
    include_str!("../migrations/v11.sql"),
    include_str!("../migrations/v12.sql"),
    include_str!("../migrations/v13.sql"),
    include_str!("../migrations/v14.sql"),
];

/// The first key of the advisory lock that serialises [`migrate`] calls (the second is a hash
/// of the prefix), so that two nodes starting together do not migrate at the same time.
const MIGRATION_LOCK_CLASS: i32 = 0x0BA1;

/// The schema version found in the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaVersion {
    /// The version recorded by Elixir (or by [`migrate`]) in the `oban_jobs` comment.
    Recorded(u32),
    /// The comment `'∞'`, which Oban Pro writes for tables it manages itself; never migrated.
    Unbounded,
    /// A schema installed by oban-py, recognised by its shape whatever its comment says (0.7
    /// writes none, 0.6 wrote `'1'`): `errors` stored as `jsonb`, `oban_leaders` and
    /// `oban_producers` present.
    ObanPy,
}

/// How the `errors` column stores its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorsColumn {
    /// `jsonb[]`, a PostgreSQL array of JSON objects (schemas created by Elixir).
    JsonbArray,
    /// `jsonb` holding a JSON array (schemas created by oban-py).
    Jsonb,
}

/// The table a runtime without Elixir's elects its leader in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadershipTable {
    /// Elixir's `oban_peers` (schemas created by Elixir, or by [`migrate`]).
    ObanPeers,
    /// oban-py's `oban_leaders`, on a schema oban-py installed without Elixir's migrations.
    ObanLeaders,
}

/// What [`check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaInfo {
    /// The version (or kind) of the schema.
    pub version: SchemaVersion,
    /// The type of `oban_jobs.errors`, which decides how errors are decoded (both shapes accept
    /// appending with `errors || <jsonb element>`).
    pub errors: ErrorsColumn,
    /// Where this node elects its leader under its own name: `oban_peers` when it exists,
    /// else oban-py's `oban_leaders` (an oban-py install has no `oban_peers`); `None` when
    /// neither exists, and the node then cannot lead.
    pub leadership_table: Option<LeadershipTable>,
    /// Whether oban-py's `oban_producers` exists: the lifeline then reads from it which oban-py
    /// producers are alive.
    pub oban_producers: bool,
}

/// What [`migrate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Migration {
    /// Applied the steps after version `from` (after none when `from` is 0) up to
    /// [`CURRENT_VERSION`] and recorded it.
    Applied {
        /// The version found before migrating (0: no table or no comment).
        from: u32,
    },
    /// The schema was already at version 14 or newer (or `'∞'`); nothing was changed.
    UpToDate(SchemaVersion),
    /// The schema was installed by oban-py, whose table Elixir's steps cannot upgrade; it was
    /// left exactly as it was (it already has everything a node needs).
    LeftObanPyInstall,
}

/// What the catalog says about the prefix, read in one round trip.
#[derive(Debug)]
struct Found {
    /// Whether `oban_jobs` exists in the prefix.
    has_jobs: bool,
    /// The table comment, if any.
    comment: Option<String>,
    /// `format_type` of `oban_jobs.errors`, if the column exists.
    errors_type: Option<String>,
    has_peers: bool,
    has_leaders: bool,
    has_producers: bool,
}

const INSPECT_SQL: &str = "
SELECT
  jobs.oid IS NOT NULL,
  obj_description(jobs.oid, 'pg_class'),
  (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
    WHERE a.attrelid = jobs.oid AND a.attname = 'errors' AND NOT a.attisdropped),
  to_regclass(format('%I.oban_peers', $1::text)) IS NOT NULL,
  to_regclass(format('%I.oban_leaders', $1::text)) IS NOT NULL,
  to_regclass(format('%I.oban_producers', $1::text)) IS NOT NULL
FROM (SELECT to_regclass(format('%I.oban_jobs', $1::text))::oid AS oid) AS jobs";

impl Found {
    async fn read(conn: &mut sqlx::PgConnection, prefix: &Prefix) -> Result<Self> {
        let (has_jobs, comment, errors_type, has_peers, has_leaders, has_producers): (
            bool,
            Option<String>,
            Option<String>,
            bool,
            bool,
            bool,
        ) = sqlx::query_as(INSPECT_SQL)
            .bind(prefix.as_str())
            // Run once per start: never worth a named statement, which a transaction-mode
            // pooler would leave behind on a shared server connection.
            .persistent(false)
            .fetch_one(conn)
            .await?;
        Ok(Self {
            has_jobs,
            comment,
            errors_type,
            has_peers,
            has_leaders,
            has_producers,
        })
    }

    /// The version as Elixir reads it: no table or no comment is 0, `'∞'` is unbounded.
    /// A comment that is not a number is an error (Elixir would crash on it).
    fn recorded_version(&self, prefix: &Prefix) -> Result<SchemaVersion> {
        match self.comment.as_deref().map(str::trim) {
            None => Ok(SchemaVersion::Recorded(0)),
            Some("∞") => Ok(SchemaVersion::Unbounded),
            Some(text) => text.parse().map(SchemaVersion::Recorded).map_err(|_| {
                Error::Schema(format!(
                    "the comment on {prefix}.oban_jobs is {text:?}, not an Oban schema version; \
                     Oban records its migrated version there, so fix or remove the comment"
                ))
            }),
        }
    }

    /// oban-py's own table: `errors` is plain `jsonb` and its companion tables exist. Elixir's
    /// steps cannot be applied to it (protocol §1.6), whatever comment it carries.
    fn is_oban_py_install(&self) -> bool {
        self.has_jobs
            && self.errors_type.as_deref() == Some("jsonb")
            && self.has_leaders
            && self.has_producers
    }
}

/// Brings the schema in `prefix` to version 14, the way `Oban.Migration.up(version: 14)` does.
///
/// Reads the version Elixir recorded (the `oban_jobs` comment; a missing table or comment is
/// version 0) and applies every later step in one transaction, then records `'14'`. Creates the
/// schema itself when `prefix` is not `public`. Safe to call on every start and from several
/// nodes at once: callers are serialised by an advisory lock and re-read the version under it.
///
/// Never changes a schema that is already at version 14 or newer, marked `'∞'`, or installed
/// by oban-py (see [`Migration`]); every step is idempotent, so a database whose comment was
/// lost or rewound is brought forward without dropping anything that belongs to version 14.
///
/// Enum labels added by the steps become usable only after this returns (a PostgreSQL rule),
/// so migrate before starting workers.
pub async fn migrate(pool: &PgPool, prefix: &Prefix) -> Result<Migration> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(MIGRATION_LOCK_CLASS)
        .bind(prefix.as_str())
        .persistent(false)
        .execute(&mut *tx)
        .await?;

    // Read under the lock: a node that waited sees what the winner committed.
    let found = Found::read(&mut tx, prefix).await?;
    if found.is_oban_py_install() {
        return Ok(Migration::LeftObanPyInstall);
    }
    let from = match found.recorded_version(prefix)? {
        SchemaVersion::Recorded(v) if v < CURRENT_VERSION => v,
        current => return Ok(Migration::UpToDate(current)),
    };

    if prefix.as_str() != "public" {
        execute(&mut tx, prefix, "CREATE SCHEMA IF NOT EXISTS {prefix}").await?;
    }
    for step in &STEPS[from as usize..] {
        execute(&mut tx, prefix, step).await?;
    }
    let record = format!("COMMENT ON TABLE {{prefix}}.oban_jobs IS '{CURRENT_VERSION}'");
    execute(&mut tx, prefix, &record).await?;
    tx.commit().await?;

    tracing::info!(%prefix, from, to = CURRENT_VERSION, "migrated the Oban schema");
    Ok(Migration::Applied { from })
}

/// Checks that `prefix` holds a schema this crate can run against, as a node does at start.
///
/// Accepts version 14 or newer (and `'∞'`), and an oban-py 0.7 install. Anything else is
/// refused with one [`Error::Schema`] that names the problem and how to fix it (this crate's
/// [`migrate`] or Elixir's; a program adds its own command, which this crate does not know).
pub async fn check(pool: &PgPool, prefix: &Prefix) -> Result<SchemaInfo> {
    // A transaction keeps the statement's parse and execution on one server connection
    // behind a transaction-mode pooler.
    let mut tx = pool.begin().await?;
    let found = Found::read(&mut tx, prefix).await?;
    tx.commit().await?;
    let fix = format!(
        "migrate it with oban_core::schema::migrate or, from Elixir, \
         `Oban.Migration.up(version: {CURRENT_VERSION}, prefix: \"{prefix}\")`"
    );

    if !found.has_jobs {
        return Err(Error::Schema(format!(
            "the Oban schema is not installed: there is no table {prefix}.oban_jobs; {fix}"
        )));
    }

    let errors = match found.errors_type.as_deref() {
        Some("jsonb[]") => ErrorsColumn::JsonbArray,
        Some("jsonb") => ErrorsColumn::Jsonb,
        other => {
            return Err(Error::Schema(format!(
                "{prefix}.oban_jobs.errors is {}, but Oban stores errors as jsonb[] (Elixir) or \
                 jsonb (oban-py); this is not an Oban jobs table this node can use",
                other.unwrap_or("missing")
            )));
        }
    };

    let version = if found.is_oban_py_install() {
        SchemaVersion::ObanPy
    } else {
        match found.recorded_version(prefix)? {
            SchemaVersion::Recorded(v) if v < CURRENT_VERSION => {
                let seen = if v == 0 {
                    "has no version comment (and is not an oban-py install)".to_owned()
                } else {
                    format!("is at version {v}")
                };
                return Err(Error::Schema(format!(
                    "the Oban schema in {prefix} {seen}, but version {CURRENT_VERSION} is \
                     required; {fix}"
                )));
            }
            SchemaVersion::Recorded(v) if v > CURRENT_VERSION => {
                tracing::warn!(
                    %prefix,
                    version = v,
                    "the Oban schema is newer than version {CURRENT_VERSION}; continuing"
                );
                SchemaVersion::Recorded(v)
            }
            version => version,
        }
    };

    Ok(SchemaInfo {
        version,
        errors,
        leadership_table: if found.has_peers {
            Some(LeadershipTable::ObanPeers)
        } else if found.has_leaders {
            Some(LeadershipTable::ObanLeaders)
        } else {
            None
        },
        oban_producers: found.has_producers,
    })
}

/// Runs a multi-statement SQL template with `{prefix}` filled in.
async fn execute(
    tx: &mut Transaction<'_, Postgres>,
    prefix: &Prefix,
    template: &str,
) -> Result<()> {
    // The steps are the crate's own files and the prefix is validated and quoted by `Prefix`.
    sqlx::raw_sql(prefix.render(template))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
