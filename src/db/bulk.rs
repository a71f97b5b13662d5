//! Bulk loading: rows streamed straight into big segments, committed by the manifest (not
//! logged row by row in the WAL).
//!
//! A [`BulkLoader`] validates rows and gives them ids as [`Database::insert`] does, holds them
//! until `bulk_chunk_bytes` (512 MiB) are pending, then commits the chunk: it builds a segment
//! of the chunk merged with the segment the loader committed before (whose graph it extends,
//! so each row is inserted into a graph once), and one manifest update replaces that segment
//! with the new one. A load therefore ends as one segment, whatever its size, and its graph
//! build runs on every core. Committed chunks are durable; pending rows are lost if the
//! process dies, and dropped without [`finish`](BulkLoader::finish).
//!
//! Concurrent writers keep working: automatic ids are reserved in blocks, so inserts beside a
//! load take other ids; a row of the load's segment that is deleted or updated meanwhile stays
//! deleted in the next one. The background compaction leaves the load's segment alone until
//! the load finishes.

use std::collections::HashSet;
use std::sync::Arc;

use super::compaction::Replaced;
use super::state::LiveSegment;
use super::validate::check_row;
use super::{Database, Inner, Writer};
use crate::memtable::row_bytes;
use crate::segment::{DeleteBitmap, MergeInput, Segment, merge_segments};
use crate::{Error, Result, Row, RowId, TableSchema, Value};

/// Automatic ids reserved at a time.
const ID_BLOCK: u64 = 4096;

impl Database {
    /// A loader for rows of `table` in bulk (see [`BulkLoader`]).
    pub fn bulk_loader(&self, table: &str) -> Result<BulkLoader> {
        self.with_writer(|_, _| Ok(()))?;
        let (id, schema) = {
            let tables = self.inner.tables.read();
            let t = tables
                .find(table)
                .ok_or_else(|| Error::NoSuchTable(table.to_string()))?;
            (t.id, t.schema.clone())
        };
        let pk = schema
            .primary_key
            .as_deref()
            .and_then(|p| schema.column_index(p));
        Ok(BulkLoader {
            db: self.clone(),
            table: id,
            schema,
            pk,
            pending: Vec::new(),
            pending_bytes: 0,
            seen: HashSet::new(),
            reserved: 0..0,
            segment: None,
            committed: 0,
            chunks: 0,
            chunk_bytes: self.inner.opts.bulk_chunk_bytes,
        })
    }

    /// Loads `rows` into `table` through a [`BulkLoader`] and returns their ids. On error, the
    /// chunks committed before it stay (see [`BulkLoader::committed`]).
    pub fn bulk_load(
        &self,
        table: &str,
        rows: impl IntoIterator<Item = Row>,
    ) -> Result<Vec<RowId>> {
        let mut loader = self.bulk_loader(table)?;
        let mut ids = Vec::new();
        for row in rows {
            ids.push(loader.push(row)?);
        }
        loader.finish()?;
        Ok(ids)
    }
}

/// Rows of one table loaded in bulk (see the module doc). Not `Clone`; one per load.
pub struct BulkLoader {
    db: Database,
    table: u64,
    schema: Arc<TableSchema>,
    pk: Option<usize>,
    pending: Vec<(RowId, Row)>,
    pending_bytes: usize,
    /// Ids given to rows of this load.
    seen: HashSet<RowId>,
    /// Automatic ids reserved and not yet given.
    reserved: std::ops::Range<u64>,
    /// The segment this load committed last.
    segment: Option<u64>,
    committed: u64,
    chunks: u64,
    chunk_bytes: usize,
}

impl std::fmt::Debug for BulkLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkLoader")
            .field("table", &self.schema.name)
            .field("pending", &self.pending.len())
            .field("committed", &self.committed)
            .finish()
    }
}

impl BulkLoader {
    /// Validates `row` (as [`Database::insert`] does), gives it its id and queues it; commits
    /// a chunk when enough is pending. A row refused here changes nothing.
    pub fn push(&mut self, mut row: Row) -> Result<RowId> {
        let number = self.committed as usize + self.pending.len() + 1;
        check_row(&self.schema, number, &mut row)?;
        let id = match self.pk.map(|c| (c, row.values.get(c))) {
            Some((c, Some(&Value::Integer(v)))) => {
                let col = || self.schema.columns[c].name.clone();
                let id = u64::try_from(v).ok().filter(|&id| id > 0).ok_or_else(|| {
                    Error::TypeMismatch {
                        table: self.schema.name.clone(),
                        column: col(),
                        row: number,
                        detail: format!("primary key must be positive, got {v}"),
                    }
                })?;
                if self.seen.contains(&id) || self.exists(id) {
                    return Err(Error::DuplicateKey {
                        table: self.schema.name.clone(),
                        column: col(),
                        key: v,
                    });
                }
                id
            }
            Some((c, _)) => {
                let id = self.next_auto_id()?;
                if let Some(v) = row.values.get_mut(c) {
                    *v = Value::Integer(id as i64);
                }
                id
            }
            None => self.next_auto_id()?,
        };
        self.seen.insert(id);
        self.pending_bytes += row_bytes(&row);
        self.pending.push((id, row));
        if self.pending_bytes >= self.chunk_bytes {
            self.commit_chunk()?;
        }
        Ok(id)
    }

    /// Sets the rows (approximate heap bytes) held before a chunk commits, for this load
    /// (default: [`DatabaseBuilder::bulk_chunk_bytes`](crate::DatabaseBuilder::bulk_chunk_bytes)).
    /// A loader whose rows are expensive to make again (embedded images) commits more often.
    #[must_use]
    pub fn chunk_bytes(mut self, n: usize) -> Self {
        self.chunk_bytes = n.max(1);
        self
    }

    /// Commits the pending rows now (a chunk); they are durable when this returns.
    pub fn commit(&mut self) -> Result<()> {
        self.commit_chunk()
    }

    /// Rows committed so far (durable).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Rows queued and not yet committed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Commits the pending rows; returns the rows this load committed in all.
    pub fn finish(mut self) -> Result<u64> {
        self.commit_chunk()?;
        Ok(self.committed)
    }

    fn exists(&self, id: RowId) -> bool {
        let tables = self.db.inner.tables.read();
        tables
            .by_id
            .get(&self.table)
            .is_some_and(|t| t.contains(id))
    }

    /// The next automatic id, reserving a block when needed.
    fn next_auto_id(&mut self) -> Result<RowId> {
        loop {
            if let Some(id) = self.reserved.next() {
                if !self.seen.contains(&id) && !self.exists(id) {
                    return Ok(id);
                }
                continue;
            }
            let table = self.table;
            let name = self.schema.name.clone();
            self.reserved = self.db.with_writer(|db, _| {
                let mut tables = db.tables.write();
                let t = tables
                    .by_id
                    .get_mut(&table)
                    .ok_or_else(|| Error::NoSuchTable(name.clone()))?;
                let start = t.next_row_id;
                // Keys are INTEGERs: past i64::MAX an automatic key would turn negative.
                let end = start.saturating_add(ID_BLOCK).min(i64::MAX as u64);
                if start >= end {
                    return Err(Error::KeysExhausted {
                        table: name.clone(),
                    });
                }
                t.next_row_id = end;
                Ok(start..end)
            })?;
        }
    }

    /// Builds and commits the pending rows with the load's previous segment.
    fn commit_chunk(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        rows.sort_unstable_by_key(|r| r.0);
        let inner = &self.db.inner;
        let (prev, seg_id) = self.db.with_writer(|db, w| {
            let prev = self.segment.and_then(|s| {
                let tables = db.tables.read();
                let t = tables.by_id.get(&self.table)?;
                t.segments.iter().find(|ls| ls.seg.id() == s).cloned()
            });
            let id = w.next_segment_id;
            w.next_segment_id += 1;
            Ok((prev, id))
        })?;
        let refs: Vec<(RowId, &Row)> = rows.iter().map(|(id, r)| (*id, r)).collect();
        let inputs: Vec<MergeInput<'_>> = prev.iter().map(LiveSegment::as_input).collect();
        let built = merge_segments(
            &*inner.opts.fs,
            &inner.path,
            seg_id,
            &self.schema,
            &inputs,
            &refs,
        );
        let (seg, counts) = match built {
            Ok(b) => b,
            Err(e) => {
                inner.poison_if_unknown(&e);
                let _ = inner.remove_segment_files(seg_id);
                return Err(e);
            }
        };
        let seg = Arc::new(seg);
        let n = rows.len() as u64;
        let committed = self.db.with_writer(|db, w| {
            db.commit_bulk(
                w,
                self.table,
                &self.schema,
                prev.as_ref(),
                seg.clone(),
                &rows,
            )
        });
        let replaced = match committed {
            Ok(r) => r,
            Err(e) => {
                if let Error::Io { .. } | Error::DuplicateKey { .. } | Error::NoSuchTable(_) = e {
                    let _ = inner.remove_segment_files(seg_id);
                }
                return Err(e);
            }
        };
        // After the writer lock, as for a merge.
        inner.remove_replaced(replaced);
        super::open::verify_in_background(&inner.opts, vec![Arc::downgrade(&seg)]);
        inner.note_written(&counts, seg.len());
        self.segment = Some(seg_id);
        self.committed += n;
        self.chunks += 1;
        Ok(())
    }
}

impl Drop for BulkLoader {
    fn drop(&mut self) {
        if let Some(s) = self.segment {
            self.db.inner.pinned.lock().remove(&s);
            self.db.inner.compactor.request();
        }
    }
}

impl Inner {
    /// The commit of a bulk chunk: `seg` replaces `prev` (the load's previous segment, if any)
    /// in table `table`, the rows of `prev` deleted meanwhile marked in it.
    #[allow(clippy::too_many_arguments)]
    fn commit_bulk(
        &self,
        w: &mut Writer,
        table: u64,
        schema: &TableSchema,
        prev: Option<&LiveSegment>,
        seg: Arc<Segment>,
        rows: &[(RowId, Row)],
    ) -> Result<Replaced> {
        let mut tables = self.tables.read().clone();
        let seg_id = seg.id();
        let t = tables
            .by_id
            .get_mut(&table)
            .ok_or_else(|| Error::NoSuchTable(schema.name.clone()))?;
        if t.schema.columns != schema.columns {
            return Err(Error::InvalidArgument(format!(
                "table {} changed during the bulk load",
                schema.name
            )));
        }
        let mut deleted = DeleteBitmap::new(seg.len());
        let mut at = t.segments.len();
        if let Some(prev) = prev
            && let Some(i) = t
                .segments
                .iter()
                .position(|ls| ls.seg.id() == prev.seg.id())
        {
            let now = &t.segments[i];
            for (pos, &rid) in now.seg.ids().iter().enumerate() {
                if now.deleted.contains(pos)
                    && !prev.deleted.contains(pos)
                    && let Some(p) = seg.position(rid)
                {
                    deleted.insert(p);
                }
            }
            t.segments.remove(i);
            at = i;
        } else if let Some(prev) = prev {
            // Pinned, so no merge took it; only a dropped table (refused above) would.
            return Err(Error::InvalidArgument(format!(
                "segment {} of the bulk load into {} is gone",
                prev.seg.id(),
                schema.name
            )));
        }
        // A key taken by a writer beside the load (an explicit key inside the load's range).
        if let Some((id, _)) = rows.iter().find(|(id, _)| t.contains(*id)) {
            return Err(Error::DuplicateKey {
                table: schema.name.clone(),
                column: schema.primary_key.clone().unwrap_or_else(|| "rowid".into()),
                key: *id as i64,
            });
        }
        let max = rows.iter().map(|r| r.0).max().unwrap_or(0);
        t.next_row_id = t.next_row_id.max(max + 1);
        t.writes += 1;
        t.segments.insert(at, LiveSegment::new(seg, deleted));
        let mut new_files = Vec::new();
        let old = self
            .save_bitmaps(&mut tables, &mut new_files)
            .and_then(|old| {
                self.store_manifest(w, &tables)?;
                Ok(old)
            });
        let old = match old {
            Ok(old) => old,
            Err(e) => {
                for p in &new_files {
                    let _ = crate::storage::remove_file(&*self.opts.fs, p);
                }
                return Err(e);
            }
        };
        {
            // Pinned before it is visible: the compaction thread never plans a merge with it
            // while the load goes on (it plans under the tables lock, merges under the writer
            // lock held here).
            let mut pinned = self.pinned.lock();
            if let Some(prev) = prev {
                pinned.remove(&prev.seg.id());
            }
            pinned.insert(seg_id);
        }
        *self.tables.write() = tables;
        Ok(Replaced {
            segments: prev.map(|p| p.seg.id()).into_iter().collect(),
            files: old,
        })
    }
}
