//! Where a lab's nodes live, as the scenario sees it. A [`Site`] plays its
//! share of each timeline event and tells how its nodes run; the scenario's
//! one loop (`super::run`) drives any set of them. This machine is one site
//! ([`super::local::Local`]); a remote host's agent is another (`hosts`).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::late::LateAnswers;
use super::probe_log::ProbeLog;
use crate::lab::builder::sandbox::outcome::BoxOutcome;
use crate::lab::builder::sandbox::spec::LimitHit;
use crate::lab::plan::Plan;

/// How long a site may take to play its share of an event, unless it says
/// otherwise: a remote host answers through its stream, and a link change
/// of a large lab under emulation takes seconds.
pub const PLAY_WAIT: Duration = Duration::from_secs(15);

/// A place where some of a lab's nodes run.
pub trait Site: Send {
    /// Its name in messages ("this machine", "host h2").
    fn name(&self) -> String;

    /// Whether `node` runs here.
    fn holds(&self, node: &str) -> bool;

    /// The file on this machine that `node`'s output is appended to as it
    /// runs, wherever the node runs.
    fn stdout_log(&self, node: &str) -> PathBuf;

    /// Plays this site's share of event `index` of `plan`'s timeline: a
    /// process change of one of its nodes, or its part of a link change (the
    /// links of its nodes); returns how long a link change took to confirm.
    fn play(
        &mut self,
        plan: &Plan,
        index: usize,
    ) -> impl Future<Output = Result<Option<Duration>, String>> + Send;

    /// How long it may take to play its share of an event before the
    /// scenario reports it as not answering and goes on.
    fn play_wait(&self) -> Duration {
        PLAY_WAIT
    }

    /// Why `node` does not run, if it does not (it exited, or its site is lost).
    fn stopped(&mut self, node: &str) -> Option<String>;

    /// Why this site was lost while the scenario ran, if it was.
    fn lost(&self) -> Option<String> {
        None
    }

    /// The late answers of this site's link emulator so far, when it keeps them.
    fn late(&mut self) -> Option<&LateAnswers> {
        None
    }

    /// At the end: how its boxed programs ran, and what the grading
    /// checklist needs of its graded nodes and of its grading probe.
    fn finish(&mut self, _plan: &Plan) -> impl Future<Output = Finished> + Send {
        async { Finished::default() }
    }
}

/// What a site tells at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// How each of its programs nobody here wrote ran.
    pub boxes: Vec<BoxOutcome>,
    /// What its grading probe saw, when one ran there, or why it failed.
    pub probe: Option<Result<ProbeLog, String>>,
    /// Its graded nodes that exited before the end, and how.
    pub exited: HashMap<String, String>,
    /// The last line each of its graded nodes wrote on stderr.
    pub last_words: HashMap<String, String>,
    /// The limits each of its confined graded nodes hit.
    pub limits_hit: HashMap<String, Vec<LimitHit>>,
}
