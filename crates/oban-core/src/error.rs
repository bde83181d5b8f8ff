//! The error type shared by every module of the crate.

/// Everything that can go wrong inside `oban-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database answered with an error or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The Oban schema is missing, too old, or not what this crate can work with.
    #[error("{0}")]
    Schema(String),
    /// A job could not be built or encoded (bad worker name, queue, priority, args...).
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A configuration value is out of range or malformed.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A notification could not be decoded, or the listener stopped.
    #[error("notification error: {0}")]
    Notification(String),
    /// A JSON value could not be encoded or decoded.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with [`Error`] as its error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
