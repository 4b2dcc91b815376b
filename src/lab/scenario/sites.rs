//! A lab's sites as `up` sees them: built together, recorded in one state
//! directory on this machine, played by the scenario, and at the end left up
//! or taken down. Each of them is a [`Site`].

use std::future::Future;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::calibrate::Calibrated;
use super::link_probe::record::PairRecord;
use super::site::Site;
use super::Convergence;
use crate::lab::builder::state::LabDir;
use crate::lab::builder::Stages;
use crate::lab::plan::backend::BackendKind;
use crate::lab::plan::{LinkProbing, Plan};
use crate::lab::progress::Progress;
use crate::lab::LabError;

/// Every site of a lab, as `up` sees them: built together, recorded in one
/// state directory on this machine, played by the scenario, and at the end
/// either left up ([`Sites::close`]) or taken down ([`Sites::teardown`]).
/// A lab on this machine is one implementation (`super::machine`), a lab
/// over several hosts another (`hosts::coordinator`).
pub trait Sites: Send {
    /// The place where some of the lab's nodes run.
    type Site: Site;
    /// What goes wrong here: what goes wrong in any lab, and more.
    type Error: From<LabError> + Send;

    /// Builds each site's share of `plan` (as the backend will inject it:
    /// `note` says when that is not as the file asks) and starts its nodes.
    fn build(
        &mut self,
        plan: Plan,
        note: Option<String>,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<Launched, Self::Error>> + Send;

    /// What follows the build whether or not the run is judged: hosts
    /// measure the underlay between them and record it.
    fn ready(
        &mut self,
        _progress: &dyn Progress,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Readies the sites to be played and followed: the grading probe
    /// started, a remote host's output streamed here, the floors calibrated
    /// (which the scenario then resumes from).
    fn start(
        &mut self,
        convergence: &dyn Convergence,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<Option<Calibrated>, Self::Error>> + Send;

    /// Streams the link probe over every ordered pair as `probing` says,
    /// from the nodes' own namespaces (`[verify] link`), and returns what
    /// each pair's receiver saw.
    fn probe_links(
        &mut self,
        probing: &LinkProbing,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Vec<PairRecord>, Self::Error>> + Send;

    /// The lab's state on this machine, once built.
    fn record(&self) -> Option<&LabDir>;

    /// The sites, for the scenario to play.
    fn sites(&mut self) -> &mut [Self::Site];

    /// Ends `up` with the lab left up: what `start` opened is closed, and
    /// dropping the sites no longer takes the lab down.
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// Ends `up` with the lab taken down, on every site, whatever state its
    /// build reached; says what could not be removed.
    fn teardown(&mut self, progress: &dyn Progress) -> impl Future<Output = ()> + Send;
}

/// What building a lab's sites came to.
#[derive(Debug, Clone)]
pub struct Launched {
    /// The delay backend the sites settled on (the first host's, when they differ).
    pub backend: BackendKind,
    /// The build's stages, timed (on this machine).
    pub stages: Stages,
    /// When the nodes were started.
    pub launched_at: Instant,
}
