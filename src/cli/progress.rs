//! The load progress bar: an indicatif bar (rate, ETA) on stderr, drawn only when stderr is a
//! terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::coco::Progress;

/// A [`Progress`] that draws an indicatif bar.
#[derive(Debug)]
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar with no length yet (set by [`Progress::start`]).
    pub fn new() -> Bar {
        // stderr draw target: indicatif draws nothing when stderr is not a terminal.
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} images {per_sec} ETA {eta}",
        ) {
            bar.set_style(style);
        }
        Bar(bar)
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
        self.0.enable_steady_tick(Duration::from_millis(250));
    }
    fn advance(&self, images: u64) {
        self.0.inc(images);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
