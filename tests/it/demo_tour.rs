//! `mmdb demo` (the README's main command) end to end, on a small set, with the bundled model.

use mmdb::cli::{DEMO_MODEL_SPEC, TourOptions, run_tour};

#[test]
fn the_tour_loads_queries_and_reports_recall() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = TourOptions::new(dir.path());
    opts.images = 40;
    opts.model = DEMO_MODEL_SPEC.to_string();
    let mut out = Vec::new();
    run_tour(&opts, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    for needle in [
        "== 1. Generating 40 demo scenes",
        "loaded 40 images and 200 captions",
        "Text -> image",
        "Image -> image",
        "WHERE id BETWEEN",
        "Text -> captions",
        "R@1",
        "exact",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // Running it again starts from scratch and gives the same answers: the same rows in the same
    // order, scores equal to 1e-5. Not bit for bit: bulk embedding is data parallel, so which
    // images share a batch depends on timing, and the matmul's rounding on the batch size
    // (differences of about 1e-7, as in PyTorch).
    let mut again = Vec::new();
    run_tour(&opts, &mut again).unwrap();
    let again = String::from_utf8(again).unwrap();
    let tokens = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| {
                !(l.ends_with(" ms)")
                    || l.starts_with("loaded ")
                    || l.contains("checkpoint (")
                    || l.starts_with("(percent;"))
            })
            .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '|'))
            .filter(|t| !t.is_empty() && !t.chars().all(|c| c == '+' || c == '-'))
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (tokens(&out), tokens(&again));
    assert_eq!(a.len(), b.len(), "{out}\n----\n{again}");
    for (x, y) in a.iter().zip(&b) {
        let same = match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(p), Ok(q)) => (p - q).abs() <= 1e-5,
            _ => x == y,
        };
        assert!(same, "{x} != {y} in:\n{out}\n----\n{again}");
    }
}
