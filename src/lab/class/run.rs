//! Grading every submission of a class, `jobs` at once.
//!
//! Each submission is graded by `sdss lab grade --json` in a process of its
//! own: the one grading path there is, and a submission that takes its
//! grader down (or past its time bound) takes nothing else with it. Each
//! lab gets its own name and subnet; its result is written as soon as it is
//! known, so a class run that was stopped continues where it stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::score::{Finding, FindingKind, SubmissionResult, Weights};
use super::submissions::Submission;
use crate::lab::plan::sandbox::MIB;

/// Failures of the class run itself (a submission's own failures are its
/// findings, never these).
#[derive(Debug, Error)]
pub enum ClassError {
    /// The results folder cannot be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Earlier results were graded with another seed.
    #[error("the results in {dir} were graded with seed {stored}, not {asked}: pass --seed {stored} to continue them, or --force to regrade every submission")]
    SeedMismatch {
        /// The results folder.
        dir: PathBuf,
        /// The seed on record.
        stored: u32,
        /// The seed asked for.
        asked: u32,
    },
}

/// How a class is graded.
#[derive(Debug, Clone)]
pub struct ClassRun {
    /// The sdss executable the labs are graded with.
    pub sdss: PathBuf,
    /// Where results, logs and feedback go.
    pub results: PathBuf,
    /// Labs at once.
    pub jobs: usize,
    /// The scenario's seed, the same for every submission.
    pub seed: u32,
    /// Regrade submissions that already have a result.
    pub force: bool,
    /// How long each program is watched.
    pub duration: Duration,
    /// The bound on one submission's grading.
    pub timeout: Duration,
    /// Run programs unconfined (trusted code only).
    pub unconfined: bool,
    /// Lab names are this and a number.
    pub lab_prefix: String,
}

/// What the run tells as it goes.
pub trait ClassProgress: Send + Sync {
    /// A submission's grading started (in lab `lab`).
    fn started(&self, submission: &str, lab: &str);
    /// A submission is graded (or was, by an earlier run).
    fn finished(&self, result: &SubmissionResult, reused: bool);
}

/// Seconds a stopped grader has to remove its lab before it is killed.
const TEARDOWN_GRACE: Duration = Duration::from_secs(30);

/// Most bytes of a grader's JSON report read.
const REPORT_LIMIT: u64 = 64 * MIB;

/// Labs the machine carries at once without changing verdicts: one per
/// core (each program's box holds it to one core, so the programs together
/// cannot starve the labs' own nodes of more than the machine has), and no
/// more than the memory available holds boxes at their limit plus the
/// lab's own processes.
pub fn default_jobs(box_memory: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_lab = box_memory + 256 * MIB;
    let by_memory = <procfs::Meminfo as procfs::Current>::current()
        .ok()
        .and_then(|m| m.mem_available)
        .map_or(cores as u64, |available| available / per_lab.max(1));
    cores.min(by_memory as usize).max(1)
}

/// The seed on record in `results` (`seed` file), if any.
pub fn stored_seed(results: &Path) -> Option<u32> {
    std::fs::read_to_string(results.join("seed"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// Grades `submissions`, reusing earlier results unless `force`; returns
/// every result, in the submissions' order. Cancelled, it stops starting
/// labs, stops the running graders (each removes its lab) and returns what
/// is known.
pub async fn grade_class(
    run: &ClassRun,
    submissions: &[Submission],
    requirements: &[(String, String)],
    weights: &Weights,
    progress: &dyn ClassProgress,
    cancel: &CancellationToken,
) -> Result<Vec<SubmissionResult>, ClassError> {
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ClassError::Write { path, source }
    };
    std::fs::create_dir_all(&run.results).map_err(write_error(&run.results))?;
    if let Some(stored) = stored_seed(&run.results) {
        if stored != run.seed && !run.force {
            return Err(ClassError::SeedMismatch {
                dir: run.results.clone(),
                stored,
                asked: run.seed,
            });
        }
    }
    let seed_file = run.results.join("seed");
    std::fs::write(&seed_file, format!("{}\n", run.seed)).map_err(write_error(&seed_file))?;

    // A result that cannot be kept stops the run, as Ctrl-C does: the
    // graders running remove their labs before the error is returned.
    let stop = cancel.child_token();
    let cancel = &stop;
    let slots = Arc::new(Semaphore::new(run.jobs.max(1)));
    let free_subnets = Arc::new(std::sync::Mutex::new(
        (0..run.jobs.max(1)).collect::<Vec<_>>(),
    ));
    let mut graded = Vec::new();
    for (index, submission) in submissions.iter().enumerate() {
        let file = result_path(&run.results, &submission.name);
        if !run.force {
            if let Some(result) = read_result(&file).filter(|r| r.seed == run.seed) {
                progress.finished(&result, true);
                graded.push(futures::future::Either::Left(async move {
                    (Some(result), true)
                }));
                continue;
            }
        }
        let slots = slots.clone();
        let free_subnets = free_subnets.clone();
        graded.push(futures::future::Either::Right(async move {
            let graded = async {
                let _permit = tokio::select! {
                    permit = slots.acquire_owned() => permit.ok()?,
                    () = cancel.cancelled() => return None,
                };
                if cancel.is_cancelled() {
                    return None;
                }
                let slot = free_subnets.lock().ok()?.pop().unwrap_or(0);
                let lab = format!("{}{index}", run.lab_prefix);
                progress.started(&submission.name, &lab);
                let started = Instant::now();
                let mut result =
                    grade_one(run, submission, &lab, slot, requirements, weights, cancel).await;
                if let Ok(mut free) = free_subnets.lock() {
                    free.push(slot);
                }
                result.elapsed_s = started.elapsed().as_secs_f64();
                if cancel.is_cancelled() {
                    // A grading cut short is not a result: the next run grades it.
                    return None;
                }
                Some(result)
            };
            (graded.await, false)
        }));
    }
    // As each ends, not in order: a result is kept the moment it is known.
    let mut results = Vec::new();
    let mut failed = None;
    let mut pending = futures::stream::FuturesUnordered::from_iter(graded);
    use futures::StreamExt;
    while let Some((result, reused)) = pending.next().await {
        let Some(result) = result else { continue };
        if !reused {
            if let Err(e) = write_result(&result_path(&run.results, &result.submission), &result) {
                cancel.cancel();
                failed.get_or_insert(e);
                continue;
            }
            progress.finished(&result, false);
        }
        results.push(result);
    }
    if let Some(error) = failed {
        return Err(error);
    }
    let order = |r: &SubmissionResult| submissions.iter().position(|s| s.name == r.submission);
    results.sort_by_key(order);
    Ok(results)
}

/// Where a submission's result is kept.
pub fn result_path(results: &Path, submission: &str) -> PathBuf {
    results.join(format!("{submission}.json"))
}

fn read_result(path: &Path) -> Option<SubmissionResult> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes a result whole or not at all (a run killed mid-write leaves the
/// last one, or none).
fn write_result(path: &Path, result: &SubmissionResult) -> Result<(), ClassError> {
    let error = |source| ClassError::Write {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec_pretty(result).map_err(|e| error(e.into()))?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text).map_err(error)?;
    std::fs::rename(&partial, path).map_err(error)
}

/// Grades one submission in lab `lab` (subnet number `slot`).
async fn grade_one(
    run: &ClassRun,
    submission: &Submission,
    lab: &str,
    slot: usize,
    requirements: &[(String, String)],
    weights: &Weights,
    cancel: &CancellationToken,
) -> SubmissionResult {
    let ungraded = |command: Vec<String>, kind, detail: String| {
        SubmissionResult::ungraded(
            submission.name.clone(),
            command,
            run.seed,
            Finding { kind, detail },
            requirements,
            weights,
        )
    };
    let command: Vec<String> = match &submission.start {
        Ok(command) => command.iter().map(|w| w.replace("{lab}", lab)).collect(),
        Err(why) => return ungraded(Vec::new(), FindingKind::NothingToStart, why.clone()),
    };
    let log = run.results.join(format!("{}.log", submission.name));
    let stderr = match std::fs::File::create(&log) {
        Ok(file) => Stdio::from(file),
        Err(_) => Stdio::null(),
    };
    let subnet = format!("198.19.{}.0/24", slot % 256);
    let mut grader = Command::new(&run.sdss);
    grader
        .args(["lab", "grade", "--json", "--name", lab, "--subnet", &subnet])
        .arg("--duration")
        .arg(crate::units::format_duration(run.duration))
        .arg("--seed")
        .arg(run.seed.to_string())
        .arg("--dir")
        .arg(&submission.dir);
    if run.unconfined {
        grader.arg("--no-sandbox");
    }
    grader
        .arg("--")
        .args(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        // Its own group: a Ctrl-C reaches the class run, which stops each
        // grader in turn (each removes its own lab).
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match grader.spawn() {
        Ok(child) => child,
        Err(e) => {
            return ungraded(
                command,
                FindingKind::GraderFailed,
                format!("starting {}: {e}", run.sdss.display()),
            )
        }
    };
    let mut stdout = child.stdout.take();
    let read = async {
        let mut bytes = Vec::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.take(REPORT_LIMIT).read_to_end(&mut bytes).await;
        }
        let status = child.wait().await;
        (bytes, status)
    };
    let outcome = tokio::select! {
        done = tokio::time::timeout(run.timeout, read) => done.ok(),
        () = cancel.cancelled() => None,
    };
    let Some((bytes, status)) = outcome else {
        stop(&mut child, run, lab).await;
        let detail = format!(
            "its grading did not end within {} (the time bound of each submission): stopped",
            crate::units::format_duration(run.timeout)
        );
        return ungraded(command, FindingKind::TimedOut, detail);
    };
    let report: Option<crate::lab::report::Report> = serde_json::from_slice(&bytes).ok();
    match report.and_then(|r| r.grading.into_iter().next()) {
        Some(list) => SubmissionResult::new(
            submission.name.clone(),
            command,
            run.seed,
            Vec::new(),
            list.checks,
            weights,
        ),
        None => {
            let tail = log_tail(&log);
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            ungraded(
                command,
                FindingKind::GraderFailed,
                format!("the grader gave no checklist ({status}): {tail}"),
            )
        }
    }
}

/// Stops a grader: SIGTERM (it removes its lab), then SIGKILL after the
/// grace, then `sdss lab down` for what a killed grader left.
async fn stop(child: &mut tokio::process::Child, run: &ClassRun, lab: &str) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(TEARDOWN_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
        let _ = Command::new(&run.sdss)
            .args(["lab", "down", lab])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

/// The last line of a grader's log, for a finding.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let start = text.len().saturating_sub(4096);
    let text = String::from_utf8_lossy(&text[start..]);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("it printed nothing")
        .trim()
        .to_owned()
}
