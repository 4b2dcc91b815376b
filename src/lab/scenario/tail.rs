//! A node's stdout followed as it grows: each poll reads only what was
//! written since the last (the offset is remembered), in bounded chunks.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::lab::judge::delays::Observations;
use crate::lab::LabError;

/// The most one poll reads: a long log is caught up over several polls.
const CHUNK: u64 = 1 << 20;

/// The longest line kept while waiting for its end: a node that prints no
/// newline costs this much memory, not its whole output.
const MAX_LINE: usize = 64 << 10;

/// Follows a node's stdout as it grows.
#[derive(Debug)]
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    /// Follows `path` from its beginning (it need not exist yet).
    pub fn new(path: PathBuf) -> LogTail {
        LogTail {
            path,
            offset: 0,
            partial: String::new(),
        }
    }

    /// Adds the events written since the last poll to `seen`, reading at
    /// most [`CHUNK`] bytes; returns how many it read (0: caught up).
    pub fn poll(&mut self, seen: &mut Observations) -> Result<u64, LabError> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(LabError::Log {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.take(CHUNK).read_to_end(&mut bytes))
            .map_err(|source| LabError::Log {
                path: self.path.clone(),
                source,
            })?;
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        if let Some(end) = self.partial.rfind('\n') {
            let complete: String = self.partial.drain(..=end).collect();
            seen.extend(Observations::parse(&complete));
        }
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
            seen.unreadable_lines += 1;
        }
        Ok(bytes.len() as u64)
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
