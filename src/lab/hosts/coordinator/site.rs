//! A remote host as a [`Site`]: its agent plays its share of each event and
//! streams its nodes' output here, through the session that built the share.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{lock, Heard};
use crate::lab::plan::Plan;
use crate::lab::scenario::site::{Finished, Site};

/// What a site's play comes to: how long a link change took, or why it failed.
pub(super) type PlayAnswer = Result<Option<Duration>, String>;

/// What the scenario asks of a host through its stream, and where the
/// answer goes.
pub(super) enum Ask {
    /// Play its share of this event of the timeline.
    Play(usize, oneshot::Sender<PlayAnswer>),
    /// Tell what its boxes and grading probe came to.
    Finish(oneshot::Sender<Finished>),
}

/// How long a host may take to finish: its grading probe runs to its own
/// end, which its start (after the underlay's measure) puts a little later.
const FINISH_WAIT: Duration = Duration::from_secs(30);

/// Asks waiting for one host's stream (a lab's events come seconds apart).
pub(super) const ASK_QUEUE: usize = 64;

/// A host of the lab, reached through the task that gathers its stream.
pub struct Host {
    /// Its name in the lab file.
    pub(super) name: String,
    /// Its nodes.
    pub(super) nodes: HashSet<String>,
    /// Where each of its nodes' output is gathered here.
    pub(super) paths: HashMap<String, PathBuf>,
    /// To the task that holds its session.
    pub(super) asks: mpsc::Sender<Ask>,
    /// What its stream said.
    pub(super) heard: Arc<Heard>,
}

impl Site for Host {
    fn name(&self) -> String {
        format!("host {}", self.name)
    }

    fn holds(&self, node: &str) -> bool {
        self.nodes.contains(node)
    }

    fn stdout_log(&self, node: &str) -> PathBuf {
        self.paths.get(node).cloned().unwrap_or_default()
    }

    async fn play(&mut self, _plan: &Plan, index: usize) -> PlayAnswer {
        if let Some(why) = self.lost() {
            return Err(format!("lost: {why}"));
        }
        let (answer, answered) = oneshot::channel();
        let gone = || "its stream ended before it answered".to_owned();
        let ask = Ask::Play(index, answer);
        self.asks.send(ask).await.map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }

    fn stopped(&mut self, node: &str) -> Option<String> {
        if let Some(why) = self.lost() {
            return Some(format!("its host {} was lost: {why}", self.name));
        }
        lock(&self.heard.exited)
            .contains(node)
            .then(|| "not running".to_owned())
    }

    fn lost(&self) -> Option<String> {
        lock(&self.heard.lost).clone()
    }

    async fn finish(&mut self, plan: &Plan) -> Finished {
        let asked = async {
            let (answer, answered) = oneshot::channel();
            self.asks.send(Ask::Finish(answer)).await.ok()?;
            tokio::time::timeout(FINISH_WAIT, answered).await.ok()?.ok()
        };
        match asked.await {
            Some(finished) => finished,
            None => {
                // Its probe's log is lost with it: say so, rather than judge
                // its graded nodes on nothing.
                let probe = plan
                    .grading
                    .as_ref()
                    .filter(|g| self.holds(&g.probe))
                    .map(|_| {
                        let why = self.lost().unwrap_or_else(|| "no answer".to_owned());
                        Err(format!("host {} did not finish: {why}", self.name))
                    });
                Finished {
                    probe,
                    ..Finished::default()
                }
            }
        }
    }
}
