//! The query argument of `similarity()` / `distance()` and the scores they compute.

use std::fmt;

use crate::sql::value_fmt::sql_literal;
use crate::{ImageSource, Metric, RowId, Value};

/// `similarity` (higher is closer) or `distance` (lower is closer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimKind {
    /// cosine / dot product / negative L2 distance.
    Similarity,
    /// 1 - cosine / negative dot product / L2 distance.
    Distance,
}

impl SimKind {
    /// The SQL function name.
    pub fn name(self) -> &'static str {
        match self {
            SimKind::Similarity => "similarity",
            SimKind::Distance => "distance",
        }
    }
}

/// What a similarity query is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryArg {
    /// A text, embedded with the table's model.
    Text(String),
    /// An image (path or bytes), embedded with the table's model.
    Image(ImageSource),
    /// A literal vector.
    Vector(Vec<f32>),
    /// Parameter `n` (0-based): a vector, a text or a blob (image bytes).
    Param(usize),
    /// The stored vector of the same column in row `id` (`row(42)`).
    Row(RowId),
}

impl fmt::Display for QueryArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryArg::Text(t) => f.write_str(&sql_literal(&Value::Text(t.clone()))),
            QueryArg::Image(ImageSource::Path(p)) => {
                write!(f, "image({})", sql_literal(&Value::Text(p.clone())))
            }
            QueryArg::Image(ImageSource::Bytes(b)) => write!(f, "image(<{} bytes>)", b.len()),
            QueryArg::Vector(v) => f.write_str(&sql_literal(&Value::Vector(v.clone()))),
            QueryArg::Param(n) => write!(f, "${}", n + 1),
            QueryArg::Row(id) => write!(f, "row({id})"),
        }
    }
}

/// The score of stored vector `v` against query `q` (same length).
///
/// similarity: cosine similarity, dot product, or negative L2 distance (higher is closer; the same
/// scale as the storage engine's search scores). distance: 1 - cosine, negative dot product, or
/// L2 distance (lower is closer).
pub fn score(metric: Metric, kind: SimKind, v: &[f32], q: &[f32]) -> f32 {
    let dot: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
    let sim = match metric {
        Metric::Cosine => {
            let nv = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nq = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            if nv == 0.0 || nq == 0.0 {
                0.0
            } else {
                // Rounding can give 1.0000001 for a vector against itself.
                (dot / (nv * nq)).clamp(-1.0, 1.0)
            }
        }
        Metric::Dot => dot,
        Metric::L2 => -v
            .iter()
            .zip(q)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            .sqrt(),
    };
    match (kind, metric) {
        (SimKind::Similarity, _) => sim,
        (SimKind::Distance, Metric::Cosine) => 1.0 - sim,
        (SimKind::Distance, _) => -sim,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_the_metric() {
        let (a, b) = ([1.0, 0.0], [0.0, 2.0]);
        assert_eq!(score(Metric::Cosine, SimKind::Similarity, &a, &b), 0.0);
        assert_eq!(score(Metric::Cosine, SimKind::Distance, &a, &a), 0.0);
        assert_eq!(score(Metric::L2, SimKind::Distance, &a, &b), 5f32.sqrt());
        assert_eq!(
            score(Metric::Dot, SimKind::Similarity, &[2.0, 1.0], &b),
            2.0
        );
        // Clamped: f32 rounding must not show a cosine above 1.
        // (this vector against itself gives 1.0000001 unclamped)
        let v = [
            0.125_730_22_f32,
            -0.132_104_86,
            0.640_422_6,
            0.104_900_11,
            -0.535_669_4,
            0.361_595_06,
            1.304,
            0.947_080_97,
        ];
        assert_eq!(score(Metric::Cosine, SimKind::Similarity, &v, &v), 1.0);
        assert_eq!(score(Metric::Cosine, SimKind::Distance, &v, &v), 0.0);
    }
}
