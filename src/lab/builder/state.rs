//! The record of a lab: what was created and what runs, written before each
//! object is created, so that `down` can undo a `lab up` that was killed with -9
//! at any point, and touches nothing it did not make.
//!
//! Layout: `<root>/<lab>/state.json` plus each node's logs, where `<root>` is
//! `/run/sdss/labs` (mode 0700) or `$SDSS_STATE_DIR`. Creating `<root>/<lab>`
//! is the lab's lock: a second `up` of the same lab finds it and stops.

use std::borrow::Cow;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::lab::builder::netns::NsId;
use crate::lab::plan::backend::{BackendKind, NetemSupport};
use crate::lab::plan::hosts::UnderlayDelay;
use crate::lab::plan::Plan;
use crate::lab::procfs::Stat;

/// Default root of lab state.
pub const DEFAULT_ROOT: &str = "/run/sdss/labs";

/// Environment variable that moves the state root (tests, unprivileged dry runs).
pub const ROOT_ENV: &str = "SDSS_STATE_DIR";

const STATE_FILE: &str = "state.json";
const PLAN_FILE: &str = "plan.json";

/// Failures around the state directory.
#[derive(Debug, Error)]
pub enum StateError {
    /// The lab already has state: running, or left by an interrupted run.
    #[error("lab {lab} is already up (state in {dir}): run `sdss lab down {lab}` first")]
    AlreadyUp {
        /// The lab.
        lab: String,
        /// Its state directory.
        dir: PathBuf,
    },
    /// The lab has no state: it is not up.
    #[error("lab {0} is not up")]
    NotUp(String),
    /// Reading or writing failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The state file is not what sdss writes.
    #[error("state file {path} is unreadable: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Where lab state lives.
#[derive(Debug, Clone)]
pub struct StateRoot(PathBuf);

/// Where a lab is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `up` is creating it.
    Creating,
    /// Complete and left running.
    Running,
    /// `down` is removing it.
    Removing,
}

/// A process sdss started (or the `up` that owns the lab), identified beyond its
/// PID so that a reused PID is never signalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The node it runs for, if any.
    pub node: Option<String>,
    /// Its PID (also its process group: nodes run in a group of their own).
    pub pid: i32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

impl ProcessRecord {
    /// Records a live process.
    pub fn of(pid: i32, node: Option<String>) -> Option<ProcessRecord> {
        start_time(pid).map(|start_time| ProcessRecord {
            node,
            pid,
            start_time,
        })
    }

    /// Whether this very process still runs (same PID and start time, not a zombie).
    pub fn alive(&self) -> bool {
        Stat::of(self.pid).is_some_and(|stat| stat.start_time == self.start_time && stat.alive())
    }
}

/// A namespace sdss created, with the identity it had when created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// Its name under `/run/netns`.
    pub name: String,
    /// Its identity, known before the name was created.
    pub id: NsId,
    /// When it was recorded (seconds since the epoch): an unmounted leftover file
    /// older than this is not ours.
    pub recorded_at: i64,
}

/// A link sdss created; it lives in one of the lab's namespaces and dies with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The namespace it is in.
    pub netns: String,
    /// Its name there.
    pub name: String,
    /// What it is (bridge, veth end, ...).
    pub kind: String,
}

/// Everything recorded about one lab: its plan, written once to `plan.json`,
/// and its record, rewritten to `state.json` at every step. Apart because a
/// step must be cheap: at 100 nodes the plan is 4 MB of JSON.
#[derive(Debug, Clone)]
pub struct LabState {
    /// The plan the lab was built from (with the expectations of its backend).
    pub plan: Plan,
    /// What was made, and where the lab is in its life.
    pub record: Record,
}

impl LabState {
    /// The plan as its pairs are judged: with the underlay measured between
    /// the hosts added to every pair across it (the plan itself as made).
    pub fn judged_plan(&self) -> Cow<'_, Plan> {
        if self.record.underlay.is_empty() {
            Cow::Borrowed(&self.plan)
        } else {
            Cow::Owned(self.plan.with_underlay(&self.record.underlay))
        }
    }
}

impl std::ops::Deref for LabState {
    type Target = Record;

    fn deref(&self) -> &Record {
        &self.record
    }
}

impl std::ops::DerefMut for LabState {
    fn deref_mut(&mut self) -> &mut Record {
        &mut self.record
    }
}

/// What a lab's build made, each object recorded before it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Where it is in its life.
    pub phase: Phase,
    /// The `sdss lab up` process that builds it.
    pub owner: Option<ProcessRecord>,
    /// When `up` began (RFC 3339).
    pub created_at: String,
    /// When the nodes were launched (seconds since the epoch).
    pub nodes_started_at: Option<f64>,
    /// The delay backend, once chosen.
    pub backend: Option<BackendKind>,
    /// Why the backend differs from the file's intent (a zero-delay run of a delayed lab).
    #[serde(default)]
    pub backend_note: Option<String>,
    /// Whether the kernel has netem, once probed.
    pub netem: Option<NetemSupport>,
    /// Namespaces, in creation order.
    pub namespaces: Vec<NamespaceRecord>,
    /// Links, in creation order.
    pub links: Vec<LinkRecord>,
    /// Node processes.
    pub processes: Vec<ProcessRecord>,
    /// The cgroups of confined programs, each recorded before its start.
    #[serde(default)]
    pub cgroups: Vec<String>,
    /// Each expected pair's floor as calibration measured it, in the plan's
    /// order (`[verify] calibrate`): a measurement, so it is recorded here,
    /// beside the plan, which stays as it was made. Empty without calibration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floors: Vec<Option<Duration>>,
    /// What the network between the hosts of a lab over several adds, as
    /// measured at `up`: recorded here too, and added to the plan's
    /// expectations only when they are judged ([`LabState::judged_plan`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub underlay: Vec<UnderlayDelay>,
}

/// A lab's state directory, held by the process that reads or changes it.
#[derive(Debug)]
pub struct LabDir {
    dir: PathBuf,
    /// The recorded state.
    pub state: LabState,
}

impl LabState {
    /// The first state of a lab `up` is about to build, owned by this process:
    /// written before anything exists, so a killed `up` always leaves a record.
    pub fn creating(plan: Plan) -> LabState {
        LabState {
            plan,
            record: Record {
                phase: Phase::Creating,
                owner: ProcessRecord::of(std::process::id() as i32, None),
                created_at: chrono::Utc::now().to_rfc3339(),
                nodes_started_at: None,
                backend: None,
                backend_note: None,
                netem: None,
                namespaces: Vec::new(),
                links: Vec::new(),
                processes: Vec::new(),
                cgroups: Vec::new(),
                floors: Vec::new(),
                underlay: Vec::new(),
            },
        }
    }
}

impl Default for StateRoot {
    fn default() -> Self {
        Self::from_env()
    }
}

impl StateRoot {
    /// `$SDSS_STATE_DIR`, or `/run/sdss/labs`.
    pub fn from_env() -> StateRoot {
        match std::env::var_os(ROOT_ENV) {
            Some(dir) if !dir.is_empty() => StateRoot(PathBuf::from(dir)),
            _ => StateRoot(PathBuf::from(DEFAULT_ROOT)),
        }
    }

    /// A root at an explicit place.
    pub fn at(path: impl Into<PathBuf>) -> StateRoot {
        StateRoot(path.into())
    }

    /// The directory of a lab.
    pub fn lab_dir(&self, lab: &str) -> PathBuf {
        self.0.join(lab)
    }

    /// Names of labs that have state.
    pub fn labs(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.0) else {
            return Vec::new();
        };
        let mut labs: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        labs.sort();
        labs
    }

    /// Claims the lab's name and writes its first state. Fails if the lab has
    /// state already (up, or left by a killed run).
    pub fn create(&self, state: LabState) -> Result<LabDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.0)
            .map_err(io("creating", &self.0))?;
        // The root may predate us with looser permissions: state names PIDs to kill.
        restrict(&self.0).map_err(io("restricting", &self.0))?;
        if let Some(parent) = self.0.parent().filter(|p| p.ends_with("sdss")) {
            let _ = restrict(parent);
        }
        let dir = self.lab_dir(&state.plan.lab);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StateError::AlreadyUp {
                    lab: state.plan.lab.clone(),
                    dir,
                })
            }
            Err(e) => return Err(io("creating", &dir)(e)),
        }
        let lab = LabDir { dir, state };
        write_json(&lab.dir.join(PLAN_FILE), &lab.state.plan)?;
        lab.save()?;
        Ok(lab)
    }

    /// Opens a lab's state. `Ok(None)` when the lab has a directory but no state
    /// file (an `up` killed before its first write).
    pub fn open(&self, lab: &str) -> Result<Option<LabDir>, StateError> {
        let dir = self.lab_dir(lab);
        if !dir.is_dir() {
            return Err(StateError::NotUp(lab.to_owned()));
        }
        let file = dir.join(STATE_FILE);
        let read = |file: &Path| match fs::read_to_string(file) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                action: "reading",
                path: file.to_owned(),
                source,
            }),
        };
        // The plan is written first: without a record, nothing was made.
        let Some(text) = read(&file)? else {
            return Ok(None);
        };
        let corrupt = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Corrupt { path, source }
        };
        let plan_file = dir.join(PLAN_FILE);
        let plan_text = read(&plan_file)?.ok_or_else(|| StateError::Io {
            action: "reading",
            path: plan_file.clone(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
        let record = serde_json::from_str(&text).map_err(corrupt(&file))?;
        let plan = serde_json::from_str(&plan_text).map_err(corrupt(&plan_file))?;
        let state = LabState { plan, record };
        Ok(Some(LabDir { dir, state }))
    }

    /// Removes a lab's directory (its state and logs).
    pub fn remove(&self, lab: &str) -> Result<(), StateError> {
        let dir = self.lab_dir(lab);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io {
                action: "removing",
                path: dir,
                source,
            }),
        }
    }
}

/// Wraps an OS error with what was being done to which file.
fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_owned();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

fn restrict(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

impl LabDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the link emulator keeps `what` (`spec.json`, `out`, `err`,
    /// `counters.json`): the '-' keeps these names apart from every node's log,
    /// since node names cannot contain one.
    pub fn emulator_file(&self, what: &str) -> PathBuf {
        self.dir.join(format!("lab-emulator.{what}"))
    }

    /// Where a node's stdout goes.
    pub fn stdout_log(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.out"))
    }

    /// Where a node's box keeps `what` (`json`: its spec; `hits`: the limits
    /// it hit; `folder`: the empty folder of a program that names none).
    pub fn box_file(&self, node: &str, what: &str) -> PathBuf {
        self.dir.join(format!("{node}.box.{what}"))
    }

    /// Where a node's stderr goes.
    pub fn stderr_log(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.err"))
    }

    /// Changes the state and writes it durably before returning: callers record
    /// an object with this before creating it.
    pub fn record(&mut self, change: impl FnOnce(&mut LabState)) -> Result<(), StateError> {
        change(&mut self.state);
        self.save()
    }

    /// Reads the record again, as another process left it (the plan stays):
    /// what a reader that outlives a step sees of the lab now.
    pub fn reload(&mut self) -> Result<(), StateError> {
        let file = self.dir.join(STATE_FILE);
        let text = fs::read_to_string(&file).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => StateError::NotUp(self.state.plan.lab.clone()),
            _ => StateError::Io {
                action: "reading",
                path: file.clone(),
                source,
            },
        })?;
        self.state.record = serde_json::from_str(&text)
            .map_err(|source| StateError::Corrupt { path: file, source })?;
        Ok(())
    }

    /// Records the plan a live change (`sdss lab set`) moved the running
    /// lab to, whole or not at all: what later commands judge by.
    pub fn replace_plan(&mut self, plan: Plan) -> Result<(), StateError> {
        write_json(&self.dir.join(PLAN_FILE), &plan)?;
        self.state.plan = plan;
        Ok(())
    }

    /// When the plan was last written (at `up`, or by a live change).
    pub fn plan_written(&self) -> Option<std::time::SystemTime> {
        fs::metadata(self.dir.join(PLAN_FILE))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Takes the lab's lock for live changes, held until the guard drops:
    /// two `lab set` at once take turns, each reading what the other wrote.
    pub fn lock_changes(&self) -> Result<nix::fcntl::Flock<fs::File>, StateError> {
        let path = self.dir.join("changes.lock");
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io("opening", &path))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| io("locking", &path)(errno.into()))
    }

    fn save(&self) -> Result<(), StateError> {
        write_json(&self.dir.join(STATE_FILE), &self.state.record)
    }
}

/// Writes `value` to `file` durably, whole or not at all (a temporary file
/// renamed over it).
fn write_json(file: &Path, value: &impl Serialize) -> Result<(), StateError> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let json = serde_json::to_vec(value).map_err(|e| StateError::Io {
        action: "encoding",
        path: file.to_owned(),
        source: io::Error::other(e),
    })?;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("writing", &tmp))?;
    out.write_all(&json).map_err(io("writing", &tmp))?;
    out.sync_data().map_err(io("syncing", &tmp))?;
    fs::rename(&tmp, file).map_err(io("renaming", &tmp))
}

/// A process's start time in clock ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    Stat::of(pid).map(|stat| stat.start_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::Plan;

    fn state(lab: &str) -> LabState {
        let text = format!("name = \"{lab}\"\n[[node]]\nname = \"a\"\n");
        LabState::creating(Plan::from_text(&text))
    }

    #[test]
    fn create_claims_the_name_record_persists_and_remove_cleans() {
        let root = StateRoot::at(
            std::env::temp_dir().join(format!("sdss-state-test-{}", std::process::id())),
        );
        let mut lab = root.create(state("one")).unwrap();
        assert!(matches!(
            root.create(state("one")),
            Err(StateError::AlreadyUp { .. })
        ));
        lab.record(|s| s.phase = Phase::Running).unwrap();
        let reopened = root.open("one").unwrap().unwrap();
        assert_eq!(reopened.state.phase, Phase::Running);
        assert_eq!(root.labs(), ["one"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(lab.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        root.remove("one").unwrap();
        root.remove("one").unwrap();
        assert!(matches!(root.open("one"), Err(StateError::NotUp(_))));
        fs::remove_dir_all(root.0).unwrap();
    }

    #[test]
    fn process_identity_includes_start_time() {
        let me = ProcessRecord::of(std::process::id() as i32, None).unwrap();
        assert!(me.alive());
        let reused = ProcessRecord {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!reused.alive());
        assert!(ProcessRecord::of(i32::MAX, None).is_none());
    }
}
