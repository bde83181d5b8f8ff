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

/// `error: cause: cause`, the whole `source()` chain on one line, as a job's error entry
/// records it. A cause whose text the line already ends with is left out: many errors (I/O
/// errors wrapped by sqlx, for one) print their source in their own message.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = source.and_then(std::error::Error::source);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("render failed")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("connecting: refused")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn error_chain_lists_every_cause_once() {
        let error = Outer(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&error), "render failed: disk full");
        let error = Repeats(std::io::Error::other("refused"));
        assert_eq!(error_chain(&error), "connecting: refused");
    }
}
