//! The crate's one error type.
//!
//! Owns [`Error`] and [`Result`]. Every layer returns these; errors carry the
//! operator, file, column, row or option they came from so a user can act on
//! them without a debugger. May use nothing else in the crate.

use std::path::PathBuf;

/// The result type used throughout weir.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in weir.
///
/// Variants name *where* the problem is (file, column, operator, option), so
/// the message printed by the CLI is enough to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The memory pool cannot satisfy a reservation and the consumer cannot
    /// spill (any more): the message names the consumer's share and the
    /// budget, and suggests a budget that would work.
    #[error("resources exhausted in {consumer}: {message}")]
    ResourcesExhausted {
        /// Who asked (operator or buffer name).
        consumer: String,
        /// Bytes asked for.
        requested: usize,
        /// The pool's budget.
        budget: usize,
        /// A budget under which the request would have been granted.
        suggested: usize,
        /// The shares as they were, and the suggestion.
        message: String,
    },

    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A Parquet file could not be read or written.
    #[error("parquet file {path}: {message}")]
    Parquet {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A CSV file could not be read (or its header differs from the others').
    #[error("csv file {path}: {message}")]
    Csv {
        /// The file involved.
        path: PathBuf,
        /// What went wrong, with the byte offset near it where known.
        message: String,
    },

    /// Two inputs that must share a schema do not.
    #[error("schema mismatch in {location}: {message}")]
    SchemaMismatch {
        /// File or operator where the mismatch was found.
        location: String,
        /// What differs.
        message: String,
    },

    /// A column is missing or has the wrong type.
    #[error("column `{column}` ({context}): {message}")]
    Column {
        /// The column name.
        column: String,
        /// Where it was looked up (operator, file or expression).
        context: String,
        /// What is wrong with it.
        message: String,
    },

    /// A source read a record it cannot decode (and dead letters are off).
    #[error("source {source_name}, partition {partition}, position {position}: malformed record: {message}")]
    BadRecord {
        /// The source (connector and address, e.g. `kafka orders@host:9092`).
        source_name: String,
        /// The partition, stream or connection.
        partition: String,
        /// The record's offset or id.
        position: String,
        /// Why it was refused, with (the start of) the record.
        message: String,
    },

    /// A live source or sink lost its broker, socket or file.
    #[error("{endpoint}: {message}")]
    Connector {
        /// The connector and address (e.g. `kafka 127.0.0.1:9092 topic orders`).
        endpoint: String,
        /// What went wrong.
        message: String,
    },

    /// An expression could not be parsed or evaluated.
    #[error("expression `{expr}`: {message}")]
    Expr {
        /// The expression text (or its display form).
        expr: String,
        /// What went wrong.
        message: String,
    },

    /// A bad option value (CLI flag, builder option or job-file field).
    #[error("option `{option}`: {message}")]
    InvalidOption {
        /// The option's name.
        option: String,
        /// What is wrong with its value.
        message: String,
    },

    /// A job file could not be parsed.
    #[error("job file {path}: {message}")]
    JobFile {
        /// The job file.
        path: PathBuf,
        /// The parser's message, with line and field.
        message: String,
    },

    /// An operator failed while running; wraps the cause with the operator's name.
    #[error("operator `{operator}` (subtask {subtask}): {source}")]
    Operator {
        /// The operator's name in the plan.
        operator: String,
        /// Which parallel instance.
        subtask: usize,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },

    /// Keyed state could not be written to or read back from its encoding.
    #[error("keyed state of `{operator}`: {message}")]
    State {
        /// The operator whose state it is.
        operator: String,
        /// What failed (the serde error).
        message: String,
    },

    /// A checkpoint could not be taken, found, read or restored.
    #[error("checkpoint {location}: {message}")]
    Checkpoint {
        /// The checkpoint directory, file or operator involved.
        location: String,
        /// What went wrong.
        message: String,
    },

    /// An Arrow kernel failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    /// The job graph is not valid (cycle, no sink, bad edge...).
    #[error("plan: {0}")]
    Plan(String),

    /// A thread panicked while running an operator.
    #[error("operator `{operator}` panicked: {message}")]
    Panic {
        /// The operator (or task) that panicked.
        operator: String,
        /// The panic payload, if it was a string.
        message: String,
    },

    /// The job was cancelled because another task failed first.
    #[error("cancelled")]
    Cancelled,

    /// A checkpoint directory or output is locked by another run.
    #[error("{what} is in use by another weir run ({holder}, lock {path}); wait for it to end or stop it with `weir stop`")]
    InUse {
        /// What is locked (e.g. "checkpoint directory ckpt/job").
        what: String,
        /// The lock file.
        path: PathBuf,
        /// Who holds it ("PID 1234").
        holder: String,
    },

    /// weir refused to write, rename or delete a path it does not own (an
    /// input, a file it did not write, a path outside its directories).
    #[error("refusing to touch {path}: {message}")]
    UnsafePath {
        /// The path weir would have touched.
        path: PathBuf,
        /// Why not, naming the other path involved.
        message: String,
    },

    /// The run was stopped by a signal or a caller before it finished.
    #[error("stopped by {by}: {message}")]
    Stopped {
        /// Who stopped it (`SIGTERM`, `SIGINT`, or the caller).
        by: String,
        /// What happened to the output.
        message: String,
    },
}

impl Error {
    /// Wraps `source` with the operator and subtask it came from, unless it
    /// already names an operator.
    pub fn in_operator(self, operator: &str, subtask: usize) -> Error {
        match self {
            e @ (Error::Operator { .. }
            | Error::Cancelled
            | Error::Panic { .. }
            | Error::Stopped { .. }) => e,
            e => Error::Operator {
                operator: operator.to_string(),
                subtask,
                source: Box::new(e),
            },
        }
    }

    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::InvalidOption`].
    pub fn option(option: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidOption {
            option: option.into(),
            message: message.into(),
        }
    }

    /// Builds an [`Error::Column`].
    pub fn column(
        column: impl Into<String>,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Column {
            column: column.into(),
            context: context.into(),
            message: message.into(),
        }
    }

    /// True if this error (or the error it wraps) is [`Error::ResourcesExhausted`].
    pub fn is_resources_exhausted(&self) -> bool {
        match self {
            Error::ResourcesExhausted { .. } => true,
            Error::Operator { source, .. } => source.is_resources_exhausted(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_wrapping_names_the_operator_once() {
        let e = Error::option("memory", "not a size").in_operator("window", 2);
        let twice = e.in_operator("outer", 0);
        let msg = twice.to_string();
        assert!(
            msg.starts_with("operator `window` (subtask 2): option `memory`"),
            "{msg}"
        );
    }

    #[test]
    fn resources_exhausted_is_found_through_wrapping() {
        let e = Error::ResourcesExhausted {
            consumer: "buf".into(),
            requested: 10,
            budget: 8,
            suggested: 1 << 20,
            message: "no room".into(),
        }
        .in_operator("x", 0);
        assert!(e.is_resources_exhausted());
        assert!(!Error::Cancelled.is_resources_exhausted());
    }
}
