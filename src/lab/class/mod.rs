//! Grading a class: one folder per submission, each graded in a lab of its
//! own, `jobs` at once, by the one grading path there is (`sdss lab grade`).
//!
//! class folder -> [`file`] (`class.toml`) -> [`submissions`] (how each
//! starts) -> [`run`] (labs at once, results kept as they come) ->
//! [`score`] (weights, points) -> [`outputs`] (table, CSV, Gradescope,
//! feedback) and [`page`] (the HTML page).

pub mod bar;
pub mod file;
pub mod outputs;
pub mod page;
pub mod run;
pub mod score;
pub mod submissions;

use std::path::Path;

use score::{SubmissionResult, Weights};

/// Every check the grader makes, as (id, title), in the checklist's order.
pub fn requirements() -> Vec<(String, String)> {
    crate::lab::judge::checks::grade(&crate::lab::scenario::observe::Observed::default())
        .checks
        .into_iter()
        .map(|c| (c.id, c.title))
        .collect()
}

/// Writes each submission's feedback file, `DIR/feedback/NAME.txt`.
pub fn write_feedback(results: &Path, graded: &[SubmissionResult]) -> std::io::Result<()> {
    let dir = results.join("feedback");
    std::fs::create_dir_all(&dir)?;
    for result in graded {
        std::fs::write(
            dir.join(format!("{}.txt", result.submission)),
            outputs::feedback(result),
        )?;
    }
    Ok(())
}

/// Writes each submission's Gradescope results, `DIR/NAME/results.json`.
pub fn write_gradescope(
    dir: &Path,
    graded: &[SubmissionResult],
    weights: &Weights,
) -> std::io::Result<()> {
    for result in graded {
        let folder = dir.join(&result.submission);
        std::fs::create_dir_all(&folder)?;
        let json = serde_json::to_vec_pretty(&outputs::gradescope(result, weights))?;
        std::fs::write(folder.join("results.json"), json)?;
    }
    Ok(())
}

/// What `sdss lab grade --class` was asked.
#[derive(Debug, Clone)]
pub struct ClassOptions {
    /// The class's folder.
    pub folder: std::path::PathBuf,
    /// Where results, logs and feedback go.
    pub results: std::path::PathBuf,
    /// Labs at once; derived when absent ([`run::default_jobs`]).
    pub jobs: Option<usize>,
    /// The seed, when asked; else the one on record, else `drawn`.
    pub seed: Option<u32>,
    /// A seed drawn at random, for a class with none on record.
    pub drawn: u32,
    /// Regrade every submission.
    pub force: bool,
    /// How long each program is watched, over the class file's.
    pub duration: Option<std::time::Duration>,
    /// Run programs unconfined.
    pub unconfined: bool,
    /// The sdss executable.
    pub sdss: std::path::PathBuf,
    /// Lab names are this, `x` and the submission's number.
    pub lab_prefix: String,
}

/// Failures of a class run.
#[derive(Debug, thiserror::Error)]
pub enum GradeClassError {
    /// The class file.
    #[error(transparent)]
    File(#[from] file::ClassFileError),
    /// The class folder cannot be listed.
    #[error("reading the class folder {path}: {source}")]
    Folder {
        /// The folder.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The run.
    #[error(transparent)]
    Run(#[from] run::ClassError),
}

/// A class, prepared: its submissions and how they are graded.
#[derive(Debug, Clone)]
pub struct Class {
    /// The class file.
    pub file: file::ClassFile,
    /// The submissions, sorted.
    pub submissions: Vec<submissions::Submission>,
    /// How the run goes.
    pub run: run::ClassRun,
    /// Every check, (id, title).
    pub requirements: Vec<(String, String)>,
}

impl Class {
    /// Reads the class file and the folders, and settles jobs, seed and
    /// time bounds.
    pub fn prepare(options: &ClassOptions) -> Result<Class, GradeClassError> {
        let file = file::ClassFile::load(&options.folder)?;
        let submissions = submissions::discover(&options.folder, &file).map_err(|source| {
            GradeClassError::Folder {
                path: options.folder.clone(),
                source,
            }
        })?;
        let duration = options
            .duration
            .or(file.grade.duration.map(|d| d.0))
            .unwrap_or(crate::lab::plan::GradeSettings::DEFAULT_DURATION);
        let stored = if options.force {
            None
        } else {
            run::stored_seed(&options.results)
        };
        let seed = options.seed.or(stored).unwrap_or(options.drawn);
        // Building and removing a lab, and verifying its nodes, take about
        // a minute beside the watch itself on a loaded machine.
        let timeout = file
            .grade
            .timeout
            .map_or(duration + std::time::Duration::from_secs(90), |t| t.0);
        let box_memory = crate::lab::plan::sandbox::Limits::default().memory;
        let run = run::ClassRun {
            sdss: options.sdss.clone(),
            results: options.results.clone(),
            jobs: options
                .jobs
                .unwrap_or_else(|| run::default_jobs(box_memory)),
            seed,
            force: options.force,
            duration,
            timeout,
            unconfined: options.unconfined,
            lab_prefix: format!("{}x", options.lab_prefix),
        };
        Ok(Class {
            file,
            submissions,
            run,
            requirements: requirements(),
        })
    }

    /// The weights.
    pub fn weights(&self) -> Weights {
        self.file.weights()
    }
}

/// Where a class run's outputs go, beyond its results folder.
#[derive(Debug, Clone, Default)]
pub struct ClassOutputs {
    /// The CSV gradebook.
    pub csv: Option<std::path::PathBuf>,
    /// A folder of Gradescope `results.json`, one per submission.
    pub gradescope: Option<std::path::PathBuf>,
    /// The HTML page: distribution, pass rate per check, each checklist.
    pub html: Option<std::path::PathBuf>,
}

/// Writes the feedback files and the outputs asked for.
pub fn write_outputs(
    class: &Class,
    graded: &[SubmissionResult],
    outputs: &ClassOutputs,
) -> std::io::Result<()> {
    write_feedback(&class.run.results, graded)?;
    if let Some(path) = &outputs.csv {
        std::fs::write(path, outputs::csv(graded, &class.requirements))?;
    }
    if let Some(dir) = &outputs.gradescope {
        write_gradescope(dir, graded, &class.weights())?;
    }
    if let Some(path) = &outputs.html {
        let text = page::page(graded, &class.requirements, class.run.seed);
        std::fs::write(path, text)?;
    }
    Ok(())
}
