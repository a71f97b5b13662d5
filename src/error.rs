//! The one public error type of mmdb.
//!
//! Every variant carries the context a user needs to act on it: the path, table, column or row
//! involved. Dependency errors never leak: they are turned into a variant here with a message.

use std::path::PathBuf;

/// `Result` with mmdb's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an image was refused ([`Error::Image`]); bulk loads report it by [`ImageErrorKind::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageErrorKind {
    /// The file does not exist.
    Missing,
    /// The file exists but cannot be read (permissions, an I/O error).
    Unreadable,
    /// A directory, FIFO, device or socket: images are read from regular files only.
    NotRegularFile,
    /// The file or blob is larger than `max_image_bytes`.
    TooLarge,
    /// The bytes are not an image format mmdb decodes.
    NotAnImage,
    /// The file ends before the image does (a cut JPEG, PNG, WebP or BMP).
    Truncated,
    /// More pixels than `max_image_pixels` (the decompression-bomb guard).
    TooManyPixels,
    /// Decoding would allocate more than `max_image_decode_bytes`.
    OverMemoryLimit,
    /// Decoding took longer than the decode deadline (bulk loads).
    DecodeDeadline,
    /// The decoder or the model failed on it.
    Undecodable,
}

impl ImageErrorKind {
    /// The snake_case name written in load reports, e.g. `too_many_pixels`.
    pub fn name(self) -> &'static str {
        match self {
            ImageErrorKind::Missing => "missing",
            ImageErrorKind::Unreadable => "unreadable",
            ImageErrorKind::NotRegularFile => "not_a_regular_file",
            ImageErrorKind::TooLarge => "too_large",
            ImageErrorKind::NotAnImage => "not_an_image",
            ImageErrorKind::Truncated => "truncated",
            ImageErrorKind::TooManyPixels => "too_many_pixels",
            ImageErrorKind::OverMemoryLimit => "over_memory_limit",
            ImageErrorKind::DecodeDeadline => "decode_deadline",
            ImageErrorKind::Undecodable => "undecodable",
        }
    }
}

/// Everything that can go wrong in mmdb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a named file.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file's contents do not match its format or checksum.
    #[error("corrupted file {path}: {detail}")]
    Corrupted {
        /// The damaged file.
        path: PathBuf,
        /// What was wrong and where (byte offset when known).
        detail: String,
    },

    /// Another process holds the database's write lock.
    #[error("database {path} is locked by another process ({holder})")]
    Locked {
        /// The database directory.
        path: PathBuf,
        /// Who holds the lock, e.g. `pid 1234`.
        holder: String,
    },

    /// The database was opened read-only and a write was attempted.
    #[error("database {path} is open read-only")]
    ReadOnly {
        /// The database directory.
        path: PathBuf,
    },

    /// No table of that name.
    #[error("no such table: {0}")]
    NoSuchTable(String),

    /// A table of that name already exists.
    #[error("table {0} already exists")]
    TableExists(String),

    /// No column of that name in the table.
    #[error("no such column: {table}.{column}")]
    NoSuchColumn {
        /// The table.
        table: String,
        /// The missing column.
        column: String,
    },

    /// A value does not fit its column (wrong type, wrong vector dimension, NULL in NOT NULL...).
    #[error("type mismatch in {table}.{column} (row {row}): {detail}")]
    TypeMismatch {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The row, counted from 1: its place in an INSERT's `VALUES` list or in a batch given
        /// to [`Database::insert`](crate::Database::insert); for an UPDATE (SQL or
        /// [`Database::update`](crate::Database::update)), its row id.
        row: usize,
        /// What was expected and what was given.
        detail: String,
    },

    /// A row gives a primary key that another row of the table, or of the same statement, has.
    #[error("duplicate primary key in {table}: {column} = {key} is taken")]
    DuplicateKey {
        /// The table.
        table: String,
        /// The primary key column.
        column: String,
        /// The key given.
        key: i64,
    },

    /// No automatic key is left: the table holds the largest key an INTEGER can hold
    /// (`i64::MAX`) and automatic keys only count upwards. Rows can still be given their keys.
    #[error(
        "table {table} has no automatic key left: its keys reach 9223372036854775807, the \
         largest INTEGER; give the key of each new row explicitly"
    )]
    KeysExhausted {
        /// The table.
        table: String,
    },

    /// A schema or option that mmdb refuses (bad HNSW parameter, duplicate column, ...).
    #[error("invalid schema: {0}")]
    InvalidSchema(String),

    /// An argument that mmdb refuses (k = 0, an unknown option, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// SQL that does not parse; line and column are 1-based.
    #[error("SQL syntax error at line {line}, column {column}: {message}")]
    SqlSyntax {
        /// Line of the error, 1-based (0 when unknown).
        line: u64,
        /// Column of the error, 1-based (0 when unknown).
        column: u64,
        /// The parser's message.
        message: String,
    },

    /// SQL that parses but that mmdb does not support.
    #[error("not supported: {0}")]
    NotSupported(String),

    /// SQL that is well formed but wrong (unknown function, wrong argument count, ...).
    #[error("SQL error: {0}")]
    Sql(String),

    /// A model could not be found, loaded or run.
    #[error("model error: {0}")]
    Model(String),

    /// A table was created with one model and is used with another.
    #[error("model mismatch for table {table}: table uses {expected}, got {actual}")]
    ModelMismatch {
        /// The table.
        table: String,
        /// The model identity stored with the table.
        expected: String,
        /// The model identity offered now.
        actual: String,
    },

    /// An image that cannot be read, decoded or is over a limit of
    /// [`ImageLimits`](crate::ImageLimits).
    #[error("image {source_name}: {detail}")]
    Image {
        /// The path, or `<blob N bytes>` for inline bytes.
        source_name: String,
        /// Which rule refused it.
        kind: ImageErrorKind,
        /// What went wrong.
        detail: String,
    },

    /// The operation was cancelled (Ctrl-C).
    #[error("interrupted")]
    Interrupted,

    /// The database was closed, or a background worker stopped.
    #[error("database is closed")]
    Closed,

    /// A write whose outcome is unknown: an fsync, truncate or rename failed after its bytes
    /// were handed to the operating system, so they may or may not be durable (a reopen tells).
    /// The database refuses every later write with [`Error::NeedsReopen`] until it is reopened.
    #[error(
        "I/O error on {path}: {source}; this write may or may not be durable, and the database \
         refuses writes until it is reopened"
    )]
    OutcomeUnknown {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An earlier I/O failure left this handle unsure of what is on disk: writes are refused
    /// until the database is reopened (which recovers from the files). Reads keep working.
    #[error(
        "database {path} refuses writes after an earlier I/O error ({cause}); reopen it to \
         recover (reads still work)"
    )]
    NeedsReopen {
        /// The database directory.
        path: PathBuf,
        /// The failure that stopped writes.
        cause: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Image`] for the image named `source_name`.
    pub fn image(
        source_name: impl Into<String>,
        kind: ImageErrorKind,
        detail: impl Into<String>,
    ) -> Self {
        Error::Image {
            source_name: source_name.into(),
            kind,
            detail: detail.into(),
        }
    }

    /// A [`Error::Corrupted`] for `path`.
    pub fn corrupted(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::Corrupted {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// The message of a caught panic (its `&str` or `String` payload), for the error that replaces it.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
