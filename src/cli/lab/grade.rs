//! `sdss lab grade --class`: its flags, and the dispatch to `lab::class`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use super::commands::{run_plan, Ending, LabRun};
use crate::lab::builder::state::StateRoot;
use crate::lab::class::bar::ClassBar;
use crate::lab::class::{outputs, run, write_outputs, Class, ClassOptions, ClassOutputs};
use crate::lab::file::backend::BackendChoice;
use crate::lab::file::{BuiltinGrade, Topology};
use crate::lab::hosts::RemoteExec;
use crate::lab::plan::{Plan, PlanOptions};

/// The flags of a class run.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct ClassArgs {
    /// Grade every submission of a class: one folder per submission under
    /// DIR, started as `DIR/class.toml` says or by convention (see
    /// labs/README.md, "Grading a class"). Exit code 0 once every
    /// submission is graded, 2 on error.
    #[arg(long, value_name = "DIR")]
    pub class: Option<PathBuf>,
    /// Labs graded at once (default: one per core, as memory allows).
    #[arg(long, requires = "class")]
    pub jobs: Option<usize>,
    /// Regrade submissions that already have a result.
    #[arg(long, requires = "class")]
    pub force: bool,
    /// Where results, logs and feedback go (default DIR/.grades).
    #[arg(long, value_name = "DIR", requires = "class")]
    pub results: Option<PathBuf>,
    /// Write the gradebook as CSV: one row per submission, a column per check.
    #[arg(long, value_name = "FILE", requires = "class")]
    pub csv: Option<PathBuf>,
    /// Write Gradescope's results.json per submission, under DIR/NAME/.
    #[arg(long, value_name = "DIR", requires = "class")]
    pub gradescope: Option<PathBuf>,
    /// Write one self-contained HTML page: the score distribution, the pass
    /// rate per check and each submission's checklist with its evidence.
    #[arg(long, value_name = "FILE", requires = "class")]
    pub html: Option<PathBuf>,
}

/// Grades the class in `folder`.
pub(super) fn class(
    name: &str,
    folder: &Path,
    args: &ClassArgs,
    duration: Option<Duration>,
    seed: Option<u32>,
    unconfined: bool,
) -> Result<ExitCode> {
    let options = ClassOptions {
        folder: folder.to_owned(),
        results: args
            .results
            .clone()
            .unwrap_or_else(|| folder.join(".grades")),
        jobs: args.jobs,
        seed,
        drawn: fastrand::u32(..),
        force: args.force,
        duration,
        unconfined,
        sdss: std::env::current_exe().context("locating the sdss executable")?,
        lab_prefix: name.to_owned(),
    };
    let class = Class::prepare(&options)?;
    eprintln!(
        "sdss lab grade: {} submission(s) in {}, {} at once, seed {}, each watched {} (bound {})",
        class.submissions.len(),
        folder.display(),
        class.run.jobs,
        class.run.seed,
        crate::units::format_duration(class.run.duration),
        crate::units::format_duration(class.run.timeout),
    );
    let unknown = class.weights();
    let ids: Vec<String> = class
        .requirements
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    for name in unknown.unknown(&ids) {
        eprintln!(
            "sdss lab grade: [grade.weights] {name} names no check nor area: it weighs nothing"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let bar = ClassBar::new(class.submissions.len());
    let graded = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            super::commands::wait_for_signal().await;
            eprintln!("sdss lab grade: interrupted, stopping the labs");
            on_signal.cancel();
        });
        let weights = class.weights();
        let graded = run::grade_class(
            &class.run,
            &class.submissions,
            &class.requirements,
            &weights,
            &bar,
            &cancel,
        )
        .await;
        (graded, cancel.is_cancelled())
    });
    bar.finish();
    let (graded, interrupted) = graded;
    let graded = graded?;
    let outputs_asked = ClassOutputs {
        csv: args.csv.clone(),
        gradescope: args.gradescope.clone(),
        html: args.html.clone(),
    };
    write_outputs(&class, &graded, &outputs_asked).context("writing the class's outputs")?;
    print!("{}", outputs::table(&graded));
    println!(
        "results, logs and feedback: {}",
        class.run.results.display()
    );
    if interrupted {
        eprintln!(
            "sdss lab grade: interrupted after {} of {} submission(s); run it again to continue",
            graded.len(),
            class.submissions.len()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// `lab grade -- COMMAND`: one program graded in the built-in lab.
pub(super) fn builtin(
    grade: &BuiltinGrade<'_>,
    json: bool,
    no_sandbox: bool,
    root: &StateRoot,
    exec: &RemoteExec,
) -> Result<ExitCode> {
    let (topology, path) = Topology::grading(grade)?;
    let options = PlanOptions {
        unconfined: no_sandbox,
        ..PlanOptions::default()
    };
    let plan = Plan::with_options(&topology, &path, &options);
    let run = LabRun {
        backend: BackendChoice::None,
        injected: None,
        json,
        html: None,
        verify: true,
        ending: Ending::Down,
        metrics: None,
    };
    run_plan(plan, run, root, exec)
}
