//! A lab whose nodes all run on this machine, as [`Sites`]: one [`Local`]
//! site, built here, its state recorded here. A host's agent builds its
//! share of a lab over several hosts the same way.

use tokio_util::sync::CancellationToken;

use super::calibrate::{calibrate, Calibrated};
use super::link_probe::record::PairRecord;
use super::link_probe::{measure_lab, PairSelection};
use super::local::Local;
use super::sites::{Launched, Sites};
use super::Convergence;
use crate::lab::builder::delay::Tc;
use crate::lab::builder::state::{LabDir, LabState, StateRoot};
use crate::lab::builder::{build, launch, teardown, UpOptions};
use crate::lab::plan::{backend, calibration, LinkProbing, Plan};
use crate::lab::progress::Progress;
use crate::lab::LabError;

/// This machine, where a lab (or a host's share of one) is built.
pub struct Machine<'a> {
    root: &'a StateRoot,
    options: UpOptions,
    /// The lab's name once `build` began: what a teardown removes.
    lab: Option<String>,
    /// The site, once built.
    here: Option<Local>,
}

impl<'a> Machine<'a> {
    /// This machine, with labs' state under `root`, built as `options` say.
    pub fn new(root: &'a StateRoot, options: UpOptions) -> Machine<'a> {
        Machine {
            root,
            options,
            lab: None,
            here: None,
        }
    }

    /// The site built here, once built.
    pub fn local(&mut self) -> Option<&mut Local> {
        self.here.as_mut()
    }
}

impl Sites for Machine<'_> {
    type Site = Local;
    type Error = LabError;

    async fn build(
        &mut self,
        plan: Plan,
        note: Option<String>,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<Launched, LabError> {
        launch::raise_priority();
        // Settled before anything is created: the backend, and whether
        // calibration can run on it.
        let netem = backend::needs_netem(self.options.backend, &plan)
            .then(|| tokio::task::block_in_place(|| Tc.probe_netem()));
        let kind = backend::settle(self.options.backend, &plan, netem.as_ref())?;
        calibration::check(&plan, kind)?;
        let mut state = LabState::creating(plan.clone());
        state.netem = netem;
        state.backend = Some(kind);
        state.backend_note = note;
        let dir = self.root.create(state)?;
        self.lab = Some(plan.lab.clone());
        let built = build(dir, plan, kind, &self.options, cancel, progress).await?;
        let launched = Launched {
            backend: kind,
            stages: built.stages.clone(),
            launched_at: built.launched_at,
        };
        self.here = Some(Local::new(built));
        Ok(launched)
    }

    async fn start(
        &mut self,
        convergence: &dyn Convergence,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<Option<Calibrated>, LabError> {
        let here = self.here.as_mut().ok_or(LabError::NotBuilt)?;
        // Calibration and a grading probe never meet (calibration::check).
        let calibrated = if here.dir().state.plan.verify.calibrate {
            let told = match &self.options.injected {
                Some(injected) => injected.clone(),
                None => here.dir().state.plan.clone(),
            };
            Some(calibrate(here, &told, convergence, cancel, progress).await?)
        } else {
            None
        };
        here.start_probe()?;
        Ok(calibrated)
    }

    async fn probe_links(
        &mut self,
        probing: &LinkProbing,
        cancel: &CancellationToken,
    ) -> Result<Vec<PairRecord>, LabError> {
        let here = self.here.as_ref().ok_or(LabError::NotBuilt)?;
        // The probe's threads pace and listen for seconds: off the workers.
        let records = tokio::task::block_in_place(|| {
            measure_lab(here.dir(), probing, &PairSelection::default(), cancel)
        })?;
        Ok(records)
    }

    fn record(&self) -> Option<&LabDir> {
        self.here.as_ref().map(Local::dir)
    }

    fn sites(&mut self) -> &mut [Local] {
        self.here.as_mut_slice()
    }

    async fn close(&mut self) {
        self.lab = None;
    }

    async fn teardown(&mut self, progress: &dyn Progress) {
        // The nodes' processes and the grading probe stop first.
        self.here = None;
        let Some(lab) = self.lab.take() else {
            return;
        };
        let root = self.root.clone();
        let removed = tokio::task::spawn_blocking(move || teardown(&root, &lab)).await;
        match removed {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => progress.line(&format!("cleaning up failed: {e}")),
            Err(e) => progress.line(&format!("cleaning up panicked: {e}")),
        }
    }
}

impl Drop for Machine<'_> {
    /// A panic or a dropped `up` takes down what its build made, as an error does.
    fn drop(&mut self) {
        self.here = None;
        if let Some(lab) = self.lab.take() {
            if let Err(e) = teardown(self.root, &lab) {
                eprintln!("sdss: cleaning up lab {lab} failed: {e}");
            }
        }
    }
}
