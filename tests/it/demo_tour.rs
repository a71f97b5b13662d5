//! `mmdb demo` (the README's main command) end to end, on a small set, with the bundled model.

use mmdb::demo::{DEMO_MODEL_SPEC, TourOptions, run_tour};

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
    // Running it again starts from scratch and gives the same answers.
    let mut again = Vec::new();
    run_tour(&opts, &mut again).unwrap();
    let strip_times = |s: &str| {
        s.lines()
            .filter(|l| {
                !(l.ends_with(" ms)")
                    || l.starts_with("loaded ")
                    || l.contains("checkpoint (")
                    || l.starts_with("(percent;"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip_times(&out),
        strip_times(&String::from_utf8(again).unwrap())
    );
}
