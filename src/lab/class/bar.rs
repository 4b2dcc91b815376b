//! The class run's progress bar over submissions (indicatif, on stderr),
//! with a line per submission as it is graded.

use indicatif::{ProgressBar, ProgressStyle};

use super::run::ClassProgress;
use super::score::SubmissionResult;

/// A bar over the class's submissions.
pub struct ClassBar(ProgressBar);

impl ClassBar {
    /// A bar over `total` submissions.
    pub fn new(total: usize) -> ClassBar {
        let bar = ProgressBar::new(total as u64);
        let style = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} graded, eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        ClassBar(bar)
    }

    /// Ends the bar, leaving it shown.
    pub fn finish(&self) {
        self.0.finish();
    }
}

impl ClassProgress for ClassBar {
    fn started(&self, submission: &str, lab: &str) {
        self.0.set_message(format!("{submission} (lab {lab})"));
    }

    fn finished(&self, result: &SubmissionResult, reused: bool) {
        let failed = result.failed().count();
        let how = if reused { " (graded before)" } else { "" };
        let line = format!(
            "{}: {:.1}%, {failed} failed{how}",
            result.submission,
            result.percent()
        );
        // A bar on no terminal draws nothing, its lines included.
        if self.0.is_hidden() {
            eprintln!("{line}");
        } else {
            self.0.println(line);
        }
        self.0.inc(1);
    }
}
