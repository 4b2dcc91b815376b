//! How a node's events are shown: coloured lines and a periodic neighbor table
//! for people, one JSON object per line for programs (the lab reads these).

mod human;

use std::io::{self, Write};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::node::event::{NodeEvent, StampedEvent};

pub use human::Human;

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

/// Renders events to stdout until the node drops its sender.
pub async fn render(mut events: mpsc::UnboundedReceiver<NodeEvent>, mode: OutputMode) {
    let stdout = io::stdout();
    match mode {
        OutputMode::Json => {
            while let Some(event) = events.recv().await {
                if write_json_line(&mut stdout.lock(), event).is_err() {
                    return; // stdout is gone (e.g. a closed pipe): nobody is reading.
                }
            }
        }
        OutputMode::Human {
            color,
            verbose,
            table_every,
        } => {
            let mut human = Human::new(color, verbose);
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + table_every, table_every);
            loop {
                let text = tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => human.event(&event, chrono::Utc::now()),
                        None => return,
                    },
                    _ = ticks.tick() => human.table(),
                };
                if stdout.lock().write_all(text.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
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
