//! `sdss lab up/verify/down/status` of a lab over several hosts, on the
//! machine where the user types: one plan for the whole lab, one share per
//! host built there by its agent, the underlay between them measured, every
//! node's output gathered here and judged as one lab.
//!
//! The coordinator keeps a state directory of its own (the plan with the
//! underlay, the nodes' gathered output), so `verify` and `down` work later
//! and from a killed `up`; the hosts keep theirs.

mod down;
pub mod site;
mod up;
mod verify;

pub use down::{down, status, DownAcross};
pub use up::Hosts;
pub use verify::verify_again;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use thiserror::Error;

use super::remote::{HostError, Session};
use super::wire::{Reply, Request};
use crate::lab::builder::state::StateError;
use crate::lab::plan::calibration::CalibrationRefusal;
use crate::lab::scenario::site::Finished;
use crate::lab::LabError;
use site::{Ask, PlayAnswer};

/// What goes wrong in a lab over several hosts: what goes wrong in any lab,
/// or hosts that failed, each with its reason.
#[derive(Debug, Error)]
pub enum SpanError {
    /// As in a lab on one machine (including Ctrl-C).
    #[error(transparent)]
    Lab(#[from] LabError),
    /// Hosts that failed, each with its reason.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Hosts(Vec<HostError>),
}

impl From<StateError> for SpanError {
    fn from(error: StateError) -> Self {
        SpanError::Lab(error.into())
    }
}

impl From<CalibrationRefusal> for SpanError {
    fn from(error: CalibrationRefusal) -> Self {
        SpanError::Lab(error.into())
    }
}

/// What a host's stream tells, shared with the task that reads it.
#[derive(Debug, Default)]
struct Heard {
    /// Nodes whose process is not running.
    pub exited: Mutex<HashSet<String>>,
    /// Why the stream ended early, if it did.
    pub lost: Mutex<Option<String>>,
}

/// Appends each `Output` to its node's file here, and passes on `plays`
/// (timeline events) to the agent, each answered when the agent says it is
/// done; ends at `stop` or when the host does.
async fn gather(
    session: &mut Session,
    paths: &HashMap<String, PathBuf>,
    heard: &Heard,
    mut asks: Option<&mut mpsc::Receiver<Ask>>,
    stop: &CancellationToken,
) -> Result<(), HostError> {
    let mut files: HashMap<String, tokio::fs::File> = HashMap::new();
    let mut waiting: HashMap<usize, oneshot::Sender<PlayAnswer>> = HashMap::new();
    let mut finishing: Option<oneshot::Sender<Finished>> = None;
    loop {
        let next_ask = async {
            match asks.as_mut() {
                Some(asks) => asks.recv().await,
                None => std::future::pending().await,
            }
        };
        let reply = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            Some(ask) = next_ask => {
                match ask {
                    Ask::Play(event, answer) => {
                        session.send(&Request::Play { event }).await?;
                        waiting.insert(event, answer);
                    }
                    Ask::Finish(answer) => {
                        session.send(&Request::Finish).await?;
                        finishing = Some(answer);
                    }
                }
                continue;
            }
            reply = session.recv() => reply?,
        };
        match reply {
            Reply::Output { node, text, .. } => {
                let Some(path) = paths.get(&node) else {
                    continue;
                };
                if !files.contains_key(&node) {
                    let file = tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .await
                        .map_err(|e| HostError::Failed {
                            host: session.host.clone(),
                            message: format!("writing {}: {e}", path.display()),
                        })?;
                    files.insert(node.clone(), file);
                }
                if let Some(file) = files.get_mut(&node) {
                    let _ = file.write_all(text.as_bytes()).await;
                }
            }
            Reply::Finished(finished) => {
                if let Some(answer) = finishing.take() {
                    let _ = answer.send(*finished);
                }
            }
            Reply::Exited { node } => {
                lock(&heard.exited).insert(node);
            }
            Reply::Played {
                event,
                error,
                took_ms,
            } => {
                if let Some(answer) = waiting.remove(&event) {
                    let took = took_ms.map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1e3));
                    let _ = answer.send(error.map_or(Ok(took), Err));
                }
            }
            Reply::End => return Ok(()),
            other => return Err(session.unexpected(&other)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
