//! Recall@K over a loaded COCO-layout pair of tables, through mmdb's own search
//! ([`TableSnapshot::search`](crate::TableSnapshot::search)), with the CLIP_benchmark protocol:
//!
//! - text→image: every caption's stored embedding queries the image column; a hit at K when the
//!   caption's own image is among the top K;
//! - image→text: every image's stored embedding queries the caption column; a hit at K when any of
//!   the image's captions is among the top K.
//!
//! Captions whose image is not loaded cannot be hit and are left out (and counted).

use std::collections::HashMap;
use std::time::Instant;

use rayon::prelude::*;

use super::report::{RecallReport, RecallScores};
use super::tables::captions_table;
use crate::{Database, Error, Result, RowId, SearchRequest, TableSnapshot, Value};

/// Benchmark options. [`RecallOptions::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecallOptions {
    /// Images table (captions in `<table>_captions`). Default `coco`.
    pub table: String,
    /// The K values. Default 1, 5, 10.
    pub k: Vec<usize>,
    /// Brute-force search instead of HNSW. Default false.
    pub exact: bool,
    /// HNSW candidate list size; `None`: the table's `ef_search`. Default none.
    pub ef: Option<usize>,
    /// Also run exact search and report the difference. Default false.
    pub compare_exact: bool,
}

impl Default for RecallOptions {
    fn default() -> Self {
        RecallOptions::new()
    }
}

impl RecallOptions {
    /// Options with the defaults above.
    pub fn new() -> RecallOptions {
        RecallOptions {
            table: "coco".into(),
            k: vec![1, 5, 10],
            exact: false,
            ef: None,
            compare_exact: false,
        }
    }
}

/// The stored vectors the benchmark queries with.
struct Queries {
    images: Vec<(RowId, Vec<f32>)>,
    /// (caption row, its image id, vector), only captions whose image is loaded.
    captions: Vec<(RowId, RowId, Vec<f32>)>,
    without_image: usize,
}

/// Runs the benchmark (see the module doc).
pub fn bench_recall(db: &Database, opts: &RecallOptions) -> Result<RecallReport> {
    if opts.k.is_empty() || opts.k.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "k values must be at least 1, got {:?}",
            opts.k
        )));
    }
    if opts.exact && opts.ef.is_some() {
        return Err(Error::InvalidArgument(
            "--exact and --ef exclude each other".into(),
        ));
    }
    let caps_name = captions_table(&opts.table);
    let images = db.snapshot(&opts.table)?;
    let captions = db.snapshot(&caps_name)?;
    let image_col = images.schema().require_column("image")?;
    let caption_col = captions.schema().require_column("caption")?;
    let image_id_col = captions.schema().require_column("image_id")?;
    let q = collect_queries(&images, image_col, &captions, caption_col, image_id_col)?;
    if q.images.is_empty() || q.captions.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "nothing to benchmark: {} has {} images with embeddings and {caps_name} {} captions of them",
            opts.table,
            q.images.len(),
            q.captions.len()
        )));
    }
    let mut k = opts.k.clone();
    k.sort_unstable();
    k.dedup();
    let ef = opts.ef.unwrap_or(images.schema().hnsw.ef_search);
    let path = if opts.exact {
        "exact".to_string()
    } else {
        format!("hnsw ef={ef}")
    };
    let cols = (image_col, caption_col, image_id_col);
    let scores = run(&images, &captions, cols, &q, &k, opts.exact, opts.ef, path)?;
    let exact = if opts.compare_exact {
        Some(run(
            &images,
            &captions,
            cols,
            &q,
            &k,
            true,
            None,
            "exact".into(),
        )?)
    } else {
        None
    };
    Ok(RecallReport {
        table: opts.table.clone(),
        captions_table: caps_name,
        images: q.images.len(),
        captions: q.captions.len(),
        captions_without_image: q.without_image,
        k,
        scores,
        exact,
    })
}

fn collect_queries(
    images: &TableSnapshot,
    image_col: usize,
    captions: &TableSnapshot,
    caption_col: usize,
    image_id_col: usize,
) -> Result<Queries> {
    let mut q = Queries {
        images: Vec::new(),
        captions: Vec::new(),
        without_image: 0,
    };
    for r in images.scan() {
        let (id, mut row) = r?;
        if let Some(v) = row.embeddings.get_mut(image_col).and_then(Option::take) {
            q.images.push((id, v));
        }
    }
    let loaded: HashMap<RowId, ()> = q.images.iter().map(|(id, _)| (*id, ())).collect();
    for r in captions.scan() {
        let (id, mut row) = r?;
        let image = match row.values.get(image_id_col) {
            Some(Value::Integer(i)) => RowId::try_from(*i).ok(),
            _ => None,
        };
        let Some(v) = row.embeddings.get_mut(caption_col).and_then(Option::take) else {
            continue;
        };
        match image.filter(|i| loaded.contains_key(i)) {
            Some(image) => q.captions.push((id, image, v)),
            None => q.without_image += 1,
        }
    }
    Ok(q)
}

/// Both directions on one search path; percentages per K.
#[allow(clippy::too_many_arguments)]
fn run(
    images: &TableSnapshot,
    captions: &TableSnapshot,
    (image_col, caption_col, image_id_col): (usize, usize, usize),
    q: &Queries,
    k: &[usize],
    exact: bool,
    ef: Option<usize>,
    path: String,
) -> Result<RecallScores> {
    let started = Instant::now();
    let t2i_ef = ef.unwrap_or(images.schema().hnsw.ef_search);
    let text_to_image = recall_by_pass(k, exact, t2i_ef, |top, ef| {
        q.captions
            .par_iter()
            .map(|(_, image, v)| {
                let req = SearchRequest::new(image_col, v, top).ef(ef).exact(exact);
                Ok(images.search(&req)?.iter().position(|h| h.id == *image))
            })
            .collect()
    })?;
    let i2t_ef = ef.unwrap_or(captions.schema().hnsw.ef_search);
    let image_to_text = recall_by_pass(k, exact, i2t_ef, |top, ef| {
        q.images
            .par_iter()
            .map(|(id, v)| {
                let req = SearchRequest::new(caption_col, v, top).ef(ef).exact(exact);
                let hits = captions.search(&req)?;
                Ok(hits.iter().position(|h| {
                    matches!(h.row.values.get(image_id_col), Some(Value::Integer(i)) if *i as RowId == *id)
                }))
            })
            .collect()
    })?;
    Ok(RecallScores {
        path,
        text_to_image,
        image_to_text,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Recall@K for each of the ascending `k`, from `ranks(top, ef)`: per query, the rank (0-based)
/// of its first correct hit among the top `top` found with candidate list size `ef`.
///
/// R@K must not depend on which other K values are asked for. Exact search ranks the same way
/// for any k (ties by row id), so one search for the largest K serves all. An HNSW search widens
/// its walk to `max(ef, k)`, so K values up to `ef` share one search and each larger K runs its own
/// with `ef = K`, as it would alone.
fn recall_by_pass(
    k: &[usize],
    exact: bool,
    ef: usize,
    mut ranks: impl FnMut(usize, usize) -> Result<Vec<Option<usize>>>,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(k.len());
    let mut rest = k;
    while let Some(&first) = rest.first() {
        let pass_ef = ef.max(first);
        let n = if exact {
            rest.len()
        } else {
            rest.partition_point(|&x| x <= pass_ef)
        };
        let (group, more) = rest.split_at(n.max(1));
        let top = group.last().copied().unwrap_or(first);
        out.extend(recall_at(&ranks(top, pass_ef)?, group));
        rest = more;
    }
    Ok(out)
}

/// Percentage of queries whose first hit ranks below each K.
fn recall_at(ranks: &[Option<usize>], k: &[usize]) -> Vec<f64> {
    k.iter()
        .map(|&k| {
            let hits = ranks.iter().filter(|r| r.is_some_and(|r| r < k)).count();
            100.0 * hits as f64 / ranks.len().max(1) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_values_share_a_search_only_within_ef() {
        let mut calls = Vec::new();
        let ranks = |top: usize, ef: usize, calls: &mut Vec<(usize, usize)>| {
            calls.push((top, ef));
            Ok(vec![Some(0)])
        };
        recall_by_pass(&[1, 5, 10, 100, 200], false, 64, |t, e| {
            ranks(t, e, &mut calls)
        })
        .unwrap();
        assert_eq!(calls, vec![(10, 64), (100, 100), (200, 200)]);
        calls.clear();
        recall_by_pass(&[1, 5, 10, 100, 200], true, 64, |t, e| {
            ranks(t, e, &mut calls)
        })
        .unwrap();
        assert_eq!(calls, vec![(200, 64)]);
    }

    #[test]
    fn recall_counts_ranks_below_k() {
        let ranks = [Some(0), Some(1), None, Some(4)];
        assert_eq!(recall_at(&ranks, &[1, 2, 5]), vec![25.0, 50.0, 75.0]);
    }
}
