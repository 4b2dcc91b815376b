//! Where a lab's nodes live, as the scenario sees it. A [`Site`] plays its
//! share of each timeline event and tells how its nodes run; the scenario's
//! one loop (`super::run`) drives any set of them. This machine is one site
//! ([`super::local::Local`]); a remote host's agent is another (`hosts`).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use super::grading::LabSide;
use super::late::LateAnswers;
use crate::lab::builder::sandbox::outcome::BoxOutcome;
use crate::lab::plan::Plan;

/// How long a site may take to play its share of an event, unless it says
/// otherwise: a remote host answers through its stream, and a link change
/// there is one `tc` per leaf.
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
    /// checklist needs of its graded nodes (written into `lab`).
    fn finish(&mut self, _plan: &Plan, _lab: &mut LabSide) -> Vec<BoxOutcome> {
        Vec::new()
    }
}
