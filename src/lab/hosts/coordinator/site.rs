//! A remote host as a [`Site`]: its agent plays its share of each event and
//! streams its nodes' output here, through the session that built the share.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{lock, Heard};
use crate::lab::plan::Plan;
use crate::lab::scenario::site::Site;

/// What a site's play comes to: how long a link change took, or why it failed.
pub(super) type PlayAnswer = Result<Option<Duration>, String>;

/// One event for the host's stream to pass on, and where its answer goes.
pub(super) type PlayRequest = (usize, oneshot::Sender<PlayAnswer>);

/// Events waiting for one host's stream (a lab's come seconds apart).
pub(super) const PLAY_QUEUE: usize = 64;

/// A host of the lab, reached through the task that gathers its stream.
pub(super) struct Host {
    /// Its name in the lab file.
    pub name: String,
    /// Its nodes.
    pub nodes: HashSet<String>,
    /// Where each of its nodes' output is gathered here.
    pub paths: HashMap<String, PathBuf>,
    /// To the task that holds its session.
    pub plays: mpsc::Sender<PlayRequest>,
    /// What its stream said.
    pub heard: Arc<Heard>,
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
        self.plays.send((index, answer)).await.map_err(|_| gone())?;
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
}
