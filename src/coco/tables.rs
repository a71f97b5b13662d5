//! The two tables a COCO load writes, shared by the image loader, the `.npy` importer and the
//! benchmark.
//!
//! ```text
//! <name>           id INTEGER PRIMARY KEY (COCO image id), file_name TEXT, width INTEGER,
//!                  height INTEGER, image IMAGE                      -- HNSW on image
//! <name>_captions  id INTEGER PRIMARY KEY (annotation id), image_id INTEGER,
//!                  caption TEXT EMBEDDED                            -- HNSW on caption
//! ```
//! Both name the same model, so one text query can search either table and the benchmark can run
//! stored caption vectors against the image index and the reverse.

use crate::{Column, ColumnType, Database, Error, Result, TableSchema};

/// Name of the captions table of images table `table`.
pub fn captions_table(table: &str) -> String {
    format!("{table}_captions")
}

/// Schema of the images table.
pub fn images_schema(table: &str, model: &str) -> TableSchema {
    let mut id = Column::new("id", ColumnType::Integer);
    id.nullable = false;
    let mut s = TableSchema::new(
        table,
        vec![
            id,
            Column::new("file_name", ColumnType::Text),
            Column::new("width", ColumnType::Integer),
            Column::new("height", ColumnType::Integer),
            Column::new("image", ColumnType::Image),
        ],
    );
    s.model = Some(model.to_string());
    s.primary_key = Some("id".into());
    s
}

/// Schema of the captions table.
pub fn captions_schema(table: &str, model: &str) -> TableSchema {
    let mut id = Column::new("id", ColumnType::Integer);
    id.nullable = false;
    let mut caption = Column::new("caption", ColumnType::Text);
    caption.embedded = true;
    let mut s = TableSchema::new(
        captions_table(table),
        vec![id, Column::new("image_id", ColumnType::Integer), caption],
    );
    s.model = Some(model.to_string());
    s.primary_key = Some("id".into());
    s
}

/// Creates the two tables if absent (or checks the existing ones have the COCO layout) and records
/// the model identity and dimension on both.
pub fn ensure_tables(
    db: &Database,
    table: &str,
    model: &str,
    identity: &str,
    dim: usize,
) -> Result<()> {
    for want in [images_schema(table, model), captions_schema(table, model)] {
        let name = want.name.clone();
        match db.table_schema(&name) {
            Ok(have) => check_layout(&have, &want)?,
            Err(Error::NoSuchTable(_)) => match db.create_table(want) {
                // Another loader may have created it meanwhile; its layout is checked below.
                Ok(()) | Err(Error::TableExists(_)) => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
        let dim = u32::try_from(dim).map_err(|_| {
            Error::Model(format!(
                "embedding dimension {dim} of {identity} is too large"
            ))
        })?;
        db.set_model_identity(&name, identity, dim)?;
    }
    Ok(())
}

fn check_layout(have: &TableSchema, want: &TableSchema) -> Result<()> {
    let cols = |s: &TableSchema| {
        s.columns
            .iter()
            .map(|c| (c.name.to_ascii_lowercase(), c.ty, c.embedded))
            .collect::<Vec<_>>()
    };
    if cols(have) != cols(want) {
        let list = |s: &TableSchema| {
            s.columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.ty))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::InvalidArgument(format!(
            "table {} exists with columns ({}), not the COCO layout ({}); choose another --table",
            have.name,
            list(have),
            list(want)
        )));
    }
    Ok(())
}
