//! `sdss lab logs`: a node's output, as `sdss node` shows it on a terminal
//! (its JSON events rendered by [`crate::output::Human`]), or raw; the last
//! N lines found from the end of the file, and with `follow` the rest as it
//! is written, until the one cancellation token ends it. Memory stays
//! bounded however long the log: a block read backwards, then chunks forward.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::builder::state::StateRoot;
use super::lifecycle::open_node;
use super::scenario::tail::Lines;
use super::watch::blocking;
use super::LabError;
use crate::node::event::StampedEvent;
use crate::output::Human;

/// How `lab logs` shows a node's output.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogsOptions {
    /// Its stderr rather than its stdout (always raw).
    pub stderr: bool,
    /// The raw JSON event stream rather than the rendered lines.
    pub raw: bool,
    /// Only the last this many lines (events).
    pub tail: Option<u64>,
    /// Keep showing what it writes until cancelled.
    pub follow: bool,
    /// Colour the rendered lines (a terminal reads them).
    pub color: bool,
}

/// How often a followed log is read again.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// The block read backwards while looking for the last lines.
const BLOCK: usize = 64 << 10;

/// Shows node `node` of lab `lab` on `out` as `options` say; returns when
/// the log is shown (or, following, when `cancel` fires or `out`'s reader
/// goes away).
pub async fn logs(
    root: &StateRoot,
    lab: &str,
    node: &str,
    options: LogsOptions,
    cancel: &CancellationToken,
    out: impl Write + Send + 'static,
) -> Result<(), LabError> {
    let (dir, index) = open_node(root, lab, node)?;
    let plan_node = &dir.state.plan.nodes[index];
    let path = if options.stderr {
        dir.stderr_log(node)
    } else {
        dir.stdout_log(node)
    };
    // Only sdss's JSON events have a human form; anything else is shown as written.
    let render = !options.stderr && !options.raw && plan_node.graded;
    let mut reader = Reader {
        lines: Lines::at(path.clone(), start(&path, options.tail)?),
        human: render.then(|| Human::new(options.color, true)),
        out,
    };
    loop {
        let caught_up;
        (reader, caught_up) = blocking(move || reader.show()).await?;
        if caught_up.is_none() {
            // Nobody reads any more: a closed pipe ends it, as it ends any filter.
            return Ok(());
        }
        if caught_up == Some(true) {
            if !options.follow {
                return Ok(());
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
        } else if cancel.is_cancelled() {
            return Ok(());
        }
    }
}

/// A log read forward and written out.
struct Reader<W> {
    lines: Lines,
    human: Option<Human>,
    out: W,
}

impl<W: Write> Reader<W> {
    /// Reads and writes one chunk. Blocking. `Some(true)`: caught up;
    /// `None`: the reader of `out` went away.
    fn show(mut self) -> Result<(Self, Option<bool>), LabError> {
        let path = self.lines.path().to_owned();
        let chunk = self
            .lines
            .read()
            .map_err(|source| LabError::Log { path, source })?;
        let text = match &mut self.human {
            Some(human) => render(human, &chunk.complete),
            None => chunk.complete,
        };
        let written = self
            .out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush());
        match written {
            Ok(()) => Ok((self, Some(chunk.bytes == 0))),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok((self, None)),
            Err(e) => Err(LabError::Terminal(e)),
        }
    }
}

/// Complete lines of a node's JSON event stream, as the node shows them on
/// a terminal (each at its own time); a line that is no event, as written.
pub fn render(human: &mut Human, lines: &str) -> String {
    let mut out = String::new();
    for line in lines.lines() {
        match serde_json::from_str::<StampedEvent>(line) {
            Ok(stamped) => out.push_str(&human.event(&stamped.event, stamped.ts)),
            Err(_) => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Where showing `path` starts: its beginning, or with `tail` the start of
/// its last `tail` lines (a last line without its newline counts).
fn start(path: &Path, tail: Option<u64>) -> Result<u64, LabError> {
    let Some(wanted) = tail else {
        return Ok(0);
    };
    let log = |source| LabError::Log {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(log(e)),
    };
    let len = file.metadata().map_err(log)?.len();
    last_lines(&mut file, len, wanted).map_err(log)
}

/// The offset of the last `wanted` lines of the first `len` bytes of `file`,
/// read backwards a block at a time.
fn last_lines(file: &mut (impl Read + Seek), len: u64, wanted: u64) -> io::Result<u64> {
    if wanted == 0 {
        return Ok(len);
    }
    let mut block = vec![0; BLOCK];
    let mut end = len;
    // The newline that ends the last line starts no line.
    let mut newlines = 0;
    let mut skip_last = true;
    while end > 0 {
        let size = (end.min(BLOCK as u64)) as usize;
        let from = end - size as u64;
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block[..size])?;
        for (i, byte) in block[..size].iter().enumerate().rev() {
            if *byte != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last {
                skip_last = false;
                continue;
            }
            newlines += 1;
            if newlines == wanted {
                return Ok(from + i as u64 + 1);
            }
        }
        end = from;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn offset(text: &str, wanted: u64) -> usize {
        let mut cursor = Cursor::new(text.as_bytes().to_vec());
        last_lines(&mut cursor, text.len() as u64, wanted).unwrap() as usize
    }

    #[test]
    fn the_last_lines_are_found_from_the_end() {
        let text = "one\ntwo\nthree\n";
        assert_eq!(&text[offset(text, 1)..], "three\n");
        assert_eq!(&text[offset(text, 2)..], "two\nthree\n");
        assert_eq!(&text[offset(text, 9)..], text);
        assert_eq!(&text[offset(text, 0)..], "");
        let open = "one\ntwo";
        assert_eq!(&open[offset(open, 1)..], "two");
        assert_eq!(offset("", 3), 0);
        // Across blocks: a long log, its last three lines.
        let long: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(
            &long[offset(&long, 3)..],
            "line 19997\nline 19998\nline 19999\n"
        );
    }

    #[test]
    fn events_render_as_the_nodes_terminal_shows_them_and_other_lines_stay() {
        let mut human = Human::new(false, true);
        let text = "{\"ts\":\"2026-12-04T20:00:01.5Z\",\"event\":\"stopped\"}\nnot json\n";
        assert_eq!(render(&mut human, text), "20:00:01.500 stopped\nnot json\n");
    }
}
