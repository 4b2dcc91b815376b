//! `sdss lab agent`: one host's part of a lab over several, driven by the
//! coordinator over stdin and stdout ([`super::wire`]). The share is built
//! and torn down by the same lifecycle as a lab on one machine, in this
//! host's own state directory, so `down` here is as complete and idempotent.

use std::collections::{HashMap, HashSet};
use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::underlay;
use super::wire::{self, Reply, Request, WireError};
use crate::lab::builder::error::BuildError;
use crate::lab::builder::state::{StateError, StateRoot};
use crate::lab::builder::teardown;
use crate::lab::builder::UpOptions;
use crate::lab::lifecycle::{self, Judged};
use crate::lab::plan::Plan;
use crate::lab::progress::Silent;
use crate::lab::report::progress::Console;
use crate::lab::report::LabPhase;
use crate::lab::scenario::local::Local;
use crate::lab::scenario::machine::Machine;
use crate::lab::scenario::site::{Finished, Site};
use crate::lab::scenario::sites::Sites;
use crate::lab::LabError;

/// How often followed output is read.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The most of one node's output sent per read.
const CHUNK: u64 = 256 << 10;

/// Why the agent stopped before its work was done.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The coordinator's request could not be read.
    #[error("request: {0}")]
    Wire(#[from] WireError),
    /// The coordinator stopped listening.
    #[error("writing a reply: {0}")]
    Reply(#[source] std::io::Error),
}

/// Serves one session: its first request decides what it is.
pub async fn serve<R, W>(
    root: &StateRoot,
    sdss: PathBuf,
    mut input: R,
    mut output: W,
    cancel: &CancellationToken,
) -> Result<(), AgentError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut line = Vec::new();
    let Some(request) = wire::read::<Request, _>(&mut input, &mut line).await? else {
        return Ok(());
    };
    match request {
        Request::Up { plan, backend } => {
            let lab = plan.lab.clone();
            let segment = plan.segment.clone();
            let options = UpOptions {
                backend,
                sdss: sdss.clone(),
                verify: false,
                injected: None,
            };
            let progress = Console::new(&lab, false);
            // The coordinator gone (stdin closed) cancels the build, which tears itself down.
            let building = cancel.child_token();
            let mut machine = Machine::new(root, options.clone());
            let outcome = {
                let up = lifecycle::up(*plan, &mut machine, &options, &building, &progress);
                tokio::pin!(up);
                let mut ignored = Vec::new();
                tokio::select! {
                    outcome = &mut up => outcome,
                    _ = wire::read::<Request, _>(&mut input, &mut ignored) => {
                        building.cancel();
                        up.await
                    }
                }
            };
            progress.finish();
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(e) => return send(&mut output, &failed(&e)).await,
            };
            // Probes from the other hosts are answered from now until the session ends.
            let answering = CancellationToken::new();
            let _stop = answering.clone().drop_guard();
            if let Some(segment) = &segment {
                match underlay::bind(segment.local).await {
                    Ok(socket) => {
                        tokio::spawn(underlay::answer(
                            socket,
                            segment.remotes.clone(),
                            answering.clone(),
                        ));
                    }
                    Err(e) => {
                        let message = format!(
                            "cannot answer underlay probes on {}:{}: {e}",
                            segment.local,
                            underlay::PROBE_PORT
                        );
                        let _ = tokio::task::spawn_blocking({
                            let root = root.clone();
                            move || teardown::teardown(&root, &lab)
                        })
                        .await;
                        return send(&mut output, &Reply::Failed { message }).await;
                    }
                }
            }
            send(
                &mut output,
                &Reply::Built {
                    backend: outcome.backend,
                    netem: root
                        .open(&lab)
                        .ok()
                        .flatten()
                        .and_then(|dir| dir.state.netem.clone()),
                    seconds: outcome.build_time.as_secs_f64(),
                    stages: outcome.stages.to_string(),
                },
            )
            .await?;
            while let Some(request) = wire::read::<Request, _>(&mut input, &mut line).await? {
                match request {
                    Request::Measure { peers } => {
                        let local = segment.as_ref().map(|s| s.local);
                        let reply = match local {
                            Some(local) => match underlay::measure(local, &peers).await {
                                Ok(delays) => Reply::Underlay {
                                    delays: delays
                                        .into_iter()
                                        .map(|(peer, m)| {
                                            (peer, m.map(|m| (m.delay.as_secs_f64(), m.clock)))
                                        })
                                        .collect(),
                                },
                                Err(e) => Reply::Failed {
                                    message: format!("measuring the underlay: {e}"),
                                },
                            },
                            None => Reply::Failed {
                                message: "this share has no segment to measure".to_owned(),
                            },
                        };
                        send(&mut output, &reply).await?;
                    }
                    Request::Logs { lab, from, follow } => {
                        // The share's grading probe starts, when the probe node is here.
                        if let Err(e) = machine.start(&Judged, cancel, &Silent).await {
                            return send(&mut output, &failed(&e)).await;
                        }
                        let here = machine.local();
                        return logs(root, here, &lab, from, follow, &mut input, &mut output).await;
                    }
                    other => {
                        let message = format!("not expected after up: {other:?}");
                        send(&mut output, &Reply::Failed { message }).await?;
                    }
                }
            }
            Ok(())
        }
        Request::Logs { lab, from, follow } => {
            logs(root, None, &lab, from, follow, &mut input, &mut output).await
        }
        Request::Down { lab } => {
            let result = tokio::task::spawn_blocking({
                let root = root.clone();
                move || teardown::teardown(&root, &lab)
            })
            .await;
            let reply = match result {
                Ok(Ok(outcome)) => Reply::Down {
                    found: outcome.found,
                    stopped: outcome.stopped,
                    removed: outcome.removed.len(),
                },
                Ok(Err(BuildError::State(StateError::NotUp(_)))) => Reply::Down {
                    found: false,
                    stopped: 0,
                    removed: 0,
                },
                Ok(Err(e)) => failed(&e.into()),
                Err(e) => Reply::Failed {
                    message: format!("teardown panicked: {e}"),
                },
            };
            send(&mut output, &reply).await
        }
        Request::Status { lab } => {
            let reply = match lifecycle::status(root, Some(&lab)) {
                Ok(labs) => match labs.into_iter().next() {
                    Some(s) => Reply::Status {
                        phase: s.phase,
                        nodes_running: s.nodes_running,
                        nodes: s.nodes,
                    },
                    None => down_status(),
                },
                Err(LabError::State(StateError::NotUp(_))) => down_status(),
                Err(e) => failed(&e),
            };
            send(&mut output, &reply).await
        }
        Request::Measure { .. } | Request::Play { .. } | Request::Finish => {
            let message =
                "measure comes after up, and play while logs follow, in one session".to_owned();
            send(&mut output, &Reply::Failed { message }).await
        }
    }
}

/// Streams the nodes' output from the offsets given; with `follow`, until
/// the coordinator closes stdin, else until caught up (`End`). In the session
/// that built the share (`built`), plays the timeline's events as they come.
async fn logs<R, W>(
    root: &StateRoot,
    mut here: Option<&mut Local>,
    lab: &str,
    from: Vec<(String, u64)>,
    follow: bool,
    input: &mut R,
    output: &mut W,
) -> Result<(), AgentError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let opened = match &here {
        Some(_) => None,
        None => match root.open(lab) {
            Ok(Some(dir)) => Some(dir),
            Ok(None) | Err(StateError::NotUp(_)) => {
                let message = format!("lab {lab} is not up on this host");
                return send(output, &Reply::Failed { message }).await;
            }
            Err(e) => return send(output, &failed(&LabError::State(e))).await,
        },
    };
    // The share's plan does not change while it runs: read once.
    let Some(plan) = here
        .as_deref()
        .map(Local::dir)
        .or(opened.as_ref())
        .map(|dir| dir.state.plan.clone())
    else {
        return Ok(());
    };
    let mut offsets: HashMap<String, u64> = from.into_iter().collect();
    let mut exited = HashSet::new();
    let mut line = Vec::new();
    loop {
        // The built share's state is the one a played restart records in.
        let Some(dir) = here.as_deref().map(Local::dir).or(opened.as_ref()) else {
            return Ok(());
        };
        for node in &plan.nodes {
            let node = &node.name;
            let offset = offsets.entry(node.clone()).or_default();
            while let Some((text, next)) = read_from(&dir.stdout_log(node), *offset).await {
                *offset = next;
                let reply = Reply::Output {
                    node: node.clone(),
                    next,
                    text,
                };
                send(output, &reply).await?;
            }
            let alive = dir
                .state
                .processes
                .iter()
                .any(|p| p.node.as_deref() == Some(node.as_str()) && p.alive());
            if alive {
                exited.remove(node);
            } else if exited.insert(node.clone()) {
                send(output, &Reply::Exited { node: node.clone() }).await?;
            }
        }
        if !follow {
            return send(output, &Reply::End).await;
        }
        tokio::select! {
            request = wire::read::<Request, _>(input, &mut line) => match request {
                Ok(Some(Request::Play { event })) => {
                    let reply = play(here.as_deref_mut(), &plan, event).await;
                    send(output, &reply).await?;
                }
                Ok(Some(Request::Finish)) => {
                    let finished = match here.as_deref_mut() {
                        Some(here) => here.finish(&plan).await,
                        None => Finished::default(),
                    };
                    send(output, &Reply::Finished(Box::new(finished))).await?;
                }
                // Anything else, or nothing, ends the stream: EOF is the usual end.
                _ => return Ok(()),
            },
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

/// Plays this host's share of timeline event `event` on the share it built,
/// as `lab up` plays an event on one machine: the same site.
async fn play(here: Option<&mut Local>, plan: &Plan, event: usize) -> Reply {
    let played = match here {
        None => Err("events are played in the session that built the share".to_owned()),
        Some(_) if event >= plan.timeline.events.len() => {
            Err(format!("the share's timeline has no event {event}"))
        }
        Some(here) => here.play(plan, event).await,
    };
    Reply::Played {
        event,
        took_ms: played
            .as_ref()
            .ok()
            .and_then(|took| took.map(crate::units::millis)),
        error: played.err(),
    }
}

/// The complete lines written at `offset` and after (at most [`CHUNK`]; a
/// chunk without a newline is sent whole), and the offset after them.
async fn read_from(path: &std::path::Path, offset: u64) -> Option<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await.ok()?;
    file.seek(SeekFrom::Start(offset)).await.ok()?;
    let mut bytes = Vec::new();
    file.take(CHUNK).read_to_end(&mut bytes).await.ok()?;
    let end = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => end + 1,
        None if bytes.len() as u64 == CHUNK => bytes.len(),
        None => return None,
    };
    bytes.truncate(end);
    Some((
        String::from_utf8_lossy(&bytes).into_owned(),
        offset + end as u64,
    ))
}

fn down_status() -> Reply {
    Reply::Status {
        phase: LabPhase::Down,
        nodes_running: 0,
        nodes: 0,
    }
}

/// A failure as one line: the error and its causes.
fn failed(error: &LabError) -> Reply {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Reply::Failed { message }
}

async fn send<W: AsyncWrite + Unpin>(output: &mut W, reply: &Reply) -> Result<(), AgentError> {
    output
        .write_all(&wire::line(reply))
        .await
        .map_err(AgentError::Reply)?;
    output.flush().await.map_err(AgentError::Reply)
}
