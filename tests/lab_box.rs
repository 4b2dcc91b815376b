//! The box keeper, `sdss lab-box SPEC`, run as the lab runs it: what a boxed
//! program can see and do, the limits it hits and how they are reported, its
//! death handed on, and nothing of the box left afterwards. Root only, inside
//! `scripts/test.sh`'s private namespaces (its network has only loopback).

mod lab_support;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use lab_support::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sdss::lab::builder::sandbox::cgroup::remove_cgroup;
use sdss::lab::builder::sandbox::identity;
use sdss::lab::builder::sandbox::spec::{BoxSpec, LimitHit, LimitKind};
use sdss::lab::plan::sandbox::Limits;

/// The longest any boxed run here may take.
const LIMIT: Duration = Duration::from_secs(40);

/// One box: a scratch directory with the folder (holding `given.txt`), the
/// spec, the hits file and the keeper's output.
struct Boxed {
    scratch: Scratch,
    spec: BoxSpec,
}

/// How a keeper ended, and what it and its program printed.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Boxed {
    fn new(name: &str, index: usize) -> Boxed {
        let scratch = Scratch::new(&format!("box-{name}"));
        let folder = scratch.0.join("folder");
        fs::create_dir(&folder).unwrap();
        fs::write(folder.join("given.txt"), "given\n").unwrap();
        let spec = BoxSpec {
            node: name.to_owned(),
            argv: Vec::new(),
            env: vec![("LANG".to_owned(), "C.UTF-8".to_owned())],
            folder: folder.clone(),
            cwd: folder,
            visible: Vec::new(),
            user: identity::pick("sdss-boxtest", index, None).unwrap(),
            limits: Limits::default(),
            cgroup: format!("sdss-boxtest-{name}-{}", std::process::id()),
            nice: 0,
            hits: scratch.0.join("hits.jsonl"),
        };
        Boxed { scratch, spec }
    }

    fn folder(&self) -> &Path {
        &self.spec.folder
    }

    /// Starts the keeper on `argv`, its output into files of the scratch directory.
    fn spawn(&self, argv: &[&str]) -> Child {
        let mut spec = self.spec.clone();
        spec.argv = argv.iter().map(|a| a.to_string()).collect();
        let path = self.scratch.0.join("spec.json");
        fs::write(&path, serde_json::to_string(&spec).unwrap()).unwrap();
        let out = fs::File::create(self.scratch.0.join("stdout")).unwrap();
        let err = fs::File::create(self.scratch.0.join("stderr")).unwrap();
        sdss()
            .arg("lab-box")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start sdss lab-box")
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.scratch.0.join("stderr")).unwrap_or_default()
    }

    /// Waits for the keeper (killing it after [`LIMIT`]).
    fn wait(&self, mut child: Child) -> Ran {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the keeper did not end within {LIMIT:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ran {
            status,
            stdout: fs::read_to_string(self.scratch.0.join("stdout")).unwrap_or_default(),
            stderr: self.stderr(),
        }
    }

    fn run(&self, argv: &[&str]) -> Ran {
        let ran = self.wait(self.spawn(argv));
        self.assert_removed();
        ran
    }

    fn hits(&self) -> Vec<LimitHit> {
        LimitHit::parse_all(&fs::read_to_string(&self.spec.hits).unwrap_or_default())
    }

    /// The node's cgroups are gone, in whichever layout the machine has.
    fn assert_removed(&self) {
        let name = &self.spec.cgroup;
        for dir in ["", "memory", "pids", "cpu"] {
            let path = Path::new("/sys/fs/cgroup").join(dir).join(name);
            assert!(!path.exists(), "{} was left behind", path.display());
        }
    }
}

fn sh(script: &str) -> Vec<&str> {
    vec!["sh", "-c", script]
}

#[test]
fn a_boxed_program_is_unprivileged_and_sees_only_its_box() {
    if !sandboxed("a_boxed_program_is_unprivileged_and_sees_only_its_box") {
        return;
    }
    let mut boxed = Boxed::new("sees", 0);
    let sdss = PathBuf::from(env!("CARGO_BIN_EXE_sdss"));
    boxed.spec.visible = vec![sdss.clone()];
    boxed
        .spec
        .env
        .push(("SDSS".to_owned(), sdss.display().to_string()));
    let script = "id -u
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status
if touch /etc/sdss-boxtest 2>/dev/null; then echo etc-writable; else echo etc-refused; fi
if [ -e /root ]; then echo \"root: $(ls -A /root | tr '\\n' ' ')\"; else echo 'root: absent'; fi
[ -e /run/sdss ] && echo run-present || echo run-absent
echo changed > given.txt && echo made > made.txt && cat given.txt made.txt
for p in /proc/[0-9]*; do echo \"proc ${p#/proc/} $(cat $p/comm)\"; done
\"$SDSS\" --version
ls \"$(dirname \"$SDSS\")\"";
    let ran = boxed.run(&sh(script));
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], boxed.spec.user.uid.to_string());
    for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            lines.contains(&format!("{field}:\t0000000000000000").as_str()),
            "{field}: {lines:?}"
        );
    }
    assert!(lines.contains(&"NoNewPrivs:\t1"), "{lines:?}");
    assert!(lines.contains(&"Seccomp:\t2"), "{lines:?}");
    // Of /root, nothing is there but the way to the visible sdss, when it
    // lives there (a checkout under /root).
    let root = match sdss.strip_prefix("/root") {
        Ok(below) => format!(
            "root: {} ",
            below
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
        ),
        Err(_) => "root: absent".to_owned(),
    };
    assert!(lines.contains(&root.as_str()), "no {root:?}: {lines:?}");
    for expected in ["etc-refused", "run-absent", "changed", "made"] {
        assert!(lines.contains(&expected), "no {expected}: {lines:?}");
    }
    assert!(!Path::new("/etc/sdss-boxtest").exists());
    // Its folder was a copy: the original is as it was.
    assert_eq!(
        fs::read_to_string(boxed.folder().join("given.txt")).unwrap(),
        "given\n"
    );
    assert!(!boxed.folder().join("made.txt").exists());
    // Only the box's processes: its init (sdss), the shell and its `cat`s.
    let processes: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("proc "))
        .collect();
    assert!(processes.contains(&"1 sdss"), "{processes:?}");
    for process in &processes {
        let comm = process.split_once(' ').map_or("", |(_, c)| c);
        assert!(["sdss", "sh", "cat"].contains(&comm), "{processes:?}");
    }
    // A visible file is there, alone in its folder.
    assert!(lines.iter().any(|l| l.starts_with("sdss ")), "{lines:?}");
    assert_eq!(lines.last(), Some(&"sdss"), "{lines:?}");
    assert!(boxed.hits().is_empty(), "{:?}", boxed.hits());
}

#[test]
fn exit_codes_and_deaths_by_signal_are_handed_on() {
    if !sandboxed("exit_codes_and_deaths_by_signal_are_handed_on") {
        return;
    }
    let boxed = Boxed::new("exits", 1);
    assert_eq!(boxed.run(&sh("exit 7")).status.code(), Some(7));
    let ran = boxed.run(&sh("kill -SEGV $$"));
    assert_eq!(ran.status.signal(), Some(libc::SIGSEGV), "{}", ran.stderr);
    let ran = boxed.run(&["no-such-program-sdss"]);
    assert_eq!(ran.status.code(), Some(127));
    assert!(
        ran.stderr.contains("cannot start \"no-such-program-sdss\""),
        "{}",
        ran.stderr
    );

    // The lab's SIGTERM reaches the program through the keeper and the init.
    let child = boxed.spawn(&["sleep", "30"]);
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let ran = boxed.wait(child);
    assert_eq!(ran.status.signal(), Some(libc::SIGTERM), "{}", ran.stderr);
    boxed.assert_removed();
}

#[test]
fn a_killed_keeper_takes_its_box_along_and_its_group_is_removed_by_name() {
    if !sandboxed("a_killed_keeper_takes_its_box_along_and_its_group_is_removed_by_name") {
        return;
    }
    let boxed = Boxed::new("killed", 2);
    let mut child = boxed.spawn(&["sleep", "30"]);
    let procs = Path::new("/sys/fs/cgroup/pids")
        .join(&boxed.spec.cgroup)
        .join("cgroup.procs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(&procs)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the box did not start: {}",
            boxed.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    remove_cgroup(&boxed.spec.cgroup).unwrap();
    boxed.assert_removed();
    remove_cgroup(&boxed.spec.cgroup).unwrap(); // a group that is gone is removed
}

#[test]
fn a_box_weighs_as_one_task_at_the_labs_nice_value() {
    if !sandboxed("a_box_weighs_as_one_task_at_the_labs_nice_value") {
        return;
    }
    let mut boxed = Boxed::new("nice", 4);
    boxed.spec.nice = 10;
    let mut child = boxed.spawn(&["sleep", "30"]);
    // The kernel's weight of a task at nice 10 (v1); v2 takes the nice value.
    let (file, want) = if Path::new("/sys/fs/cgroup/cpu").is_dir() {
        ("/sys/fs/cgroup/cpu", "110")
    } else {
        ("/sys/fs/cgroup", "10")
    };
    let group = Path::new(file).join(&boxed.spec.cgroup);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(group.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "no box: {}", boxed.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let weight_file = if want == "110" {
        "cpu.shares"
    } else {
        "cpu.weight.nice"
    };
    let weight = fs::read_to_string(group.join(weight_file)).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    remove_cgroup(&boxed.spec.cgroup).unwrap();
    assert_eq!(weight.trim(), want, "{}", group.display());
}

#[test]
fn the_folder_is_read_as_its_owner_and_links_stay_links() {
    if !sandboxed("the_folder_is_read_as_its_owner_and_links_stay_links") {
        return;
    }
    let boxed = Boxed::new("owner", 7);
    let folder = boxed.folder().to_owned();
    let owner = identity::pick("sdss-boxtest", 8, None).unwrap();
    let chown =
        |path: &Path| std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid)).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", folder.join("shadow")).unwrap();
    chown(&folder);
    chown(&folder.join("given.txt"));
    chown(&folder.join("shadow"));
    let ran = boxed.run(&sh(
        "cat given.txt; readlink shadow; cat shadow || echo shadow-refused",
    ));
    assert_eq!(
        ran.stdout, "given\n/etc/shadow\nshadow-refused\n",
        "{}",
        ran.stderr
    );

    // A file of the folder its owner cannot read is not copied for them.
    let hidden = folder.join("root-only");
    fs::write(&hidden, "root's\n").unwrap();
    fs::set_permissions(&hidden, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let ran = boxed.run(&["cat", "root-only"]);
    assert_eq!(ran.status.code(), Some(125), "{}", ran.stdout);
    assert!(
        ran.stderr.contains("root-only: Permission denied"),
        "{}",
        ran.stderr
    );
}

#[test]
fn memory_and_task_limits_are_hit_and_reported() {
    if !sandboxed("memory_and_task_limits_are_hit_and_reported") {
        return;
    }
    let boxed = Boxed::new("limits", 3);
    let hog = "b = bytearray(4 << 30)\nfor i in range(0, len(b), 4096): b[i] = 1\n";
    let ran = boxed.run(&["python3", "-c", hog]);
    assert_eq!(ran.status.signal(), Some(libc::SIGKILL), "{}", ran.stderr);
    assert!(
        boxed.hits().iter().any(|h| h.limit == LimitKind::Memory),
        "{:?}",
        boxed.hits()
    );
    assert!(
        ran.stderr
            .contains("sdss lab-box: killed by the memory limit of 512 MiB"),
        "{}",
        ran.stderr
    );

    let forks = "import gc, os, signal\ngc.freeze()\nn = 0\ntry:\n    while True:\n        \
                 if os.fork() == 0:\n            signal.pause()\n        n += 1\nexcept OSError:\n    print(n)\n";
    let ran = boxed.run(&["python3", "-c", forks]);
    assert!(ran.status.success(), "{}", ran.stderr);
    let forked: u64 = ran.stdout.trim().parse().unwrap();
    assert!(forked < 256 && forked > 200, "{forked} forks");
    assert!(
        boxed.hits().iter().any(|h| h.limit == LimitKind::Tasks),
        "{:?}",
        boxed.hits()
    );
}

#[test]
fn a_program_that_wants_two_cpus_is_held_to_one_and_reported() {
    if !sandboxed("a_program_that_wants_two_cpus_is_held_to_one_and_reported") {
        return;
    }
    let boxed = Boxed::new("cpu", 8);
    // Two processes spinning for 3 s in a box of one CPU: throttled in
    // nearly every period, which a lone spinner is not.
    let spin = "end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do :; done";
    let script = format!("({spin}) & ({spin}); wait");
    let ran = boxed.run(&["sh", "-c", &script]);
    assert!(ran.status.success(), "{}", ran.stderr);
    let hits = boxed.hits();
    assert!(
        hits.iter()
            .any(|h| h.limit == LimitKind::Cpu && h.text.contains("held to 1 CPU")),
        "{hits:?}"
    );
}

#[test]
fn file_size_disk_and_open_file_limits_are_reported() {
    if !sandboxed("file_size_disk_and_open_file_limits_are_reported") {
        return;
    }
    let boxed = Boxed::new("files", 6);
    // dd does not ignore SIGXFSZ: it dies of it, and so does its keeper.
    let ran = boxed.run(&["dd", "if=/dev/zero", "of=big", "bs=1M", "count=100"]);
    assert_eq!(ran.status.signal(), Some(libc::SIGXFSZ), "{}", ran.stderr);
    let texts: Vec<String> = boxed.hits().into_iter().map(|h| h.text).collect();
    assert!(
        texts.contains(&"killed for writing a file past the size limit of 64 MiB".to_owned()),
        "{texts:?}"
    );
    let big = boxed.folder().join("big");
    let seen = format!("a file reached the size limit of 64 MiB: {}", big.display());
    assert!(texts.contains(&seen), "{texts:?}");
    assert!(!big.exists());

    let ran = boxed.run(&sh(
        "head -c 40M /dev/zero > /tmp/a; head -c 40M /dev/zero > /tmp/b",
    ));
    assert!(
        ran.stderr.contains("No space left on device"),
        "{}",
        ran.stderr
    );
    // Open files are counted twice a second: the program stays at its limit a while.
    let files =
        "import time\nfs = []\ntry:\n    while True:\n        fs.append(open('/dev/null'))\n\
                 except OSError:\n    time.sleep(2)\n";
    let ran = boxed.run(&["python3", "-c", files]);
    assert!(ran.status.success(), "{}", ran.stderr);
    let kinds: Vec<LimitKind> = boxed.hits().iter().map(|h| h.limit).collect();
    assert!(kinds.contains(&LimitKind::Disk), "{kinds:?}");
    assert!(kinds.contains(&LimitKind::Files), "{kinds:?}");
}

#[test]
fn the_hostile_fixture_is_refused_everything() {
    if !sandboxed("the_hostile_fixture_is_refused_everything") {
        return;
    }
    let boxed = Boxed::new("hostile", 4);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grade/hostile.py");
    fs::copy(&fixture, boxed.folder().join("hostile.py")).unwrap();
    let other = Scratch::new("box-other");
    let secret = other.0.join("secret.py");
    fs::write(&secret, "SECRET = 1\n").unwrap();
    let mut outside = Command::new("sleep").arg("60").spawn().unwrap();

    let script = boxed.folder().join("hostile.py");
    let argv = [
        "python3",
        script.to_str().unwrap(),
        "sdss-boxtest",
        secret.to_str().unwrap(),
        &outside.id().to_string(),
    ];
    let child = boxed.spawn(&argv);
    let deadline = Instant::now() + LIMIT;
    while !boxed.stderr().contains("hostile: done") {
        assert!(
            Instant::now() < deadline,
            "hostile.py did not finish:\n{}",
            boxed.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let ran = boxed.wait(child);
    boxed.assert_removed();
    eprintln!("{}", ran.stderr);

    let attempts: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("hostile: "))
        .collect();
    assert_eq!(attempts.last(), Some(&"hostile: done"), "{attempts:?}");
    assert_eq!(attempts.len(), 13, "{attempts:?}");
    for line in &attempts[..12] {
        assert!(line.contains(": refused ("), "{line}");
    }
    assert!(!ran.stderr.contains("SUCCEEDED"));
    let said = |attempt: &str| {
        let prefix = format!("hostile: {attempt}: refused (");
        attempts
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(said("unshare a user namespace").contains("Operation not permitted"));
    let forks = said("fork 10000 processes");
    assert!(
        forks.starts_with("after 2"),
        "the task limit stops the forks: {forks}"
    );
    assert!(said("allocate 4 GiB").contains("SIGKILL"), "{attempts:?}");
    assert!(
        said("write a 2 GiB file").contains("File too large after 64 MiB"),
        "{attempts:?}"
    );
    assert_eq!(ran.status.signal(), Some(libc::SIGTERM));

    assert!(
        outside.try_wait().unwrap().is_none(),
        "the outside process was killed"
    );
    let _ = outside.kill();
    let _ = outside.wait();
    assert_eq!(fs::read_to_string(&secret).unwrap(), "SECRET = 1\n");
    assert!(!Path::new("/etc/owned").exists() && !Path::new("/root/owned").exists());
    let left: Vec<_> = fs::read_dir(boxed.folder())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "the original folder changed: {left:?}");
    let kinds: Vec<LimitKind> = boxed.hits().iter().map(|h| h.limit).collect();
    for kind in [LimitKind::Memory, LimitKind::Tasks] {
        assert!(kinds.contains(&kind), "no {kind:?} hit: {kinds:?}");
    }
    assert!(
        kinds.contains(&LimitKind::FileSize) || kinds.contains(&LimitKind::Disk),
        "no file size or disk hit: {kinds:?}"
    );
}

/// Writes `file` into the box's folder.
fn put(boxed: &Boxed, file: &str, text: &str) -> PathBuf {
    let path = boxed.folder().join(file);
    fs::write(&path, text).unwrap();
    path
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("no {tool} here: that part is skipped");
    }
    found
}

#[test]
fn real_programs_run_under_the_filter() {
    if !sandboxed("real_programs_run_under_the_filter") {
        return;
    }
    let boxed = Boxed::new("real", 5);
    put(&boxed, "threads.py", PYTHON);
    let ran = boxed.run(&["python3", "threads.py"]);
    assert_eq!(ran.stdout.trim(), "python ok", "{}", ran.stderr);

    if have("gcc") {
        let source = put(&boxed, "prog.c", C_PROGRAM);
        let binary = boxed.folder().join("prog");
        let built = Command::new("gcc")
            .args(["-O1", "-pthread", "-o"])
            .arg(&binary)
            .arg(&source)
            .status()
            .unwrap();
        assert!(built.success());
        let ran = boxed.run(&[binary.to_str().unwrap()]);
        assert_eq!(ran.stdout.trim(), "c ok", "{}", ran.stderr);
    }

    if have("java") && have("javac") {
        let ran = boxed.run(&["java", "-version"]);
        assert!(
            ran.status.success() && ran.stderr.contains("version"),
            "{}",
            ran.stderr
        );
        let source = put(&boxed, "Threads.java", JAVA);
        let built = Command::new("javac")
            .arg("-d")
            .arg(boxed.folder())
            .arg(&source)
            .status()
            .unwrap();
        assert!(built.success());
        let ran = boxed.run(&["java", "-cp", boxed.folder().to_str().unwrap(), "Threads"]);
        assert_eq!(ran.stdout.trim(), "java ok", "{}", ran.stderr);
    }
    assert!(
        boxed.hits().iter().all(|h| h.limit == LimitKind::Cpu),
        "{:?}",
        boxed.hits()
    );
}

const PYTHON: &str = r#"
import socket, threading
server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
def serve():
    connection, _ = server.accept()
    connection.sendall(connection.recv(16).upper())
    connection.close()
thread = threading.Thread(target=serve)
thread.start()
with socket.create_connection(("127.0.0.1", port)) as client:
    client.sendall(b"ping")
    assert client.recv(16) == b"PING"
thread.join()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
udp.sendto(b"x", udp.getsockname())
assert udp.recv(1) == b"x"
print("python ok")
"#;

const C_PROGRAM: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void *work(void *arg) { *(int *)arg = 42; return NULL; }

int main(void) {
    int value = 0, pair[2];
    pthread_t thread;
    if (pthread_create(&thread, NULL, work, &value) || pthread_join(thread, NULL) || value != 42) return 1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair)) return 2;
    pid_t pid = fork();
    if (pid == 0) { write(pair[1], "hi", 2); _exit(0); }
    char buffer[2];
    int status;
    if (pid < 0 || read(pair[0], buffer, 2) != 2 || waitpid(pid, &status, 0) != pid || status) return 3;
    puts("c ok");
    return 0;
}
"#;

const JAVA: &str = r#"
public class Threads {
    public static void main(String[] args) throws Exception {
        java.util.concurrent.atomic.AtomicInteger count = new java.util.concurrent.atomic.AtomicInteger();
        Thread[] threads = new Thread[8];
        for (int i = 0; i < threads.length; i++) {
            threads[i] = new Thread(count::incrementAndGet);
            threads[i].start();
        }
        for (Thread thread : threads) thread.join();
        try (java.net.ServerSocket server = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            if (count.get() == 8 && server.getLocalPort() > 0) System.out.println("java ok");
        }
    }
}
"#;
