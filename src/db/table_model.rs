//! A table's model as the catalog keeps it: the spec as stored (a relative folder made absolute),
//! the identity and dimension recorded with the table, and loading the model before SQL's CREATE
//! TABLE commits.

use std::path::Path;

use super::Database;
use crate::embedder::DEFAULT_MODEL;
use crate::{ColumnType, Error, Result, TableSchema};

/// The model spec to store for `spec`. A relative path naming an existing folder becomes absolute:
/// a table outlives the working directory it was created from. Anything else is kept as written:
/// absolute paths, `~/` paths (the loader expands them), hub ids, names a loader knows, and
/// folders that do not exist (then the loader says what is wrong). An existing folder wins over a
/// hub id of the same spelling, as in the built-in loader's resolution.
pub(super) fn stored_spec(spec: &str) -> Result<String> {
    let path = Path::new(spec);
    if path.is_absolute() || spec.starts_with("~/") || !path.is_dir() {
        return Ok(spec.to_string());
    }
    let absolute = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    absolute.into_os_string().into_string().map_err(|p| {
        Error::InvalidSchema(format!(
            "model folder {spec} is {} here, which is not UTF-8: give a UTF-8 absolute path",
            p.display()
        ))
    })
}

/// Whether the table has columns whose vectors come from its model (IMAGE, embedded TEXT).
fn has_model_columns(schema: &TableSchema) -> bool {
    schema
        .columns
        .iter()
        .any(|c| c.has_vector() && !matches!(c.ty, ColumnType::Vector(_)))
}

/// Records model `identity` on `schema` and gives its IMAGE / embedded TEXT columns dimension
/// `dim`.
pub(super) fn record_identity(schema: &mut TableSchema, identity: &str, dim: u32) -> Result<()> {
    // The limit of VECTOR(n), which these columns share their storage with.
    if dim == 0 || dim > 65_536 {
        return Err(Error::InvalidArgument(format!(
            "model dimension {dim} out of range"
        )));
    }
    schema.model_identity = Some(identity.to_string());
    for c in &mut schema.columns {
        if c.has_vector() && !matches!(c.ty, ColumnType::Vector(_)) {
            c.dim = dim;
        }
    }
    Ok(())
}

impl Database {
    /// Loads the model of a table about to be created (when it has model columns and no identity
    /// yet) and records its identity on `schema`. Runs before the writer lock is taken: loading
    /// can take seconds.
    pub(super) fn load_table_model(&self, schema: &mut TableSchema) -> Result<()> {
        if schema.model_identity.is_some() || !has_model_columns(schema) {
            return Ok(());
        }
        // Refuse what the create would refuse before paying for the load.
        self.with_writer(|_, _| Ok(()))?;
        if self.inner.tables.read().find(&schema.name).is_some() {
            return Err(Error::TableExists(schema.name.clone()));
        }
        let spec = schema.model.as_deref().unwrap_or(DEFAULT_MODEL);
        let model = self.models().get(spec).map_err(|err| match err {
            Error::Model(m) => Error::Model(format!("table {}: {m}", schema.name)),
            other => other,
        })?;
        let dim = u32::try_from(model.dim())
            .map_err(|_| Error::Model(format!("model {spec}: dimension too large")))?;
        record_identity(schema, model.identity(), dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relative_existing_folders_change() {
        let tmp = tempfile::tempdir().unwrap();
        let abs = tmp.path().to_str().unwrap();
        assert_eq!(stored_spec(abs).unwrap(), abs);
        for kept in [
            "openai/clip-vit-base-patch32",
            "~/models/clip",
            "./no/such/folder",
            "fake",
        ] {
            assert_eq!(stored_spec(kept).unwrap(), kept);
        }
        // `src` exists relative to the crate root, where cargo runs unit tests.
        let src = stored_spec("src").unwrap();
        assert!(Path::new(&src).is_absolute(), "{src}");
        assert_eq!(
            Path::new(&src).canonicalize().unwrap(),
            Path::new("src").canonicalize().unwrap()
        );
    }
}
