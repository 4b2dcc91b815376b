//! What the coordinator and an agent say to each other: one JSON document per
//! line, requests on the agent's stdin, replies on its stdout. The agent's
//! stderr is its progress, shown by the coordinator as it comes.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::lab::file::backend::BackendChoice;
use crate::lab::plan::backend::{BackendKind, NetemSupport};
use crate::lab::plan::Plan;
use crate::lab::report::LabPhase;
use crate::lab::scenario::site::Finished;

/// The longest line either side reads: a node's output is sent in chunks
/// far below it, and the longest line, a grading host's `Finished`, holds at
/// most 2 x 2400 datagrams of 600 bytes (as hex) per graded node; so only
/// a broken peer reaches it.
pub const MAX_LINE: usize = 64 << 20;

/// What the coordinator asks of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Builds this host's share of a lab and starts its nodes; replies `Built`,
    /// then answers the other hosts' underlay probes until stdin closes.
    Up {
        /// The share ([`Plan::share`]).
        plan: Box<Plan>,
        /// The delay backend to use.
        backend: BackendChoice,
    },
    /// After `Up`: measures the underlay to each peer; replies `Underlay`.
    Measure {
        /// The other hosts' underlay addresses.
        peers: Vec<Ipv4Addr>,
    },
    /// Streams the nodes' output (`Output`, `Exited`) from these offsets until
    /// stdin closes; with `follow` false, only what is there, then `End`.
    Logs {
        /// The lab.
        lab: String,
        /// Per node, the bytes of its output the coordinator already has.
        from: Vec<(String, u64)>,
        /// Keep streaming as the output grows.
        follow: bool,
    },
    /// While `Logs` follows, in the session that built the share: plays
    /// this host's share of a timeline event (a process change of one of its
    /// nodes, its nodes' part of a link change); replies `Played`.
    Play {
        /// The event's index in the lab's timeline (the share has it whole).
        event: usize,
    },
    /// While `Logs` follows, at the end of the run: replies `Finished`
    /// with what the share's boxes and grading probe came to.
    Finish,
    /// How this host's share is; replies `Status`.
    Status {
        /// The lab.
        lab: String,
    },
    /// Takes this host's share down (nothing there is no error); replies `Down`.
    Down {
        /// The lab.
        lab: String,
    },
}

impl Request {
    /// The request in one word, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Up { .. } => "up",
            Request::Measure { .. } => "measure",
            Request::Logs { .. } => "logs",
            Request::Play { .. } => "play",
            Request::Finish => "finish",
            Request::Status { .. } => "status",
            Request::Down { .. } => "down",
        }
    }
}

/// What an agent answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The share is up and its nodes started.
    Built {
        /// The delay backend the host settled on.
        backend: BackendKind,
        /// Whether its kernel has netem, when it probed.
        #[serde(default)]
        netem: Option<NetemSupport>,
        /// Seconds the build took.
        seconds: f64,
        /// Its stages, as `lab up` prints them.
        stages: String,
    },
    /// Each peer as measured; `None`: it did not answer.
    Underlay {
        /// Per peer: half the shortest round trip, and its clock minus ours, seconds.
        delays: Vec<(Ipv4Addr, Option<(f64, f64)>)>,
    },
    /// Bytes a node printed.
    Output {
        /// The node.
        node: String,
        /// Where in its output the bytes after these start (the next `from`).
        next: u64,
        /// The bytes (complete lines, lossy UTF-8).
        text: String,
    },
    /// A node's process is not running.
    Exited {
        /// The node.
        node: String,
    },
    /// A `Play` was done, or why not.
    Played {
        /// The event's index.
        event: usize,
        /// Why it failed, if it did.
        error: Option<String>,
        /// How long a link change took to confirm, ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        took_ms: Option<f64>,
    },
    /// What the share's run came to (`Finish`).
    Finished(Box<Finished>),
    /// The share was taken down.
    Down {
        /// Whether there was a share to take down.
        found: bool,
        /// Processes stopped.
        stopped: usize,
        /// Namespaces removed.
        removed: usize,
    },
    /// How the share is.
    Status {
        /// Where the share is, `down` when it is not up here.
        phase: LabPhase,
        /// Node processes running.
        nodes_running: usize,
        /// Nodes in the share.
        nodes: usize,
    },
    /// The request failed; the message says why.
    Failed {
        /// What went wrong.
        message: String,
    },
    /// The request is done.
    End,
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The stream failed.
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
    /// The line is too long.
    #[error("a line longer than {MAX_LINE} bytes")]
    TooLong,
    /// The line is not a message.
    #[error("not a message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Reads one message; `None` at the end of the stream. A line is bounded.
/// Cancel-safe: a line cut short by a cancelled call stays in `line` and
/// the next call goes on with it.
pub async fn read<T, R>(reader: &mut R, line: &mut Vec<u8>) -> Result<Option<T>, WireError>
where
    T: for<'de> Deserialize<'de>,
    R: AsyncBufRead + Unpin,
{
    loop {
        // The only await: nothing of this round is consumed before it returns.
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            return parse(line).map(Some);
        }
        let (taken, done) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if line.len() > MAX_LINE {
            line.clear();
            return Err(WireError::TooLong);
        }
        if done {
            return parse(line).map(Some);
        }
    }
}

/// The message in `line`, which is emptied for the next.
fn parse<T: for<'de> Deserialize<'de>>(line: &mut Vec<u8>) -> Result<T, WireError> {
    let parsed = serde_json::from_slice(line);
    line.clear();
    Ok(parsed?)
}

/// One message as a line.
pub fn line<T: Serialize>(message: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_one_per_line() {
        let sent = [
            Reply::Output {
                node: "n1".into(),
                next: 7,
                text: "{\"event\":\"x\"}\n".into(),
            },
            Reply::End,
        ];
        let bytes: Vec<u8> = sent.iter().flat_map(line).collect();
        let mut reader = &bytes[..];
        let mut buffer = Vec::new();
        for expected in &sent {
            let got: Option<Reply> = read(&mut reader, &mut buffer).await.expect("a reply");
            assert_eq!(got.as_ref(), Some(expected));
        }
        let end: Option<Reply> = read(&mut reader, &mut buffer).await.expect("the end");
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn an_endless_line_is_refused_not_buffered() {
        let bytes = vec![b'x'; MAX_LINE + 10];
        let mut reader = tokio::io::BufReader::new(&bytes[..]);
        let mut buffer = Vec::new();
        let got: Result<Option<Reply>, _> = read(&mut reader, &mut buffer).await;
        assert!(matches!(got, Err(WireError::TooLong)), "{got:?}");
    }
}
