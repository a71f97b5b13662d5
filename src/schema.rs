//! Table schemas: columns, per-column metric, per-table HNSW parameters.

use crate::{ColumnType, Error, Metric, Result};

/// HNSW graph parameters of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbours per node on the upper layers (layer 0 keeps `2 * m`). Default 16.
    pub m: usize,
    /// Candidate list size while building. Default 200.
    pub ef_construction: usize,
    /// Default candidate list size while searching (per query override). Default 64.
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

impl HnswParams {
    /// Checks the parameters are in range.
    pub fn validate(&self) -> Result<()> {
        if !(2..=128).contains(&self.m) {
            return Err(Error::InvalidSchema(format!(
                "m must be in 2..=128, got {}",
                self.m
            )));
        }
        if !(1..=10_000).contains(&self.ef_construction) {
            return Err(Error::InvalidSchema(format!(
                "ef_construction must be in 1..=10000, got {}",
                self.ef_construction
            )));
        }
        if !(1..=10_000).contains(&self.ef_search) {
            return Err(Error::InvalidSchema(format!(
                "ef_search must be in 1..=10000, got {}",
                self.ef_search
            )));
        }
        Ok(())
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name (case preserved; looked up case-insensitively).
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Whether NULL is allowed. Default true.
    pub nullable: bool,
    /// For TEXT: whether the text is embedded (CLIP text encoder) and searchable by similarity.
    /// Always true for IMAGE, false for other types.
    pub embedded: bool,
    /// Similarity metric for vector-bearing columns (VECTOR, IMAGE, embedded TEXT).
    pub metric: Metric,
    /// Dimension of the vector for vector-bearing columns (VECTOR(n): n; IMAGE / embedded TEXT:
    /// the model's embedding dimension, 0 until known).
    pub dim: u32,
}

impl Column {
    /// A nullable column of type `ty` with default metric, not embedded (IMAGE is always embedded).
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Column {
        let dim = match ty {
            ColumnType::Vector(n) => n,
            _ => 0,
        };
        Column {
            name: name.into(),
            ty,
            nullable: true,
            embedded: ty == ColumnType::Image,
            metric: Metric::Cosine,
            dim,
        }
    }

    /// Whether this column has a vector index (VECTOR, IMAGE or embedded TEXT).
    pub fn has_vector(&self) -> bool {
        matches!(self.ty, ColumnType::Vector(_) | ColumnType::Image)
            || (self.ty == ColumnType::Text && self.embedded)
    }
}

/// The schema of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Table name (case preserved; looked up case-insensitively).
    pub name: String,
    /// Columns in order. The row id is implicit and not listed.
    pub columns: Vec<Column>,
    /// HNSW parameters for every vector column of the table.
    pub hnsw: HnswParams,
    /// The embedding model for IMAGE / embedded TEXT columns (a path or hub id), if any.
    pub model: Option<String>,
    /// The model's identity recorded at first use (id, dim, hash); checked on every later use.
    pub model_identity: Option<String>,
    /// Name of the INTEGER PRIMARY KEY column, which aliases the row id, if declared.
    pub primary_key: Option<String>,
}

impl TableSchema {
    /// A schema with default HNSW parameters and no model.
    pub fn new(name: impl Into<String>, columns: Vec<Column>) -> TableSchema {
        TableSchema {
            name: name.into(),
            columns,
            hnsw: HnswParams::default(),
            model: None,
            model_identity: None,
            primary_key: None,
        }
    }

    /// Index of the column named `name` (case-insensitive).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Like [`column_index`](Self::column_index) but a [`Error::NoSuchColumn`] when missing.
    pub fn require_column(&self, name: &str) -> Result<usize> {
        self.column_index(name).ok_or_else(|| Error::NoSuchColumn {
            table: self.name.clone(),
            column: name.to_string(),
        })
    }

    /// Checks names are unique and non-empty, VECTOR dims are in 1..=65536, parameters valid.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::InvalidSchema("empty table name".into()));
        }
        if self.columns.is_empty() {
            return Err(Error::InvalidSchema(format!(
                "table {} has no columns",
                self.name
            )));
        }
        for (i, c) in self.columns.iter().enumerate() {
            if c.name.is_empty() {
                return Err(Error::InvalidSchema(format!(
                    "column {i} of {} has no name",
                    self.name
                )));
            }
            if self.columns[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&c.name))
            {
                return Err(Error::InvalidSchema(format!(
                    "duplicate column {} in table {}",
                    c.name, self.name
                )));
            }
            if let ColumnType::Vector(n) = c.ty {
                if n == 0 || n > 65_536 {
                    return Err(Error::InvalidSchema(format!(
                        "{}.{}: VECTOR dimension must be in 1..=65536, got {n}",
                        self.name, c.name
                    )));
                }
            }
        }
        self.hnsw.validate()
    }
}
