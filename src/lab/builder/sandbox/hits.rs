//! The limits a box's program hits, as its keeper sees them: each hit it sees is appended to the hits
//! file as a [`LimitHit`] and said on stderr, a few of each kind at most.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::{fstatat, Mode, SFlag};
use nix::unistd::Pid;

use super::cgroup::{Cgroup, Counters};
use super::init::Outcome;
use super::spec::{BoxSpec, LimitHit, LimitKind};
use crate::lab::plan::sandbox::Limits;
use crate::lab::procfs;
use crate::units::format_size;

/// The most hits of one kind reported; past it the program is clearly at
/// its limit and more lines would only flood the log.
const REPORTS_MAX: usize = 5;
/// The most entries one look for large files visits.
const WALK_MAX: usize = 4096;
/// How often the processes' open files are counted.
const FILES_EVERY: Duration = Duration::from_millis(500);
/// How often the disks are looked at.
const DISKS_EVERY: Duration = Duration::from_secs(1);

/// A private tmpfs of the box, held open so it can be looked at to the end.
struct Disk {
    /// How people know it: "its folder", "its /tmp".
    label: String,
    /// Its path in the box.
    path: PathBuf,
    size: u64,
    dir: OwnedFd,
    full: bool,
}

/// What the keeper has seen of the limits so far.
pub struct Hits {
    start: Instant,
    limits: Limits,
    hits: PathBuf,
    last: Counters,
    reported: [usize; 6],
    disks: Vec<Disk>,
    large: Vec<PathBuf>,
    files_seen: Instant,
    disks_seen: Instant,
}

impl Hits {
    /// Hits seen from `start`, the program's start as near as the keeper knows it.
    pub fn new(spec: &BoxSpec, start: Instant) -> Hits {
        Hits {
            start,
            limits: spec.limits,
            hits: spec.hits.clone(),
            last: Counters::default(),
            reported: [0; 6],
            disks: Vec::new(),
            large: Vec::new(),
            files_seen: start,
            disks_seen: start,
        }
    }

    /// Opens the box's tmpfs through its init's root, once that is built.
    pub fn attach(&mut self, init: Pid, spec: &BoxSpec) {
        let root = PathBuf::from(format!("/proc/{init}/root"));
        for (label, path) in [
            ("its folder", spec.folder.clone()),
            ("its /tmp", PathBuf::from("/tmp")),
            ("its /dev/shm", PathBuf::from("/dev/shm")),
        ] {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            let outside = root.join(path.strip_prefix("/").unwrap_or(&path));
            if let Ok(dir) = nix::fcntl::open(&outside, flags, Mode::empty()) {
                let size = nix::sys::statvfs::fstatvfs(dir.as_fd())
                    .map_or(0, |s| s.blocks() * s.fragment_size());
                self.disks.push(Disk {
                    label: label.to_owned(),
                    path,
                    size,
                    dir,
                    full: false,
                });
            }
        }
    }

    /// Looks at the cheap counters every call, at the processes' open files
    /// and the disks now and then.
    pub fn poll(&mut self, group: &Cgroup) {
        self.counters(group.counters());
        if self.files_seen.elapsed() >= FILES_EVERY {
            self.files_seen = Instant::now();
            self.open_files(group);
        }
        if self.disks_seen.elapsed() >= DISKS_EVERY {
            self.disks_seen = Instant::now();
            self.disks();
        }
    }

    /// The last look, once the box's init has ended.
    pub fn finish(&mut self, group: &Cgroup, outcome: Option<Outcome>) {
        self.counters(group.counters());
        self.disks();
        if outcome == Some(Outcome::Killed(Signal::SIGXFSZ)) {
            let text = format!(
                "killed for writing a file past the size limit of {}",
                format_size(self.limits.file_size)
            );
            self.report(LimitKind::FileSize, text);
        }
    }

    fn counters(&mut self, now: Counters) {
        let last = std::mem::replace(&mut self.last, now);
        let memory = format_size(self.limits.memory);
        match now.oom_kills.saturating_sub(last.oom_kills) {
            0 => {}
            1 => self.report(
                LimitKind::Memory,
                format!("killed by the memory limit of {memory}"),
            ),
            n => self.report(
                LimitKind::Memory,
                format!("{n} processes killed by the memory limit of {memory}"),
            ),
        }
        let tasks = self.limits.tasks;
        match now.forks_refused.saturating_sub(last.forks_refused) {
            0 => {}
            1 => self.report(
                LimitKind::Tasks,
                format!("a fork was refused by the task limit of {tasks}"),
            ),
            n => self.report(
                LimitKind::Tasks,
                format!("{n} forks were refused by the task limit of {tasks}"),
            ),
        }
        if held_to_quota(&now) && self.reported[LimitKind::Cpu as usize] == 0 {
            let cpu = self.limits.cpu;
            let unit = if cpu == 1.0 { "CPU" } else { "CPUs" };
            self.report(LimitKind::Cpu, format!("held to {cpu} {unit}"));
        }
    }

    fn open_files(&mut self, group: &Cgroup) {
        if self.reported[LimitKind::Files as usize] > 0 {
            return;
        }
        let most = self.limits.files as usize;
        let full = group
            .processes()
            .into_iter()
            .find(|pid| procfs::open_files(pid.as_raw()).is_some_and(|open| open >= most));
        if full.is_some() {
            self.report(
                LimitKind::Files,
                format!("a process had all the {most} files it may open"),
            );
        }
    }

    fn disks(&mut self) {
        let mut hits = Vec::new();
        for disk in &mut self.disks {
            let free = nix::sys::statvfs::fstatvfs(disk.dir.as_fd()).map(|s| s.blocks_available());
            let full = free == Ok(0);
            if full && !disk.full {
                hits.push((
                    LimitKind::Disk,
                    format!("{} ({}) is full", disk.label, format_size(disk.size)),
                ));
            }
            disk.full = full;
            for path in large_files(&disk.dir, self.limits.file_size) {
                let path = disk.path.join(path);
                if !self.large.contains(&path) {
                    let text = format!(
                        "a file reached the size limit of {}: {}",
                        format_size(self.limits.file_size),
                        path.display()
                    );
                    hits.push((LimitKind::FileSize, text));
                    self.large.push(path);
                }
            }
        }
        for (kind, text) in hits {
            self.report(kind, text);
        }
    }

    fn report(&mut self, kind: LimitKind, text: String) {
        let count = &mut self.reported[kind as usize];
        if *count >= REPORTS_MAX {
            return;
        }
        *count += 1;
        let hit = LimitHit {
            limit: kind,
            at: (self.start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            text,
        };
        eprintln!("sdss lab-box: {} at t={:.1} s", hit.text, hit.at);
        let line = serde_json::to_string(&hit).unwrap_or_default() + "\n";
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.hits);
        if let Err(error) = file.and_then(|mut f: File| f.write_all(line.as_bytes())) {
            eprintln!(
                "sdss lab-box: cannot record the hit in {}: {error}",
                self.hits.display()
            );
        }
    }
}

/// Files under `dir` of at least `size` bytes, by their path below it; never
/// follows a link nor enters another mount (the folder's is under `/tmp`),
/// and looks at a bounded number of entries.
fn large_files(dir: &OwnedFd, size: u64) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut visited = 0;
    let Ok(device) = nix::sys::stat::fstat(dir.as_fd()).map(|s| s.st_dev) else {
        return found;
    };
    let Ok(top) = nix::unistd::dup(dir.as_fd()) else {
        return found;
    };
    let mut pending = vec![(top, PathBuf::new())];
    while let Some((fd, path)) = pending.pop() {
        let Ok(mut listing) = Dir::from_fd(fd) else {
            continue;
        };
        let names: Vec<_> = listing
            .iter()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        for name in names {
            visited += 1;
            if visited > WALK_MAX {
                return found;
            }
            let Ok(stat) = fstatat(
                listing.as_fd(),
                name.as_c_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) else {
                continue;
            };
            let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
            let shown = path.join(Path::new(std::ffi::OsStr::from_bytes(name.as_bytes())));
            if kind == SFlag::S_IFREG && stat.st_size as u64 >= size {
                found.push(shown);
            } else if kind == SFlag::S_IFDIR && stat.st_dev == device {
                let flags =
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                if let Ok(child) =
                    nix::fcntl::openat(listing.as_fd(), name.as_c_str(), flags, Mode::empty())
                {
                    pending.push((child, shown));
                }
            }
        }
    }
    found
}

/// Whether a group wanted more CPU than its quota: held back for a twentieth
/// of the time it ran, at least. A program spinning one thread at the quota
/// is throttled for a moment now and then, when its other threads add a
/// little (a graded busy loop was in some runs of 24 s, not in others): no
/// limit it hit, and a verdict must not flip with it; a program that wants
/// two CPUs in a box of one is held back about half the time.
fn held_to_quota(counters: &Counters) -> bool {
    counters.throttled_us > 0 && counters.throttled_us * 20 >= counters.periods_us()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_holds_a_program_held_back_a_twentieth_of_the_time_not_now_and_then() {
        let seen = |throttled_ms: u64, periods| Counters {
            throttled_us: throttled_ms * 1000,
            periods,
            ..Counters::default()
        };
        // A one-thread spinner over 24 s: a millisecond now and then.
        assert!(!held_to_quota(&seen(40, 240)));
        assert!(!held_to_quota(&seen(0, 240)));
        // Two threads spinning in a box of one CPU: half the time.
        assert!(held_to_quota(&seen(12_000, 240)));
        assert!(held_to_quota(&seen(1_200, 240)));
    }

    #[test]
    fn large_files_are_found_below_and_links_are_not_followed() {
        let dir = std::env::temp_dir().join(format!("sdss-large-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("small"), b"1234").unwrap();
        std::fs::write(dir.join("a/b/large"), b"123456").unwrap();
        std::os::unix::fs::symlink(dir.join("a/b/large"), dir.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.join("a"), dir.join("dir-link")).unwrap();
        let fd =
            nix::fcntl::open(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        assert_eq!(large_files(&fd, 5), vec![PathBuf::from("a/b/large")]);
        assert_eq!(large_files(&fd, 4).len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
