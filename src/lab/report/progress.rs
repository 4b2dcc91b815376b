//! Progress of a long lab operation shown: an indicatif bar on a terminal,
//! plain lines otherwise (CI logs, pipes), always on stderr so stdout stays
//! the report.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::lab::progress::Progress;

/// Shows the steps of `up` and `down` on stderr.
pub struct Console {
    lab: String,
    bar: Option<ProgressBar>,
    /// The report follows on the same terminal: notes it repeats are left out.
    reported: bool,
}

const STEP: &str = "{spinner} lab {prefix}: {msg} {pos}/{len} [{elapsed}]";
const STATUS: &str = "{spinner} lab {prefix}: {msg} [{elapsed}]";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Console {
    /// A console for a lab: a bar when stderr is a terminal, unless `quiet`.
    pub fn new(lab: &str, quiet: bool) -> Console {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(style(STEP));
            bar.set_prefix(lab.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Console {
            lab: lab.to_owned(),
            bar,
            reported: false,
        }
    }

    /// Says whether a text report will follow on stdout: when it goes to
    /// the terminal the bar is on, the notes it repeats are not printed twice.
    pub fn reported(mut self, report_follows: bool) -> Console {
        self.reported = report_follows && std::io::stdout().is_terminal();
        self
    }

    /// A handle that prints lines like [`Progress::line`], for other tasks.
    pub fn printer(&self) -> Printer {
        Printer {
            lab: self.lab.clone(),
            bar: self.bar.clone(),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Console {
    fn step(&self, message: &str, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_style(style(STEP));
                bar.set_message(message.to_owned());
                bar.set_length(total);
                bar.set_position(0);
            }
            None => eprintln!("sdss lab {}: {message} ({total})", self.lab),
        }
    }

    fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn set(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }

    /// Above the bar on a terminal.
    fn line(&self, message: &str) {
        self.printer().line(message);
    }

    fn note(&self, message: &str) {
        if !(self.reported && self.bar.is_some()) {
            self.line(message);
        }
    }

    fn status(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_style(style(STATUS));
            bar.set_message(message.to_owned());
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Prints lines above a [`Console`]'s bar from another task.
#[derive(Clone)]
pub struct Printer {
    lab: String,
    bar: Option<ProgressBar>,
}

impl Printer {
    /// A line that stays (above the bar on a terminal).
    pub fn line(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("lab {}: {message}", self.lab)),
            None => eprintln!("sdss lab {}: {message}", self.lab),
        }
    }
}
