//! Background maintenance: flushes (memtables to segments, `flush.rs`) and compactions
//! (segments merged, `compaction.rs`), each on a thread of its own, so that writers never
//! build a segment and a long merge never holds up a flush.
//!
//! - A write that leaves the memtables over `memtable_max_bytes` (64 MiB) asks the flush
//!   thread for a flush and returns. The flush thread also flushes a memtable of at least an
//!   eighth of that once writes have stopped for a second (an idle flush: the memtable is
//!   searched by scanning every row). Writers wait only as back-pressure: before a write, while
//!   the unflushed rows (the memtables being flushed and the new ones) pass twice that bound,
//!   unless the last flush failed (then the WAL keeps taking writes, and the flush is retried).
//! - A flush extends the table's newest segment (its graph reused, the frozen rows inserted
//!   into it) while that segment holds at most `merge_factor` flushes' worth of rows
//!   (`flush.rs`), so a steady load writes segments of `merge_factor` flushes whose rows were
//!   inserted into a graph once.
//! - After each flush, and after deletes, the compaction thread applies the merge policy
//!   ([`plan`]): size tiers with fan-in `merge_factor` (4) keep the number of times a row is
//!   re-indexed logarithmic in the table size; a table over `max_segments` (8) merges its
//!   smallest segments; a segment with more than `max_deleted_fraction` (30%) of its rows
//!   deleted is rewritten.
//! - A failure is kept in [`Database::health`] and retried after a wait that doubles from
//!   1 s to 60 s; it never fails a write.
//!
//! [`Database::checkpoint`] and [`Database::compact`] do the same work in the caller's thread,
//! after any background run of the same kind finishes. With
//! [`DatabaseBuilder::background_maintenance(false)`](super::DatabaseBuilder::background_maintenance)
//! there are no threads: the write that crosses a threshold runs the flush and merges itself
//! (after its acknowledgement), which makes the file operations of a workload deterministic
//! (the fault-injection tests rely on it).

use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::state::TableState;
use super::{Database, Inner};
use crate::Result;
use crate::segment::BuildCounts;

/// First wait before a failed background flush or compaction is tried again; it doubles with
/// each failure up to [`MAX_RETRY_WAIT`] (a full disk must not make the threads spin on a
/// segment build that fails).
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(1);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// The flush thread also flushes a memtable of at least `memtable_max_bytes /
/// IDLE_FLUSH_FRACTION` (8 MiB by default) once no write came for `IDLE_FLUSH_AFTER`, so that
/// searches after a load do not keep scanning it (docs/perf.md#bulk-loading-bench).
const IDLE_FLUSH_FRACTION: usize = 8;
const IDLE_FLUSH_AFTER: Duration = Duration::from_secs(1);

/// The worker for the flush thread.
pub(super) fn flush_worker() -> Worker {
    Worker::with_tick(IDLE_FLUSH_AFTER)
}

/// Counters of the work maintenance did since open (see [`Database::maintenance_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaintenanceStats {
    /// Flushes committed.
    pub flushes: u64,
    /// Merges (compactions) built.
    pub merges: u64,
    /// Segments written by flushes, merges and bulk-load chunks.
    pub segments_written: u64,
    /// Rows written to segments (a row merged twice counts twice).
    pub rows_written: u64,
    /// Vectors inserted into HNSW graphs (a from-scratch build inserts all of its vectors).
    pub vectors_indexed: u64,
    /// Vectors a merge kept, links and all, from an input's graph instead of inserting them.
    pub vectors_reused: u64,
}

impl Database {
    /// Writes every memtable to a new segment, saves pending deletions, commits the manifest
    /// and rotates the WAL, in the caller's thread (after a background flush in progress).
    pub fn checkpoint(&self) -> Result<()> {
        self.check_writable()?;
        let _run = self.inner.flusher.run.lock();
        self.inner.flush()
    }

    /// Merges all segments of `table` into one, dropping deleted rows (after a checkpoint).
    /// The merged graph starts from the largest segment's. Readers and writers keep working
    /// meanwhile.
    pub fn compact(&self, table: &str) -> Result<()> {
        self.checkpoint()?;
        let _run = self.inner.compactor.run.lock();
        let (id, segs) = {
            let tables = self.inner.tables.read();
            let id = tables.find_id(table)?;
            let segs = tables
                .by_id
                .get(&id)
                .map(|t| t.segments.iter().map(|s| s.seg.id()).collect::<Vec<_>>())
                .unwrap_or_default();
            (id, segs)
        };
        self.inner.merge(id, &segs)
    }

    /// Blocks until the background threads have nothing left to do (or are waiting to retry
    /// a failure, see [`health`](Self::health)). Benchmarks and tests use it; an application
    /// never needs to.
    pub fn wait_for_maintenance(&self) {
        for w in [&self.inner.flusher, &self.inner.compactor] {
            let mut st = w.state.lock();
            while st.busy || (st.requested && st.retry_at.is_none() && !st.shutdown) {
                w.done.wait_for(&mut st, Duration::from_millis(50));
            }
        }
    }

    /// What maintenance did since open: flushes, merges, rows and vectors (re)indexed.
    pub fn maintenance_stats(&self) -> MaintenanceStats {
        *self.inner.stats.lock()
    }

    /// `Ok` when writes are possible (for maintenance calls that write only files).
    fn check_writable(&self) -> Result<()> {
        self.with_writer(|_, _| Ok(()))
    }
}

/// What a worker runs.
type Job = fn(&Inner) -> Result<()>;

/// One background thread's mailbox: requests in, completion out.
#[derive(Default)]
pub(super) struct Worker {
    state: Mutex<WorkerState>,
    /// Signalled when a request arrives or on shutdown.
    wake: Condvar,
    /// Signalled when a run ends (writers waiting for room, `wait_for_maintenance`).
    done: Condvar,
    /// Held for the whole of a run: background and foreground runs of one kind never overlap.
    pub(super) run: Mutex<()>,
    /// Run the job this often even without a request (the flush thread's idle flush).
    tick: Option<Duration>,
}

impl Worker {
    /// A worker that also runs its job every `tick`.
    pub(super) fn with_tick(tick: Duration) -> Worker {
        Worker {
            tick: Some(tick),
            ..Worker::default()
        }
    }
}

#[derive(Default)]
struct WorkerState {
    requested: bool,
    busy: bool,
    shutdown: bool,
    retry_at: Option<Instant>,
    retry_wait: Duration,
}

impl Worker {
    /// Asks for a run (a no-op while one is pending).
    pub(super) fn request(&self) {
        let mut st = self.state.lock();
        if !st.requested {
            st.requested = true;
            self.wake.notify_one();
        }
    }

    /// Runs `job` now in the caller's thread if a run is requested and no retry wait is
    /// pending (maintenance without threads, see
    /// [`DatabaseBuilder::background_maintenance`](super::DatabaseBuilder::background_maintenance)).
    fn run_inline(&self, inner: &Inner, job: Job) {
        {
            let mut st = self.state.lock();
            let due = st.retry_at.is_none_or(|t| Instant::now() >= t);
            if !st.requested || st.busy || !due {
                return;
            }
            st.requested = false;
            st.busy = true;
        }
        let result = run_caught(inner, job);
        if let Err(e) = &result {
            inner.note_maintenance_error(e);
        }
        self.finish_run(result.is_ok());
    }

    /// Records the end of a run: a failure waits before the retry.
    fn finish_run(&self, ok: bool) {
        let mut st = self.state.lock();
        st.busy = false;
        if ok {
            st.retry_at = None;
            st.retry_wait = Duration::ZERO;
        } else {
            st.retry_wait = (st.retry_wait * 2).clamp(FIRST_RETRY_WAIT, MAX_RETRY_WAIT);
            st.retry_at = Some(Instant::now() + st.retry_wait);
            st.requested = true;
        }
        drop(st);
        self.done.notify_all();
    }

    fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.wake.notify_all();
        self.done.notify_all();
    }

    /// The thread's loop: waits for a request (and the retry time), runs `job` on the
    /// database while it still exists.
    fn serve(self: Arc<Self>, db: Weak<Inner>, job: Job) {
        loop {
            {
                let mut st = self.state.lock();
                loop {
                    if st.shutdown {
                        return;
                    }
                    let due = st.retry_at.is_none_or(|t| Instant::now() >= t);
                    if st.requested && due {
                        st.requested = false;
                        st.busy = true;
                        break;
                    }
                    match (st.retry_at, self.tick) {
                        (Some(t), _) if st.requested => {
                            self.wake.wait_until(&mut st, t);
                        }
                        (_, Some(tick)) => {
                            // A periodic look (the idle flush) counts as a request.
                            if self.wake.wait_for(&mut st, tick).timed_out() {
                                st.requested = true;
                            }
                        }
                        _ => self.wake.wait(&mut st),
                    }
                }
            }
            let ok = match db.upgrade() {
                Some(inner) => {
                    let r = run_caught(&inner, job);
                    if let Err(e) = &r {
                        inner.note_maintenance_error(e);
                    }
                    r.is_ok()
                }
                None => {
                    self.state.lock().busy = false;
                    self.done.notify_all();
                    return;
                }
            };
            self.finish_run(ok);
        }
    }
}

/// Runs `job`, turning a panic (a bug) into an error kept in `health`: the thread lives on, and
/// writers waiting for it are not left waiting.
fn run_caught(inner: &Inner, job: Job) -> Result<()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(inner))).unwrap_or_else(|p| {
        let msg = crate::error::panic_message(&*p);
        Err(crate::Error::InvalidArgument(format!(
            "background maintenance failed: {msg}"
        )))
    })
}

/// Owned by every [`Database`] handle: when the last one goes, the threads are stopped and
/// joined (a run in progress finishes first), so the database is closed when `drop` returns.
pub(super) struct Threads {
    /// The workers' mailboxes (not the database: it may be gone when this drops).
    workers: Vec<Arc<Worker>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Threads {
    /// Starts the flush and compaction threads of a writable database.
    pub(super) fn start(inner: &Arc<Inner>) -> Result<Threads> {
        let mut handles = Vec::new();
        let jobs: [(&str, &Arc<Worker>, Job); 2] = [
            ("mmdb-flush", &inner.flusher, Inner::background_flush),
            ("mmdb-compact", &inner.compactor, Inner::background_compact),
        ];
        for (name, worker, job) in jobs {
            let (w, db) = (worker.clone(), Arc::downgrade(inner));
            let h = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || w.serve(db, job))
                .map_err(|e| crate::Error::io(&inner.path, e))?;
            handles.push(h);
        }
        Ok(Threads {
            workers: vec![inner.flusher.clone(), inner.compactor.clone()],
            handles: Mutex::new(handles),
        })
    }

    /// A handle for a read-only database: no threads.
    pub(super) fn none() -> Threads {
        Threads {
            workers: Vec::new(),
            handles: Mutex::new(Vec::new()),
        }
    }

    /// Stops the threads and waits for them.
    pub(super) fn stop(&self) {
        for w in &self.workers {
            w.shutdown();
        }
        for h in self.handles.lock().drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Inner {
    /// The flush thread's job: a flush when the memtables are over the threshold, then a
    /// compaction request.
    fn background_flush(&self) -> Result<()> {
        let _run = self.flusher.run.lock();
        let active = self.active_bytes();
        // An idle flush: rows that sit in the memtable are searched by a scan of all of them,
        // which at a few tens of thousands of rows costs more than a graph search of millions.
        let idle = active >= self.opts.memtable_max_bytes / IDLE_FLUSH_FRACTION
            && self.last_write.lock().elapsed() >= IDLE_FLUSH_AFTER;
        if active > self.opts.memtable_max_bytes || idle {
            self.flush()?;
            self.compactor.request();
        }
        Ok(())
    }

    /// The compaction thread's job: merges until the policy is satisfied.
    fn background_compact(&self) -> Result<()> {
        let _run = self.compactor.run.lock();
        loop {
            if self.compactor.state.lock().shutdown {
                return Ok(());
            }
            let next = {
                let tables = self.tables.read();
                let pinned = self.pinned.lock().clone();
                tables
                    .by_id
                    .values()
                    .find_map(|t| plan(t, &self.opts, &pinned).map(|segs| (t.id, segs)))
            };
            let Some((table, segs)) = next else {
                return Ok(());
            };
            self.merge(table, &segs)?;
        }
    }

    /// Bytes of the memtables' active parts (the flush trigger).
    fn active_bytes(&self) -> usize {
        self.tables
            .read()
            .by_id
            .values()
            .map(|t| t.mem.bytes())
            .sum()
    }

    /// After a committed write: asks for a flush over the threshold, and for a compaction
    /// check after deletions.
    pub(super) fn after_write(&self, deleted: bool) {
        *self.last_write.lock() = Instant::now();
        if self.active_bytes() > self.opts.memtable_max_bytes {
            self.flusher.request();
        }
        if deleted {
            self.compactor.request();
        }
        if !self.opts.background_maintenance && !self.opts.read_only {
            self.flusher.run_inline(self, Inner::background_flush);
            self.compactor.run_inline(self, Inner::background_compact);
        }
    }

    /// Back-pressure before a write: waits while the unflushed rows pass twice the memtable
    /// threshold and the flush thread is making progress.
    pub(super) fn wait_for_room(&self) {
        if !self.opts.background_maintenance {
            return;
        }
        let bound = self.opts.memtable_max_bytes.saturating_mul(2);
        let total = || -> usize {
            self.tables
                .read()
                .by_id
                .values()
                .map(|t| t.mem.total_bytes())
                .sum()
        };
        if total() <= bound {
            return;
        }
        let mut st = self.flusher.state.lock();
        while total() > bound
            && !st.shutdown
            && st.retry_at.is_none()
            && self.poison.get().is_none()
            && self.maintenance_error.lock().is_none()
        {
            if !st.requested && !st.busy {
                st.requested = true;
                self.flusher.wake.notify_one();
            }
            self.flusher
                .done
                .wait_for(&mut st, Duration::from_millis(50));
        }
    }

    /// Counts a merge.
    pub(super) fn note_merge(&self, counts: &BuildCounts, rows: usize) {
        let mut s = self.stats.lock();
        s.merges += 1;
        s.segments_written += 1;
        s.rows_written += rows as u64;
        s.vectors_indexed += counts.inserted;
        s.vectors_reused += counts.reused;
    }

    /// Counts a segment written by a flush or a bulk-load chunk (not a merge).
    pub(super) fn note_written(&self, counts: &BuildCounts, rows: usize) {
        let mut s = self.stats.lock();
        s.segments_written += 1;
        s.rows_written += rows as u64;
        s.vectors_indexed += counts.inserted;
        s.vectors_reused += counts.reused;
    }

    /// Counts a committed flush.
    pub(super) fn note_flush(&self) {
        self.stats.lock().flushes += 1;
    }
}

/// A rayon pool of its own for each kind of maintenance build, created on first use. A merge's
/// graph build splits into tasks that keep every thread of its pool busy until it ends
/// (minutes at a million rows); in one shared pool, a flush's tasks would queue behind them
/// while writers wait for room. With a pool each, the OS shares the cores between the two,
/// and a bulk load (in the caller's thread, the global pool) waits for neither.
#[derive(Default)]
pub(super) struct Pools {
    flush: OnceLock<Option<rayon::ThreadPool>>,
    merge: OnceLock<Option<rayon::ThreadPool>>,
}

impl Pools {
    /// Runs `f` in the flush pool.
    pub(super) fn flush<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        run_in(&self.flush, "mmdb-flush", f)
    }

    /// Runs `f` in the merge pool.
    pub(super) fn merge<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        run_in(&self.merge, "mmdb-merge", f)
    }
}

/// Runs `f` in the pool of `cell`, with as many threads as the global pool; in the caller's
/// thread (and the global pool) if the pool's threads cannot be started.
fn run_in<R: Send>(
    cell: &OnceLock<Option<rayon::ThreadPool>>,
    name: &'static str,
    f: impl FnOnce() -> R + Send,
) -> R {
    let pool = cell.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .thread_name(move |i| format!("{name}-{i}"))
            .build()
            .ok()
    });
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Segments pinned by an operation that will replace them (a flush extending a segment, a
/// merge): no other flush or merge takes them. Unpinned when dropped, whatever the outcome.
pub(super) struct Pins<'a> {
    inner: &'a Inner,
    ids: Vec<u64>,
}

impl<'a> Pins<'a> {
    /// Takes over pins already in `inner.pinned` (set under the writer lock, where the
    /// operation chose its segments).
    pub(super) fn taken(inner: &'a Inner, ids: Vec<u64>) -> Pins<'a> {
        Pins { inner, ids }
    }
}

impl Drop for Pins<'_> {
    fn drop(&mut self) {
        let mut pinned = self.inner.pinned.lock();
        for id in &self.ids {
            pinned.remove(id);
        }
    }
}

/// The merge policy for one table: the segments to merge next, if any (see the module doc).
/// Segments in `pinned` (being replaced by a bulk load, a flush or a merge) are left out.
fn plan(
    t: &TableState,
    opts: &super::DatabaseBuilder,
    pinned: &std::collections::HashSet<u64>,
) -> Option<Vec<u64>> {
    let segments: Vec<&super::state::LiveSegment> = t
        .segments
        .iter()
        .filter(|ls| !pinned.contains(&ls.seg.id()))
        .collect();
    // A segment with too many deleted rows is rewritten (with nothing else: its size after the
    // rewrite decides its tier).
    for ls in &segments {
        let (n, dead) = (ls.seg.len(), ls.deleted.count());
        if n > 0 && dead as f64 > opts.max_deleted_fraction * n as f64 {
            return Some(vec![ls.seg.id()]);
        }
    }
    let fan_in = opts.merge_factor.max(2);
    let mut by_size: Vec<(usize, u64)> =
        segments.iter().map(|ls| (ls.live(), ls.seg.id())).collect();
    by_size.sort_unstable();
    // Size tiers: tier k holds segments of fan_in^k to fan_in^(k+1) - 1 live rows. A tier
    // with fan_in segments merges them into one of (about) the next tier, so a row is
    // re-indexed at most once per tier: log(table rows) times over a load.
    let tier = |rows: usize| (rows.max(1) as f64).log(fan_in as f64).floor() as u32;
    let mut start = 0;
    while start < by_size.len() {
        let k = tier(by_size[start].0);
        let end = by_size[start..]
            .iter()
            .position(|s| tier(s.0) != k)
            .map_or(by_size.len(), |p| start + p);
        if end - start >= fan_in {
            return Some(by_size[start..start + fan_in].iter().map(|s| s.1).collect());
        }
        start = end;
    }
    // Too many segments in all: the smallest are merged (at least two) to get under the cap.
    if by_size.len() > opts.max_segments {
        let take = (by_size.len() - opts.max_segments + 1).max(2);
        return Some(by_size[..take].iter().map(|s| s.1).collect());
    }
    None
}
