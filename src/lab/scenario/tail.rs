//! A node's stdout followed as it grows: each poll reads only what was
//! written since the last (the offset is remembered), in bounded chunks.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::stream::Observations;
use crate::lab::LabError;

/// The most one poll reads: a long log is caught up over several polls.
const CHUNK: u64 = 1 << 20;

/// The longest line kept while waiting for its end: a node that prints no
/// newline costs this much memory, not its whole output.
const MAX_LINE: usize = 64 << 10;

/// A text file followed as it grows: complete lines only, the rest kept
/// until its line ends (at most [`MAX_LINE`] of it).
#[derive(Debug)]
pub struct Lines {
    path: PathBuf,
    offset: u64,
    partial: String,
}

/// What one read of a [`Lines`] gave.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The lines completed since the last read, newline-terminated.
    pub complete: String,
    /// Bytes read (0: caught up).
    pub bytes: u64,
    /// Whether an endless line was dropped.
    pub overlong: bool,
}

impl Lines {
    /// Follows `path` from its beginning (it need not exist yet).
    pub fn new(path: PathBuf) -> Lines {
        Lines {
            path,
            offset: 0,
            partial: String::new(),
        }
    }

    /// Follows `path` from byte `offset` (the start of a line).
    pub fn at(path: PathBuf, offset: u64) -> Lines {
        Lines {
            path,
            offset,
            partial: String::new(),
        }
    }

    /// The file it follows.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads at most [`CHUNK`] bytes written since the last read.
    pub fn read(&mut self) -> io::Result<Chunk> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Chunk::default()),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.take(CHUNK).read_to_end(&mut bytes))?;
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut read = Chunk {
            bytes: bytes.len() as u64,
            ..Chunk::default()
        };
        if let Some(end) = self.partial.rfind('\n') {
            read.complete = self.partial.drain(..=end).collect();
        }
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
            read.overlong = true;
        }
        Ok(read)
    }
}

/// Follows a node's stdout as it grows.
#[derive(Debug)]
pub struct LogTail(Lines);

impl LogTail {
    /// Follows `path` from its beginning (it need not exist yet).
    pub fn new(path: PathBuf) -> LogTail {
        LogTail(Lines::new(path))
    }

    /// Adds the events written since the last poll to `seen`, reading at
    /// most [`CHUNK`] bytes; returns how many it read (0: caught up).
    pub fn poll(&mut self, seen: &mut Observations) -> Result<u64, LabError> {
        let read = self.0.read().map_err(|source| LabError::Log {
            path: self.0.path().to_owned(),
            source,
        })?;
        seen.extend(Observations::parse(&read.complete));
        seen.unreadable_lines += usize::from(read.overlong);
        Ok(read.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_only_what_was_added_and_waits_for_a_line_end() {
        let dir = std::env::temp_dir().join(format!("sdss-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.out");
        let mut tail = LogTail::new(path.clone());
        let mut seen = Observations::default();
        assert_eq!(tail.poll(&mut seen).unwrap(), 0, "no file yet");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"junk\n{\"event\":\"sto").unwrap();
        tail.poll(&mut seen).unwrap();
        assert_eq!((seen.events.len(), seen.unreadable_lines), (0, 1));
        file.write_all(b"pped\"}\n").unwrap();
        tail.poll(&mut seen).unwrap();
        assert_eq!(tail.poll(&mut seen).unwrap(), 0);
        assert_eq!(seen.unreadable_lines + seen.events.len(), 2, "{seen:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
