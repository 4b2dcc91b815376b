//! Helpers shared by the lab integration tests: run the built `sdss`, write lab
//! files, and check that nothing of a lab is left.
//!
//! Every test that touches the kernel runs only inside `scripts/test.sh`'s
//! private network and mount namespace (recognised by its tmpfs on /run/netns),
//! and as root; otherwise it prints why and skips.
#![allow(dead_code)]

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The sdss binary under test.
pub fn sdss() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sdss"))
}

/// Whether kernel-touching tests may run here; prints the reason when not.
/// Under CI (`SDSS_REQUIRE_ROOT_TESTS`) a skip is a failure: it would hide a test.
pub fn sandboxed(test: &str) -> bool {
    let skip = |why: &str| {
        assert!(
            std::env::var_os("SDSS_REQUIRE_ROOT_TESTS").is_none(),
            "{test} {why} and SDSS_REQUIRE_ROOT_TESTS is set"
        );
        eprintln!("skipping {test}: {why}");
        false
    };
    if !nix::unistd::geteuid().is_root() {
        return skip("needs root (run scripts/test.sh as root)");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let isolated = mounts
        .lines()
        .any(|l| l.contains(" /run/netns ") && l.contains("sdss-test-netns"));
    if !isolated {
        return skip("must run inside scripts/test.sh's private namespaces");
    }
    true
}

/// One lab at a time among a binary's tests that measure time closely: two
/// cores shared by several labs' emulators and nodes made frames late
/// enough to fail a pair (+0.6 ms against 0.56 over hosts; a probed p90
/// past 5% with a second lab beside it).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`ONE_AT_A_TIME`], held, when `test` may run here ([`sandboxed`] says
/// why not otherwise).
pub fn one_at_a_time(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    sandboxed(test).then(|| {
        ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    })
}

/// A lab name unique to this test run.
pub fn unique(stem: &str) -> String {
    format!("{stem}{}", std::process::id())
}

/// A scratch directory for lab files, removed by the caller.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory, its own even when tests of one process ask for the
    /// same name at once (a counter beside the process ID).
    pub fn new(name: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sdss-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes a lab file.
    pub fn lab(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of the sdss binary that every user can run, for tests that drop root.
/// The checkout, and so the binary cargo built, may sit where other users
/// cannot enter (a clone under /root, mode 700), and so may `$TMPDIR`; the copy
/// goes into a fresh directory (made by this call alone, mode 0755) under the
/// first temp folder that every user can enter, and is removed on drop.
pub struct PublicSdss {
    dir: PathBuf,
}

impl PublicSdss {
    /// Copies the binary under test.
    pub fn new() -> PublicSdss {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let base = [std::env::temp_dir(), PathBuf::from("/tmp")]
            .into_iter()
            .find(|dir| enterable_by_all(dir))
            .expect("no temp folder that every user can enter, not even /tmp");
        let dir = base.join(format!(
            "sdss-test-public-{}",
            uuid::Uuid::new_v4().simple()
        ));
        // `create`, not `create_dir_all`: a name someone else made is an error, not ours.
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let public = PublicSdss { dir };
        let exe = public.exe();
        std::fs::copy(env!("CARGO_BIN_EXE_sdss"), &exe).unwrap();
        // Modes set after the fact: the umask may have narrowed them.
        for path in [&public.dir, &exe] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        public
    }

    /// The copy.
    pub fn exe(&self) -> PathBuf {
        self.dir.join("sdss")
    }

    /// A command that runs the copy, from its own directory.
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.exe());
        command.current_dir(&self.dir);
        command
    }

    /// Runs `command` (from [`PublicSdss::command`]) to its end. The copy was
    /// just written, and a child another test thread forked meanwhile holds
    /// the write descriptor until it execs: until then the kernel refuses to
    /// run the copy ("Text file busy", seen once in a hunt round). That
    /// passes within milliseconds, so a busy copy is tried again, for at
    /// most 5 s.
    pub fn output(&self, command: &mut Command) -> std::process::Output {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match command.output() {
                Err(e)
                    if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => {
                    return other
                        .unwrap_or_else(|e| panic!("running {}: {e}", self.exe().display()))
                }
            }
        }
    }
}

impl Drop for PublicSdss {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether every user can reach what is inside `dir`: it and each folder above
/// it let others through (the execute bit for others).
fn enterable_by_all(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    dir.ancestors().all(|d| {
        std::fs::metadata(d).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 != 0)
    })
}

/// Runs sdss with arguments and returns its output.
pub fn run(args: &[&str]) -> Output {
    sdss().args(args).output().expect("running sdss")
}

/// Output as text, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Namespaces under /run/netns whose name starts with `prefix`.
pub fn namespaces(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// PIDs of processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(marker)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Asserts that nothing of lab `lab` is left: namespaces, state, processes with `marker`.
pub fn assert_clean(lab: &str, marker: Option<&str>) {
    let prefix = format!("sdss-{lab}");
    let left: Vec<String> = namespaces(&prefix)
        .into_iter()
        .filter(|n| *n == prefix || n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let state = Path::new("/run/sdss/labs").join(lab);
    assert!(!state.exists(), "state left behind: {}", state.display());
    // The boxes' cgroups, v1 controllers and v2 alike.
    for controller in ["", "memory", "pids", "cpu"] {
        let dir = Path::new("/sys/fs/cgroup").join(controller);
        let left: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| *n == prefix || n.starts_with(&format!("{prefix}-")))
            .collect();
        assert!(
            left.is_empty(),
            "cgroups left behind in {}: {left:?}",
            dir.display()
        );
    }
    if let Some(marker) = marker {
        // Killed processes may take a moment to be reaped by init, and a
        // loaded machine a few.
        for _ in 0..500 {
            if processes_with(marker).is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("processes left behind: {:?}", processes_with(marker));
    }
}

/// What only the emulator of lab `lab` has in its command line (its spec under
/// the lab's state): other labs' emulators, other runs' included, may be up.
pub fn emulator_of(lab: &str) -> String {
    format!("/labs/{lab}/lab-emulator.")
}

/// A shipped lab file (`labs/FILE`) under a name unique to this run.
pub fn shipped(scratch: &Scratch, file: &str, lab: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("labs")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let name_line = text
        .lines()
        .find(|l| l.starts_with("name = "))
        .unwrap_or_else(|| panic!("{} has no name line", path.display()));
    scratch.lab(
        file,
        &text.replacen(name_line, &format!("name = \"{lab}\""), 1),
    )
}

/// `sdss lab run --json --delay-backend emulator FILE EXTRA...` and its report.
pub fn run_on_emulator(file: &Path, extra: &[&str]) -> (Output, sdss::lab::report::Report) {
    let mut args = vec![
        "lab",
        "run",
        "--json",
        "--delay-backend",
        "emulator",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = run(&args);
    let report =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    (output, report)
}

/// Guards a test's tolerance: the shortest link a graded pair carries must be
/// at least twice the tolerance, so that a link that lost its delay (or a pair
/// given the wrong one) stays outside the tolerance whatever the machine adds.
pub fn wrong_link_still_fails(shortest_link_ms: f64, tolerance_ms: f64) {
    assert!(
        shortest_link_ms >= 2.0 * tolerance_ms,
        "a tolerance of {tolerance_ms} ms would let a lost {shortest_link_ms} ms link pass"
    );
}
