//! The settings `SET` changes for the rest of a session, and how they shape a storage search.

use crate::ImageLimits;
use crate::db::SearchRequest;
use crate::value::RowFilter;

/// Session settings changed by `SET`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// `SET ef_search = N`: HNSW candidate list size; `None` uses the table's default.
    pub ef_search: Option<usize>,
    /// `SET exact = true`: brute-force vector search.
    pub exact: bool,
    /// Limits on the images this session's statements read: `SET max_image_bytes`,
    /// `max_image_pixels`, `max_image_decode_bytes`, `image_decode_deadline_ms` (`DEFAULT`: the
    /// database's, [`Database::image_limits`](crate::Database::image_limits)).
    pub image_limits: ImageLimits,
}

impl Settings {
    /// The storage request for a top-`k` search of `column` under these settings: the one place
    /// SQL builds a [`SearchRequest`], for running a query and for EXPLAIN alike.
    pub(crate) fn search_request<'a>(
        &self,
        column: usize,
        query: &'a [f32],
        k: usize,
        filter: Option<(RowFilter<'a>, &'a [usize])>,
    ) -> SearchRequest<'a> {
        let req = SearchRequest::new(column, query, k)
            .ef(self.ef_search)
            .exact(self.exact);
        match filter {
            Some((f, columns)) => req.filter(f).filter_columns(columns),
            None => req,
        }
    }
}
