//! How a node's events are shown: coloured lines and a periodic neighbor table
//! for people, one JSON object per line for programs (the lab reads these).
//!
//! The output runs on a thread of its own, fed by the node's bounded event
//! queue: a reader of stdout that stalls blocks that thread only, and one that
//! goes away (`sdss node --json | head -1`) ends the node, as with every filter.

pub mod endpoint;
mod human;
pub mod metrics;
mod process;

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::node::event::{NodeEvent, StampedEvent};
use crate::node::queue::EventReceiver;

pub use human::Human;
use metrics::PeerMetrics;

/// How events are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Coloured event lines and a neighbor table every `table_every`.
    Human {
        /// ANSI colours.
        color: bool,
        /// One line per heard broadcast and served client.
        verbose: bool,
        /// Period of the neighbor table.
        table_every: Duration,
    },
    /// One [`StampedEvent`] per line.
    Json,
}

/// How often an idle output checks that its reader is still there.
const READER_CHECK: Duration = Duration::from_millis(200);

/// The running output thread.
#[derive(Debug)]
pub struct Output {
    done: mpsc::Receiver<io::Result<()>>,
}

/// Starts rendering `events` to stdout, and feeding them to `metrics` when
/// given. When stdout fails (its reader is gone), `gone` is cancelled: the
/// node has nobody to talk to.
pub fn spawn(
    events: EventReceiver,
    mode: OutputMode,
    metrics: Option<PeerMetrics>,
    gone: CancellationToken,
) -> io::Result<Output> {
    let (finished, done) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("output".into())
        .spawn(move || {
            let result = render(&events, mode, metrics);
            if result.is_err() {
                gone.cancel();
            }
            let _ = finished.send(result);
        })?;
    Ok(Output { done })
}

impl Output {
    /// Waits up to `grace` for the output to write what is queued. `None`
    /// when it is still blocked on a reader that does not read: the node
    /// exits anyway.
    pub fn finish(self, grace: Duration) -> Option<io::Result<()>> {
        self.done.recv_timeout(grace).ok()
    }
}

/// Renders until the node drops its sender, or stdout fails.
fn render(
    events: &EventReceiver,
    mode: OutputMode,
    mut metrics: Option<PeerMetrics>,
) -> io::Result<()> {
    let stdout = io::stdout();
    let (mut human, table_every) = match mode {
        OutputMode::Json => (None, None),
        OutputMode::Human {
            color,
            verbose,
            table_every,
        } => (Some(Human::new(color, verbose)), Some(table_every)),
    };
    let mut next_table = table_every.map(|every| Instant::now() + every);
    loop {
        let wait = next_table.map_or(READER_CHECK, |at| {
            at.saturating_duration_since(Instant::now())
                .min(READER_CHECK)
        });
        let received = events.recv_timeout(wait);
        if let (Ok(event), Some(metrics)) = (&received, metrics.as_mut()) {
            metrics.observe(event);
        }
        let text = match (received, human.as_mut()) {
            (Ok(event), None) => {
                write_json_line(&mut stdout.lock(), event)?;
                continue;
            }
            (Ok(event), Some(human)) => human.event(&event, chrono::Utc::now()),
            (Err(RecvTimeoutError::Disconnected), _) => return Ok(()),
            (Err(RecvTimeoutError::Timeout), human) => {
                reader_present(&stdout)?;
                match (human, next_table, table_every) {
                    (Some(human), Some(at), Some(every)) if Instant::now() >= at => {
                        next_table = Some(at + every);
                        human.table()
                    }
                    _ => continue,
                }
            }
        };
        let mut out = stdout.lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
}

/// Fails with `BrokenPipe` when stdout's reader has gone (the pipe reports
/// an error or a hang-up), so an idle node notices without writing.
fn reader_present(stdout: &io::Stdout) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    if poll(&mut fds, PollTimeout::ZERO).is_ok_and(|ready| ready > 0) {
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
    }
    Ok(())
}

/// Writes one event as a JSON line and flushes, so a reader sees it at once.
pub fn write_json_line(out: &mut impl Write, event: NodeEvent) -> io::Result<()> {
    let stamped = StampedEvent {
        ts: chrono::Utc::now(),
        event,
    };
    serde_json::to_writer(&mut *out, &stamped)?;
    out.write_all(b"\n")?;
    out.flush()
}
