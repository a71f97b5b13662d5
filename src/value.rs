//! Column types and values.

use std::fmt;

/// How similarity between two vectors of a column is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Metric {
    /// Cosine similarity. Vectors are normalised when stored, so search uses the dot product.
    /// Score = cosine in [-1, 1], higher is more similar. The default.
    #[default]
    Cosine,
    /// Raw dot product. Score = dot product, higher is more similar.
    Dot,
    /// Euclidean distance. Score = -L2 distance (so higher is still more similar).
    L2,
}

impl Metric {
    /// The name used in SQL (`metric = 'cosine'`) and in the catalog.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        }
    }

    /// Parses `cosine`, `dot` or `l2` (case-insensitive).
    pub fn parse(s: &str) -> Option<Metric> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" => Some(Metric::Cosine),
            "dot" | "ip" | "inner_product" => Some(Metric::Dot),
            "l2" | "euclidean" => Some(Metric::L2),
            _ => None,
        }
    }
}

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// 64-bit signed integer.
    Integer,
    /// 64-bit float.
    Real,
    /// UTF-8 text. May carry an embedding when the column is declared embedded.
    Text,
    /// true / false.
    Boolean,
    /// Raw bytes.
    Blob,
    /// An image reference (path or bytes) plus its embedding.
    Image,
    /// A fixed-dimension f32 vector.
    Vector(u32),
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Integer => f.write_str("INTEGER"),
            ColumnType::Real => f.write_str("REAL"),
            ColumnType::Text => f.write_str("TEXT"),
            ColumnType::Boolean => f.write_str("BOOLEAN"),
            ColumnType::Blob => f.write_str("BLOB"),
            ColumnType::Image => f.write_str("IMAGE"),
            ColumnType::Vector(n) => write!(f, "VECTOR({n})"),
        }
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A file path, stored as given (absolute once resolved by the caller).
    Path(String),
    /// The encoded image bytes (JPEG, PNG, ...).
    Bytes(Vec<u8>),
}

impl ImageSource {
    /// How the image is named in errors and reports: its path, or `<blob N bytes>`.
    pub fn name(&self) -> String {
        match self {
            ImageSource::Path(p) => p.clone(),
            ImageSource::Bytes(b) => format!("<blob {} bytes>", b.len()),
        }
    }
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// SQL NULL.
    #[default]
    Null,
    /// INTEGER.
    Integer(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(String),
    /// BOOLEAN.
    Boolean(bool),
    /// BLOB.
    Blob(Vec<u8>),
    /// IMAGE: the reference only; its embedding travels in [`Row::embeddings`].
    Image(ImageSource),
    /// VECTOR(n).
    Vector(Vec<f32>),
}

impl Value {
    /// The type of this value, `None` for NULL.
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self {
            Value::Null => return None,
            Value::Integer(_) => ColumnType::Integer,
            Value::Real(_) => ColumnType::Real,
            Value::Text(_) => ColumnType::Text,
            Value::Boolean(_) => ColumnType::Boolean,
            Value::Blob(_) => ColumnType::Blob,
            Value::Image(_) => ColumnType::Image,
            Value::Vector(v) => ColumnType::Vector(v.len() as u32),
        })
    }

    /// True for NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A row as stored: the column values in schema order plus, for each IMAGE or embedded TEXT column,
/// its embedding.
///
/// `embeddings` has one slot per column (same length as `values`); a slot is `Some` exactly when the
/// column is IMAGE or embedded TEXT and the value is not NULL. VECTOR columns keep their vector in
/// `values` and `None` here.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// Column values, in schema order.
    pub values: Vec<Value>,
    /// Per-column embedding of IMAGE / embedded TEXT values.
    pub embeddings: Vec<Option<Vec<f32>>>,
}

/// A row filter for searches: `true` keeps the row.
pub type RowFilter<'a> = &'a (dyn Fn(RowId, &Row) -> bool + Sync);

impl Row {
    /// The vector of column `col`: a VECTOR value or the embedding of an IMAGE / embedded TEXT;
    /// `None` for NULL or a column out of range.
    pub fn vector(&self, col: usize) -> Option<&[f32]> {
        match self.values.get(col)? {
            Value::Vector(v) => Some(v),
            Value::Null => None,
            _ => self.embeddings.get(col)?.as_deref(),
        }
    }

    /// A row of plain values with no embeddings.
    pub fn new(values: Vec<Value>) -> Row {
        let embeddings = vec![None; values.len()];
        Row { values, embeddings }
    }
}

/// The automatic, unique, never reused id of a row within its table.
pub type RowId = u64;
