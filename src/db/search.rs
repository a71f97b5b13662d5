//! Top-k vector search over a snapshot: memtable (exact) and segments (HNSW or exact), merged.
//!
//! Filtered search. The filter is evaluated on rows, so on a segment it costs a row read: of only
//! the columns in [`SearchRequest::filter_columns`] when the caller names them (SQL always does),
//! which skips copying vectors, strings and blobs the filter does not test. Per
//! segment, the selectivity is estimated by evaluating the filter on a fixed sample of up to
//! [`SAMPLE`] live rows (evenly spaced, deterministic). When the estimated number of matching
//! rows is at most [`EXACT_MAX_ROWS`] or the selectivity is below [`EXACT_MAX_SELECTIVITY`], the
//! segment is searched exactly over the matching rows (`FilteredExact`): the graph walk would visit
//! mostly rejected nodes. Otherwise the filter runs inside the HNSW traversal (`FilteredHnsw`);
//! if the walk collects fewer than `ef` matching rows (its whole candidate list, and `ef >= k`) the
//! segment is searched exactly, so a filtered search always returns k rows when k rows match.
//! The test is on `ef`, not on k, so that every k up to `ef` takes the same branch.
//!
//! Order: score descending, then row id ascending, in every source (the index ranks equal scores
//! by row position, see `index`) and in the merge. Each source's top k is then a prefix of its top
//! k + 1 and so is the merged list, which makes `LIMIT l OFFSET o` (a top-(l + o) search) a slice
//! of one ranking. On the HNSW paths that holds while `l + o <= ef`: a larger k widens the walk.

use std::fmt;

use parking_lot::Mutex;

use super::TableSnapshot;
use super::validate::check_vector;
use crate::value::RowFilter;
use crate::{Error, Result, Row, RowId};

/// Rows sampled per segment to estimate a filter's selectivity.
pub const SAMPLE: usize = 64;
/// At most this many estimated matching rows in a segment: exact scan of the matches.
pub const EXACT_MAX_ROWS: usize = 2_000;
/// Below this estimated selectivity: exact scan of the matches.
pub const EXACT_MAX_SELECTIVITY: f64 = 0.05;

/// A merge candidate: score, id, and where the row is (None: memtable; Some((segment, position))).
type Candidate = (f32, RowId, Option<(usize, usize)>);

/// One top-k query: [`SearchRequest::new`] with the table's defaults, then the setters.
///
/// ```
/// # use mmdb::SearchRequest;
/// let even = |id: mmdb::RowId, _: &mmdb::Row| id % 2 == 0;
/// let req = SearchRequest::new(2, &[1.0, 0.0, 0.0], 10).ef(64).filter(&even);
/// assert_eq!((req.k, req.ef, req.exact), (10, Some(64), false));
/// ```
///
/// New options arrive as new setters with defaults (the struct is `#[non_exhaustive]`), so
/// code written against one release keeps compiling.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct SearchRequest<'a> {
    /// Index of a vector-bearing column (VECTOR, IMAGE, embedded TEXT).
    pub column: usize,
    /// The query vector (normalised by the engine for cosine).
    pub query: &'a [f32],
    /// Number of results wanted.
    pub k: usize,
    /// Candidate list size; `None`: the table's default `ef_search`.
    pub ef: Option<usize>,
    /// Brute force instead of HNSW.
    pub exact: bool,
    /// Keep only rows for which this is true.
    pub filter: Option<RowFilter<'a>>,
    /// The columns `filter` reads. `None` (the default): all of them. With `Some`, the rows the
    /// filter sees on segments hold only these columns (the others are `Null`, without
    /// embeddings), which makes filtered search much cheaper: a segment row is then read without
    /// copying its vectors, strings and blobs. Result rows are always whole.
    pub filter_columns: Option<&'a [usize]>,
}

impl<'a> SearchRequest<'a> {
    /// A top-`k` search of `column` for `query` with the table's defaults: HNSW, its
    /// `ef_search`, no filter.
    pub fn new(column: usize, query: &'a [f32], k: usize) -> SearchRequest<'a> {
        SearchRequest {
            column,
            query,
            k,
            ef: None,
            exact: false,
            filter: None,
            filter_columns: None,
        }
    }

    /// Candidate list size of the HNSW search; `None` (the default) uses the table's
    /// `ef_search`.
    #[must_use]
    pub fn ef(mut self, ef: impl Into<Option<usize>>) -> Self {
        self.ef = ef.into();
        self
    }

    /// Brute force over every (matching) row instead of the graph. Default false.
    #[must_use]
    pub fn exact(mut self, yes: bool) -> Self {
        self.exact = yes;
        self
    }

    /// Keep only rows for which `f` is true. Default: no filter.
    #[must_use]
    pub fn filter(mut self, f: RowFilter<'a>) -> Self {
        self.filter = Some(f);
        self
    }

    /// The columns the filter reads (see the field). Default: all of them.
    #[must_use]
    pub fn filter_columns(mut self, columns: &'a [usize]) -> Self {
        self.filter_columns = Some(columns);
        self
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// Row id.
    pub id: RowId,
    /// Similarity, higher is more similar (cosine, dot, or -L2).
    pub score: f32,
    /// The row.
    pub row: Row,
}

/// How a search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPath {
    /// HNSW graphs, no filter.
    Hnsw,
    /// HNSW graphs with the filter applied during traversal.
    FilteredHnsw,
    /// Exact scan of the rows matching the filter.
    FilteredExact,
    /// Exact scan of every row.
    Exact,
}

impl fmt::Display for SearchPath {
    /// The name EXPLAIN prints: `hnsw`, `filtered-hnsw`, `filtered-exact`, `exact`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl SearchPath {
    fn name(self) -> &'static str {
        match self {
            SearchPath::Hnsw => "hnsw",
            SearchPath::FilteredHnsw => "filtered-hnsw",
            SearchPath::FilteredExact => "filtered-exact",
            SearchPath::Exact => "exact",
        }
    }
}

/// The plan of a search, for EXPLAIN.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SearchPlan {
    /// Column name.
    pub column: String,
    /// k.
    pub k: usize,
    /// The path (the one used on the table's largest segment when segments differ).
    pub path: SearchPath,
    /// Candidate list size.
    pub ef: usize,
    /// Estimated rows matching the filter (all live rows without a filter).
    pub estimated_rows: usize,
    /// Estimated fraction of rows matching the filter (1 without one).
    pub estimated_selectivity: f64,
}

impl fmt::Display for SearchPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VectorSearch: column={} k={} path={} ef={} est_rows={} selectivity={:.3}",
            self.column,
            self.k,
            self.path.name(),
            self.ef,
            self.estimated_rows,
            self.estimated_selectivity
        )
    }
}

impl TableSnapshot {
    /// The plan [`search`](Self::search) would follow.
    pub fn plan_search(&self, req: &SearchRequest<'_>) -> SearchPlan {
        let column = self
            .schema
            .columns
            .get(req.column)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let ef = self.ef(req);
        let live = self.row_count();
        let (path, est, sel) = match (req.exact, req.filter) {
            (true, None) => (SearchPath::Exact, live, 1.0),
            (false, None) => (SearchPath::Hnsw, live, 1.0),
            (exact, Some(f)) => {
                let mut est = 0.0;
                let mut biggest = (
                    0,
                    if exact {
                        SearchPath::FilteredExact
                    } else {
                        SearchPath::FilteredHnsw
                    },
                );
                for s in 0..self.segments.len() {
                    let (sel, live) = self.estimate(s, f, req.filter_columns);
                    est += sel * live as f64;
                    if live >= biggest.0 && !exact {
                        biggest = (live, segment_path(sel, live));
                    }
                }
                let mem = self.mem.iter().filter(|(id, r)| f(*id, r)).count();
                est += mem as f64;
                let sel = if live == 0 { 1.0 } else { est / live as f64 };
                (biggest.1, est.round() as usize, sel)
            }
        };
        SearchPlan {
            column,
            k: req.k,
            path,
            ef,
            estimated_rows: est,
            estimated_selectivity: sel,
        }
    }

    /// Top-k rows by similarity to `req.query` in `req.column`, best first (ties by ascending id).
    pub fn search(&self, req: &SearchRequest<'_>) -> Result<Vec<SearchHit>> {
        let col = self.schema.columns.get(req.column).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "table {} has no column number {}",
                self.schema.name, req.column
            ))
        })?;
        if !col.has_vector() {
            return Err(Error::InvalidArgument(format!(
                "{}.{} has no vectors to search",
                self.schema.name, col.name
            )));
        }
        if req.k == 0 {
            return Err(Error::InvalidArgument("k must be at least 1".into()));
        }
        let mut query = req.query.to_vec();
        check_vector(&mut query, col.dim, col.metric).map_err(|d| {
            Error::InvalidArgument(format!("query for {}.{}: {d}", self.schema.name, col.name))
        })?;
        let (k, ef, metric) = (req.k, self.ef(req), col.metric);

        // (score, id, source): source None = memtable, Some((segment, position)).
        let mut hits: Vec<Candidate> = self
            .mem
            .search(req.column, metric, &query, k, req.filter)
            .into_iter()
            .map(|(id, s)| (s, id, None))
            .collect();
        for (s, ls) in self.segments.iter().enumerate() {
            if ls.seg.vector_count(req.column) == 0 {
                continue;
            }
            let ids = ls.seg.ids();
            let found = match req.filter {
                None => {
                    let keep = |pos: usize| !ls.deleted.contains(pos);
                    ls.seg
                        .search(req.column, metric, &query, k, ef, req.exact, &keep)?
                }
                Some(f) => {
                    let (sel, live) = self.estimate(s, f, req.filter_columns);
                    let err = Mutex::new(None);
                    let matches = |pos: usize| {
                        !ls.deleted.contains(pos)
                            && match self.segment_row_columns(s, pos, req.filter_columns) {
                                Ok(row) => f(ids[pos], &row),
                                Err(e) => {
                                    err.lock().get_or_insert(e);
                                    false
                                }
                            }
                    };
                    let exact = req.exact || segment_path(sel, live) == SearchPath::FilteredExact;
                    let mut found = if exact {
                        // Evaluate the filter once per row, then scan the matches.
                        let mut keep = vec![false; ls.seg.len()];
                        for &pos in ls.seg.vector_rows(req.column)? {
                            if let Some(k) = keep.get_mut(pos as usize) {
                                *k = matches(pos as usize);
                            }
                        }
                        ls.seg
                            .search(req.column, metric, &query, k, ef, true, &|p| {
                                keep.get(p).copied().unwrap_or(false)
                            })?
                    } else {
                        ls.seg
                            .search(req.column, metric, &query, ef, ef, false, &matches)?
                    };
                    // With `ef` covering the segment, the index scanned it exactly already.
                    if !exact && found.len() < ef && ef < ls.seg.vector_count(req.column) {
                        found = ls
                            .seg
                            .search(req.column, metric, &query, k, ef, true, &matches)?;
                    }
                    found.truncate(k);
                    if let Some(e) = err.into_inner() {
                        return Err(e);
                    }
                    found
                }
            };
            hits.extend(
                found
                    .into_iter()
                    .map(|(pos, score)| (score, ids[pos], Some((s, pos)))),
            );
        }
        hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        hits.truncate(k);
        hits.into_iter()
            .map(|(score, id, src)| {
                let row = match src {
                    None => self.mem.get(id).map(|r| (**r).clone()).unwrap_or_default(),
                    Some((s, pos)) => self.segment_row(s, pos)?,
                };
                Ok(SearchHit { id, score, row })
            })
            .collect()
    }

    fn ef(&self, req: &SearchRequest<'_>) -> usize {
        req.ef.unwrap_or(self.schema.hnsw.ef_search).max(req.k)
    }

    /// (estimated selectivity, live rows) of `filter` on segment `s`.
    fn estimate(&self, s: usize, filter: RowFilter<'_>, columns: Option<&[usize]>) -> (f64, usize) {
        let ls = &self.segments[s];
        let live = ls.live();
        if live == 0 {
            return (0.0, 0);
        }
        let n = ls.seg.len();
        let step = (n / SAMPLE).max(1);
        let (mut seen, mut hit) = (0usize, 0usize);
        let ids = ls.seg.ids();
        for pos in (0..n).step_by(step).take(SAMPLE) {
            if ls.deleted.contains(pos) {
                continue;
            }
            seen += 1;
            if self
                .segment_row_columns(s, pos, columns)
                .is_ok_and(|row| filter(ids[pos], &row))
            {
                hit += 1;
            }
        }
        if seen == 0 {
            return (0.0, live);
        }
        (hit as f64 / seen as f64, live)
    }
}

fn segment_path(sel: f64, live: usize) -> SearchPath {
    if sel < EXACT_MAX_SELECTIVITY || sel * live as f64 <= EXACT_MAX_ROWS as f64 {
        SearchPath::FilteredExact
    } else {
        SearchPath::FilteredHnsw
    }
}
