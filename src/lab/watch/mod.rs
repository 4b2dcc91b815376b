//! `sdss lab watch`: a running lab's measured delay matrix, refreshed every
//! second from its nodes' logs (read as `lab verify` reads them, but
//! incrementally and in bounded memory), drawn on the terminal until `q` or
//! Ctrl-C, or printed as plain text when stdout is no terminal.
//!
//! One cancellation token ends the loop (a key, a signal, `--count`). The
//! async side only waits; reading the logs and writing the output run on the
//! blocking pool. What is shown is [`crate::lab::report::watch::render`]'s.

pub mod metrics;
mod terminal;

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::node::clock::wall_now;

use super::builder::state::{LabDir, StateError, StateRoot};
use super::judge::delays::{verify_aside, Verification};
use super::report::watch::{render, Size};
use super::scenario::late::LateFollower;
use super::scenario::stream::Observations;
use super::scenario::tail::LogTail;
use super::LabError;
use terminal::Terminal;

/// How `watch` runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Time between refreshes.
    pub every: Duration,
    /// Stop after this many refreshes (default: until `q` or Ctrl-C).
    pub count: Option<u64>,
}

/// The size plain output is laid out for: wide enough for a 100-node grid,
/// as tall as it needs.
const PLAIN: Size = Size {
    cols: 160,
    rows: u16::MAX,
};

/// A running lab's nodes' logs, followed.
struct Source {
    dir: LabDir,
    tails: HashMap<String, LogTail>,
    observations: HashMap<String, Observations>,
    /// Events per node after its last compaction: compacted again at twice as many.
    compacted: HashMap<String, usize>,
    /// Neighbor events kept per peer: what grading uses.
    keep: usize,
    /// The emulator's late answers: samples they spoiled are set aside, as `up` does.
    late: LateFollower,
    /// Where the lab's state is, to read it again.
    root: StateRoot,
    /// When the plan was written: a `lab set` writes it again, and the
    /// view then judges by the new expectations.
    plan_written: Option<std::time::SystemTime>,
}

impl Source {
    fn open(root: &StateRoot, lab: &str) -> Result<Source, LabError> {
        let dir = root
            .open(lab)?
            .ok_or_else(|| StateError::NotUp(lab.to_owned()))?;
        let plan = &dir.state.plan;
        let tails = plan
            .nodes
            .iter()
            .filter(|n| n.graded)
            .map(|n| (n.name.clone(), LogTail::new(dir.stdout_log(&n.name))))
            .collect();
        let keep = (plan.verify.warmup + plan.verify.samples) as usize;
        let late = LateFollower::new(&dir);
        let plan_written = dir.plan_written();
        Ok(Source {
            root: root.clone(),
            plan_written,
            dir,
            tails,
            observations: HashMap::new(),
            compacted: HashMap::new(),
            keep,
            late,
        })
    }

    /// Reads what the nodes wrote since the last refresh and grades it. Blocking.
    fn refresh(&mut self) -> Result<Verification, LabError> {
        if !self.dir.path().is_dir() {
            return Err(StateError::NotUp(self.dir.state.plan.lab.clone()).into());
        }
        let written = self.dir.plan_written();
        if written != self.plan_written {
            let lab = self.dir.state.plan.lab.clone();
            if let Some(dir) = self.root.open(&lab)? {
                self.dir = dir;
                self.plan_written = written;
            }
        }
        let state = &self.dir.state;
        for (name, tail) in &mut self.tails {
            let seen = self.observations.entry(name.clone()).or_default();
            while tail.poll(seen)? > 0 {
                let floor = self.compacted.entry(name.clone()).or_insert(1024);
                if seen.events.len() > *floor {
                    seen.compact(self.keep);
                    *floor = (seen.events.len() * 2).max(1024);
                }
            }
            let alive = state
                .processes
                .iter()
                .any(|p| p.node.as_deref() == Some(name.as_str()) && p.alive());
            seen.exited = (!alive).then(|| "not running".to_owned());
        }
        Ok(verify_aside(
            &state.plan,
            &state.floors,
            &self.observations,
            self.late.poll(),
        ))
    }

    fn elapsed(&self) -> f64 {
        self.dir
            .state
            .nodes_started_at
            .map_or(0.0, |t| wall_now() - t)
    }
}

/// Where the view goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Drawn in place on the terminal.
    Terminal,
    /// Printed as plain text, one frame per refresh.
    Plain,
}

/// Refreshes once and shows it; gives the source back, and whether anyone
/// still reads (a pipe's reader that went away ends the watch, as it ends
/// any filter). Blocking.
fn show(mut source: Source, output: Output) -> Result<(Source, bool), LabError> {
    let verification = source.refresh()?;
    let plan = &source.dir.state.plan;
    let elapsed = source.elapsed();
    let written = match output {
        Output::Terminal => {
            let (cols, rows) = terminal::size();
            let size = Size {
                cols,
                rows: rows.saturating_sub(1),
            };
            let frame = render(plan, &verification, elapsed, size);
            terminal::draw(&frame, "q or Ctrl-C quits")
        }
        Output::Plain => {
            let frame = render(plan, &verification, elapsed, PLAIN);
            let mut out = io::stdout().lock();
            writeln!(out, "{}", frame.plain()).and_then(|()| out.flush())
        }
    };
    match written {
        Ok(()) => Ok((source, true)),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok((source, false)),
        Err(e) => Err(LabError::Terminal(e)),
    }
}

/// Whether a terminal event asks to quit: `q`, Esc, or Ctrl-C (raw mode
/// delivers it as a key, not a signal).
fn quits(event: &Event) -> bool {
    let Event::Key(KeyEvent {
        code,
        modifiers,
        kind: KeyEventKind::Press,
        ..
    }) = event
    else {
        return false;
    };
    matches!(code, KeyCode::Char('q') | KeyCode::Esc)
        || (*code == KeyCode::Char('c') && modifiers.contains(KeyModifiers::CONTROL))
}

/// Runs `work` on the blocking pool (`watch`, `metrics` and `logs` read
/// files there).
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LabError> + Send + 'static,
) -> Result<T, LabError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LabError::Terminal(io::Error::other(e)))?
}

/// Watches lab `lab` until `cancel` (or `--count` refreshes, or `q`). A lab
/// that is not up is an error before anything is drawn.
pub async fn watch(
    root: StateRoot,
    lab: String,
    options: &WatchOptions,
    cancel: &CancellationToken,
) -> Result<(), LabError> {
    let mut source = blocking(move || Source::open(&root, &lab)).await?;
    let output = if io::stdout().is_terminal() {
        Output::Terminal
    } else {
        Output::Plain
    };
    let _terminal = match output {
        Output::Terminal => Some(Terminal::enter().map_err(LabError::Terminal)?),
        Output::Plain => None,
    };
    let mut events = (output == Output::Terminal).then(EventStream::new);
    let mut tick = tokio::time::interval(options.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                let read;
                (source, read) = blocking(move || show(source, output)).await?;
                shown += 1;
                if !read || options.count.is_some_and(|count| shown >= count) {
                    cancel.cancel();
                }
            }
            Some(event) = async { events.as_mut()?.next().await } => {
                match event {
                    Ok(event) if quits(&event) => cancel.cancel(),
                    // Redrawn at the new size at once.
                    Ok(Event::Resize(..)) => tick.reset_immediately(),
                    Ok(_) => {}
                    Err(error) => return Err(LabError::Terminal(error)),
                }
            }
        }
    }
    Ok(())
}
