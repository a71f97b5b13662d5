//! Writes: each call is one WAL record, acknowledged per the sync mode, then applied.

use std::collections::HashSet;

use super::validate::check_row;
use super::{Database, Inner, Writer};
use crate::wal::WalOp;
use crate::{Error, Result, Row, RowId, Value};

impl Database {
    /// Inserts a batch of rows atomically and returns their ids.
    ///
    /// If the schema has an INTEGER PRIMARY KEY column and a row gives it, that value is the row
    /// id (an id already used is [`Error::DuplicateKey`]); otherwise the next id (one more than
    /// the largest ever used) is assigned and written into that column, and
    /// [`Error::KeysExhausted`] once that would pass `i64::MAX`. Every row is validated before
    /// anything is written.
    pub fn insert(&self, table: &str, mut rows: Vec<Row>) -> Result<Vec<RowId>> {
        self.write(|db, _| {
            let t = db.table(table)?;
            let schema = t.schema.clone();
            let pk = schema
                .primary_key
                .as_deref()
                .and_then(|p| schema.column_index(p));
            let mut next = t.next_row_id;
            let mut seen = HashSet::new();
            let mut out = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter_mut().enumerate() {
                // Errors name a row by its place in the batch, the first being row 1.
                let number = i + 1;
                check_row(&schema, number, row)?;
                let id = match pk.map(|c| (c, &row.values[c])) {
                    Some((c, Value::Integer(v))) => {
                        let id = u64::try_from(*v).ok().filter(|&id| id > 0).ok_or_else(|| {
                            Error::TypeMismatch {
                                table: schema.name.clone(),
                                column: schema.columns[c].name.clone(),
                                row: number,
                                detail: format!("primary key must be positive, got {v}"),
                            }
                        })?;
                        if t.contains(id) || !seen.insert(id) {
                            return Err(Error::DuplicateKey {
                                table: schema.name.clone(),
                                column: schema.columns[c].name.clone(),
                                key: *v,
                            });
                        }
                        id
                    }
                    Some((c, _)) => {
                        while t.contains(next) || seen.contains(&next) {
                            next += 1;
                        }
                        // Keys are INTEGERs: past i64::MAX an automatic key would turn negative.
                        let key = i64::try_from(next).map_err(|_| Error::KeysExhausted {
                            table: schema.name.clone(),
                        })?;
                        row.values[c] = Value::Integer(key);
                        seen.insert(next);
                        next
                    }
                    None => {
                        next = next.max(seen.iter().max().map_or(0, |m| m + 1));
                        // Row ids are read back as INTEGERs too.
                        if i64::try_from(next).is_err() {
                            return Err(Error::KeysExhausted {
                                table: schema.name.clone(),
                            });
                        }
                        seen.insert(next);
                        next
                    }
                };
                next = next.max(id + 1);
                out.push(id);
            }
            let op = WalOp::Insert {
                table: t.id,
                rows: out.iter().copied().zip(rows).collect(),
            };
            Ok((op, out))
        })
    }

    /// Deletes rows by id; returns how many existed.
    pub fn delete(&self, table: &str, ids: &[RowId]) -> Result<usize> {
        self.write(|db, _| {
            let t = db.table(table)?;
            let mut seen = HashSet::new();
            let ids: Vec<RowId> = ids
                .iter()
                .copied()
                .filter(|&id| t.contains(id) && seen.insert(id))
                .collect();
            let n = ids.len();
            Ok((WalOp::Delete { table: t.id, ids }, n))
        })
    }

    /// Deletes the rows for which `pred` is true; returns how many.
    pub fn delete_where(
        &self,
        table: &str,
        pred: &(dyn Fn(RowId, &Row) -> bool + Sync),
    ) -> Result<usize> {
        self.try_delete_where(table, &|id, row| Ok(pred(id, row)))
    }

    /// Deletes the rows for which `pred` returns `Ok(true)`; returns how many. The first `Err`
    /// stops the statement and is returned, and nothing is deleted: the rows are evaluated first
    /// and deleted in one WAL record.
    pub fn try_delete_where(
        &self,
        table: &str,
        pred: &(dyn Fn(RowId, &Row) -> Result<bool> + Sync),
    ) -> Result<usize> {
        // Evaluate under the writer lock so no write slips in between the scan and the delete.
        self.write(|db, _| {
            let t = db.table(table)?;
            let snap = super::TableSnapshot::new(&t);
            let mut ids = Vec::new();
            for r in snap.scan() {
                let (id, row) = r?;
                if pred(id, &row)? {
                    ids.push(id);
                }
            }
            let n = ids.len();
            Ok((WalOp::Delete { table: t.id, ids }, n))
        })
    }

    /// Replaces whole rows, keeping their ids; ids that do not exist are skipped. Returns how many
    /// rows were replaced. An INTEGER PRIMARY KEY column keeps the row id.
    pub fn update(&self, table: &str, rows: Vec<(RowId, Row)>) -> Result<usize> {
        self.write(|db, _| update_op(&db.table(table)?, rows))
    }

    /// [`update`](Self::update) for rows computed from `read`: applied only if no insert, update
    /// or delete reached the table since `read` was taken, else `Ok(None)` and nothing is
    /// written (the caller reads again and retries). This is how SQL UPDATE avoids lost updates
    /// without holding the writer lock while it evaluates and embeds.
    pub fn update_if_unchanged(
        &self,
        table: &str,
        read: &super::TableSnapshot,
        rows: Vec<(RowId, Row)>,
    ) -> Result<Option<usize>> {
        self.write(|db, _| {
            let t = db.table(table)?;
            if t.writes != read.writes {
                let op = WalOp::Update {
                    table: t.id,
                    rows: Vec::new(),
                };
                return Ok((op, None));
            }
            let (op, n) = update_op(&t, rows)?;
            Ok((op, Some(n)))
        })
    }

    /// Runs one write: `f` validates and builds the WAL operation; it is logged, applied and
    /// made durable per the sync mode, and acknowledged; then the flush thread is asked for a
    /// flush if the memtables are over the threshold (its failure is not this write's: see
    /// [`Database::health`]). Before it, the write may wait for room (see `maintenance`).
    fn write<T>(&self, f: impl FnOnce(&Inner, &mut Writer) -> Result<(WalOp, T)>) -> Result<T> {
        self.inner.wait_for_room();
        let mut deletes = false;
        let (seq, gc, out) = self.with_writer(|db, w| {
            let (op, out) = f(db, w)?;
            if is_empty(&op) {
                return Ok((None, None, out));
            }
            deletes = !matches!(op, WalOp::Insert { .. });
            let seq = w.wal.append(&op)?;
            {
                let mut tables = db.tables.write();
                if let Some(t) = tables.by_id.get_mut(&op.table()) {
                    t.apply(op);
                }
            }
            Ok((Some(seq), Some(w.wal.group_commit()), out))
        })?;
        if let (Some(seq), Some(gc)) = (seq, gc) {
            // Group commit: fsync outside the writer lock, shared with concurrent writers.
            gc.sync_to(seq)?;
            self.inner.after_write(deletes);
        }
        Ok(out)
    }
}

/// Validates replacement rows for table `t` and builds their WAL record.
fn update_op(t: &super::TableState, rows: Vec<(RowId, Row)>) -> Result<(WalOp, usize)> {
    let schema = t.schema.clone();
    let pk = schema
        .primary_key
        .as_deref()
        .and_then(|p| schema.column_index(p));
    let mut seen = HashSet::new();
    let mut keep = Vec::with_capacity(rows.len());
    for (id, mut row) in rows {
        // A replacement row is named by its id, as SQL UPDATE names it.
        let number = usize::try_from(id).unwrap_or(usize::MAX);
        check_row(&schema, number, &mut row)?;
        if let Some(c) = pk {
            match row.values[c] {
                Value::Integer(v) if v as u64 == id => {}
                Value::Null => row.values[c] = Value::Integer(id as i64),
                ref v => {
                    return Err(Error::TypeMismatch {
                        table: schema.name.clone(),
                        column: schema.columns[c].name.clone(),
                        row: number,
                        detail: format!("cannot change the primary key to {v:?}"),
                    });
                }
            }
        }
        if t.contains(id) && seen.insert(id) {
            keep.push((id, row));
        }
    }
    let n = keep.len();
    Ok((
        WalOp::Update {
            table: t.id,
            rows: keep,
        },
        n,
    ))
}

fn is_empty(op: &WalOp) -> bool {
    match op {
        WalOp::Insert { rows, .. } | WalOp::Update { rows, .. } => rows.is_empty(),
        WalOp::Delete { ids, .. } => ids.is_empty(),
    }
}

impl Inner {
    /// A copy of table `name`'s state (cheap: `Arc`s).
    fn table(&self, name: &str) -> Result<super::TableState> {
        let tables = self.tables.read();
        tables
            .find(name)
            .cloned()
            .ok_or_else(|| Error::NoSuchTable(name.to_string()))
    }
}
