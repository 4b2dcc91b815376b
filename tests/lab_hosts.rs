//! Labs over several hosts, on one machine: each "host" is a network
//! namespace (its underlay address on a bridge between them) with a mount
//! namespace of its own (its own /run/netns and /run/sdss), and the
//! remote-exec command is a local one that enters it. A lab spread over three
//! of them comes up on the emulator, every ordered pair (same-host and
//! cross-host) is measured and verified, a host that stops answering is
//! reported, and `down` leaves nothing on any host.

mod lab_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lab_support::{one_at_a_time, text, unique, wrong_link_still_fails, Scratch};
use sdss::lab::report::Report;

/// Simulated hosts: namespaces held open by a process each, joined by a bridge.
struct Hosts {
    holders: Vec<Child>,
    bridge: String,
    veths: Vec<String>,
    lab: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {args:?} failed");
}

impl Hosts {
    /// `count` hosts with underlay addresses 10.77.0.1, .2, ...
    fn new(count: usize, lab: &str) -> Hosts {
        // Tests run in parallel: each set of hosts gets its own bridge and veths.
        static SETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let set = SETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}x{set}", std::process::id() % 10_000);
        let bridge = format!("ul{tag}");
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["link", "set", &bridge, "up"]);
        let mut hosts = Hosts {
            holders: Vec::new(),
            bridge,
            veths: Vec::new(),
            lab: lab.to_owned(),
        };
        for i in 1..=count {
            // Its own network and mount namespaces, with fresh /run/netns and /run/sdss.
            let mut holder = Command::new("unshare")
                .args([
                    "--net",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-c",
                ])
                .arg(
                    "mkdir -p /run/netns /run/sdss && \
                     mount -t tmpfs -o mode=0755 host-netns /run/netns && \
                     mount -t tmpfs -o mode=0700 host-state /run/sdss && \
                     ip link set lo up && echo ready && exec sleep 100000",
                )
                .stdout(Stdio::piped())
                .spawn()
                .expect("unshare");
            let mut ready = String::new();
            BufReader::new(holder.stdout.take().expect("stdout"))
                .read_line(&mut ready)
                .expect("holder");
            assert_eq!(ready.trim(), "ready");
            let pid = holder.id().to_string();
            let veth = format!("ul{tag}h{i}");
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &pid,
            ]);
            ip(&["link", "set", &veth, "master", &hosts.bridge, "up"]);
            let inside = |args: &[&str]| {
                let status = Command::new("nsenter")
                    .args(["--target", &pid, "--net", "--", "ip"])
                    .args(args)
                    .status()
                    .expect("nsenter");
                assert!(status.success(), "ip {args:?} in host {i}");
            };
            inside(&["addr", "add", &format!("10.77.0.{i}/24"), "dev", "eth0"]);
            inside(&["link", "set", "eth0", "up"]);
            hosts.veths.push(veth);
            hosts.holders.push(holder);
        }
        hosts
    }

    fn pid(&self, host: usize) -> u32 {
        self.holders[host].id()
    }

    /// `ip netns list` on a host.
    fn namespaces(&self, host: usize) -> Vec<String> {
        let out = Command::new("nsenter")
            .args([
                "--target",
                &self.pid(host).to_string(),
                "--net",
                "--mount",
                "--",
                "ip",
                "netns",
                "list",
            ])
            .output()
            .expect("nsenter");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The lab file's `[[host]]` tables: `ssh` is the holder's PID, which the
    /// remote-exec command below enters.
    fn tables(&self) -> Vec<String> {
        (0..self.holders.len())
            .map(|i| {
                format!(
                    "[[host]]\nname = \"h{}\"\nssh = \"{}\"\nunderlay = \"10.77.0.{}\"\n",
                    i + 1,
                    self.pid(i),
                    i + 1
                )
            })
            .collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // A failed test still leaves nothing: each host's share is taken down
        // there, and whatever still runs in a host's mount namespace (agents,
        // nodes, emulators: everything the lab started there) is killed before
        // the host goes: its namespaces die with it, processes would not.
        for holder in &self.holders {
            let down = Command::new("nsenter")
                .args([
                    "--target",
                    &holder.id().to_string(),
                    "--net",
                    "--mount",
                    "--",
                ])
                .arg(exe())
                .args(["lab", "down", &self.lab])
                .output();
            if let Some(down) = down.ok().filter(|d| !d.status.success()) {
                eprintln!("lab down on host {}: {}", holder.id(), text(&down));
            }
            for pid in sharing_mounts_with(holder.id()) {
                eprintln!("killing {pid}, left running on host {}", holder.id());
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for holder in &mut self.holders {
            let _ = holder.kill();
            let _ = holder.wait();
        }
        for veth in &self.veths {
            let _ = Command::new("ip").args(["link", "del", veth]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// Processes other than `holder` in `holder`'s mount namespace.
fn sharing_mounts_with(holder: u32) -> Vec<i32> {
    let mounts = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let Some(host) = mounts(&holder.to_string()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != holder as i32 && mounts(&pid.to_string()) == Some(host.clone()))
        .collect()
}

/// The sdss that coordinates, serves as agent and runs the nodes: this
/// build's, or `SDSS_TEST_SDSS` (the VM runs the release build: under
/// software emulation a debug node adds 2-4 ms to what it measures).
fn exe() -> PathBuf {
    std::env::var_os("SDSS_TEST_SDSS")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sdss")), PathBuf::from)
}

/// A remote-exec script that enters the host, unless the test declared it dead.
fn reach_script(scratch: &Scratch) -> PathBuf {
    let path = scratch.0.join("reach.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ -e \"{dir}/dead-$1\" ]; then echo \"ssh: connect to host $1 port 22: Connection refused\" >&2; exit 255; fi\nexec nsenter --target \"$1\" --net --mount -- {sdss} lab agent\n",
            dir = scratch.0.display(),
            sdss = exe().display(),
        ),
    )
    .expect("write script");
    path
}

fn lab(args: &[&str], reach: &Path) -> std::process::Output {
    Command::new(exe())
        .arg("lab")
        .args(args)
        .args(["--remote-exec", &format!("sh {} {{ssh}}", reach.display())])
        .output()
        .expect("sdss lab")
}

/// What [`three_hosts_up`] makes.
struct Spread<'a> {
    per_host: usize,
    backend: &'a str,
    backends: [Option<&'a str>; 3],
    delayed: bool,
    interval: &'a str,
    /// The lab's tolerance, ms.
    tolerance: f64,
    /// The nodes' links when delayed, ms: most have the first, every fourth
    /// the second.
    links: (f64, f64),
    /// Samples per pair the grade takes its median of; the lab's default
    /// when `None`.
    samples: Option<u32>,
    timeline: &'a str,
}

impl Default for Spread<'_> {
    fn default() -> Self {
        Spread {
            per_host: 2,
            backend: "emulator",
            backends: [None; 3],
            delayed: true,
            interval: "250ms",
            // Three emulators (real-time threads) and up to twelve debug-build
            // nodes share two cores: a CI run at 0.5 ms had a pair 0.98 ms
            // off, another at 1 ms three pairs 0.8-1.1 ms off, and a hunt
            // round at 2 ms (one core kept busy, a slow spell: the report
            // test's browser timed out beside it) one cross-host pair 2.5 ms
            // and another 2.8 ms off. A link that lost its delay is 8 ms off,
            // twice the tolerance.
            tolerance: 4.0,
            // A pair expects 16, 24 or 32 ms.
            links: (8.0, 16.0),
            samples: None,
            timeline: "",
        }
    }
}

/// A lab of `per_host` nodes on each of three hosts (`backends`: each host's
/// own `backend`, if any; links of `links` when `delayed`), brought up with
/// `--delay-backend backend`; checks the report and each host's namespaces,
/// and returns what the test needs to go on.
fn three_hosts_up(name: &str, spread: Spread<'_>) -> (Hosts, Scratch, PathBuf, Report) {
    let Spread {
        per_host,
        backend,
        backends,
        delayed,
        interval,
        tolerance,
        links,
        samples,
        timeline,
    } = spread;
    if delayed {
        wrong_link_still_fails(links.0, tolerance);
    }
    let hosts = Hosts::new(3, name);
    let scratch = Scratch::new(name);
    let reach = reach_script(&scratch);
    let mut file = format!(
        "name = \"{name}\"\n[defaults]\ninterval = \"{interval}\"\n{}[verify]\ntolerance = \"{tolerance}ms\"\n{}",
        if delayed {
            format!("delay = \"{}ms\"\n", links.0)
        } else {
            String::new()
        },
        samples.map_or(String::new(), |n| format!("samples = {n}\n")),
    );
    for (i, table) in hosts.tables().iter().enumerate() {
        file.push_str(table);
        if let Some(own) = backends[i] {
            file.push_str(&format!("backend = \"{own}\"\n"));
        }
    }
    let nodes = 3 * per_host;
    for i in 1..=nodes {
        let delay = if delayed && i % 4 == 0 {
            format!("\ndelay = \"{}ms\"", links.1)
        } else {
            String::new()
        };
        file.push_str(&format!("[[node]]\nname = \"n{i}\"{delay}\n"));
    }
    file.push_str(timeline);
    let file = scratch.lab("hosts.toml", &file);
    let up = lab(
        &[
            "up",
            "--json",
            "--delay-backend",
            backend,
            file.to_str().unwrap(),
        ],
        &reach,
    );
    let report: Report =
        serde_json::from_slice(&up.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&up)));
    let shown = format!(
        "status {:?}\n{}\n{}",
        up.status.code(),
        String::from_utf8_lossy(&up.stderr),
        report.render()
    );
    eprintln!("{shown}");
    keep(name, &report.render());
    let spread = report.hosts.clone().expect("a hosts part");
    let pairs = nodes * (nodes - 1);
    assert_eq!(up.status.code(), Some(0), "{shown}");
    assert_eq!(report.summary.pairs, pairs, "{shown}");
    assert_eq!(report.summary.passed, pairs, "{shown}");
    assert_eq!(
        spread.cross_pairs.len(),
        pairs - 3 * per_host * (per_host - 1)
    );
    assert_eq!(spread.underlay.len(), 6, "every ordered host pair measured");
    assert!(spread
        .placement
        .iter()
        .all(|(_, nodes)| nodes.len() == per_host));
    for host in 0..3 {
        assert_eq!(
            hosts.namespaces(host).len(),
            per_host + 1,
            "its nodes and the switch on host {host}"
        );
    }
    (hosts, scratch, reach, report)
}

/// Appends `text` to `$SDSS_TEST_REPORTS/NAME.txt` when that is set: how
/// scripts/vm-netem.sh shows what a lab in the VM reported, passing or not.
fn keep(name: &str, text: &str) {
    if let Some(dir) = std::env::var_os("SDSS_TEST_REPORTS") {
        use std::io::Write;
        let path = Path::new(&dir).join(format!("{name}.txt"));
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{text}");
        }
    }
}

/// `down`, then nothing is left on any host, nor here.
fn down_leaves_nothing(name: &str, hosts: &Hosts, reach: &Path) {
    let down = lab(&["down", name], reach);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    eprintln!("{}", String::from_utf8_lossy(&down.stderr));
    for host in 0..3 {
        let left = hosts.namespaces(host);
        assert!(left.is_empty(), "host {host}: {left:?}");
        let line = format!("after down, ip netns list on host h{}: {left:?}", host + 1);
        eprintln!("{line}");
        keep(name, &line);
    }
    assert!(!Path::new("/run/sdss/labs").join(name).exists());
}

#[test]
fn a_lab_over_three_hosts_verifies_every_pair_and_leaves_nothing_on_any() {
    let Some(_one) =
        one_at_a_time("a_lab_over_three_hosts_verifies_every_pair_and_leaves_nothing_on_any")
    else {
        return;
    };
    let name = unique("hosts");
    // Twelve nodes: a 500 ms interval halves what they load the cores with.
    let (hosts, scratch, reach, _) = three_hosts_up(
        &name,
        Spread {
            per_host: 4,
            interval: "500ms",
            ..Spread::default()
        },
    );
    let status = lab(&["status", "--json", &name], &reach);
    let listed: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status");
    assert_eq!(listed[0]["phase"], "running", "{}", text(&status));
    assert_eq!(listed[0]["nodes_running"], 12, "{}", text(&status));
    // What needs the nodes' namespaces here says where to run it instead.
    let exec = lab(&["exec", &name, "n2", "--", "true"], &reach);
    assert_eq!(exec.status.code(), Some(2), "{}", text(&exec));
    assert!(
        text(&exec).contains("node n2 lives on host h2"),
        "{}",
        text(&exec)
    );

    // Host 3 stops answering: verify reports it, its pairs fail with the reason.
    std::fs::write(scratch.0.join(format!("dead-{}", hosts.pid(2))), "").expect("marker");
    let verify = lab(&["verify", "--json", &name], &reach);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    let report: Report = serde_json::from_slice(&verify.stdout).expect("report");
    let lost = &report.hosts.as_ref().expect("hosts").lost;
    assert!(
        lost.len() == 1
            && lost[0].starts_with("host h3:")
            && lost[0].contains("Connection refused"),
        "{lost:?}"
    );
    let status = lab(&["status", "--json", &name], &reach);
    let listed: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status");
    assert_eq!(listed[0]["phase"], "degraded", "{}", text(&status));
    assert_eq!(listed[0]["nodes_running"], 8, "{}", text(&status));
    // `down` reaches the others, retries h3, reports it, and keeps the lab's state.
    let down = lab(&["down", &name], &reach);
    assert_eq!(down.status.code(), Some(2), "{}", text(&down));
    assert!(
        text(&down).contains("host h3: unreachable"),
        "{}",
        text(&down)
    );
    assert!(text(&down).contains("attempt 3 of 3"), "{}", text(&down));
    assert!(hosts.namespaces(0).is_empty() && hosts.namespaces(1).is_empty());
    assert_eq!(hosts.namespaces(2).len(), 5);
    // Back again: `down` finishes the job.
    std::fs::remove_file(scratch.0.join(format!("dead-{}", hosts.pid(2)))).expect("marker");
    down_leaves_nothing(&name, &hosts, &reach);
    let _ = std::fs::remove_dir_all(&scratch.0);
}

#[test]
fn a_timeline_kills_and_restarts_a_node_on_its_host() {
    let Some(_one) = one_at_a_time("a_timeline_kills_and_restarts_a_node_on_its_host") else {
        return;
    };
    let name = unique("hostsfail");
    // n5 lives on h2: the coordinator has h2's agent kill it, then start it
    // again; every other node, on every host, must notice both.
    let timeline = "[[event]]\nname = \"crash\"\nat = \"10s\"\naction = \"kill\"\nnode = \"n5\"\n\
        [[event]]\nname = \"back\"\nat = \"18s\"\naction = \"start\"\nnode = \"n5\"\n\
        [[expect]]\nwhat = \"removed\"\nnode = \"n5\"\nafter = \"crash\"\nwithin = \"6s\"\n\
        [[expect]]\nwhat = \"discovered\"\nnode = \"n5\"\nafter = \"back\"\nwithin = \"4s\"\n";
    let (hosts, scratch, reach, report) = three_hosts_up(
        &name,
        Spread {
            timeline,
            ..Spread::default()
        },
    );
    let timeline = report.timeline.as_ref().expect("the timeline judged");
    assert!(timeline.ok(), "{}", report.render());
    assert_eq!(timeline.played.len(), 2);
    assert!(
        timeline.played.iter().all(|p| p.error.is_none()),
        "{:?}",
        timeline.played
    );
    assert_eq!(timeline.expects.len(), 2);
    down_leaves_nothing(&name, &hosts, &reach);
    let _ = std::fs::remove_dir_all(&scratch.0);
}

// This machine's kernel has VXLAN (built in) but no netem: kernel VXLAN
// devices join the hosts natively with the `none` backend.

#[test]
fn three_hosts_at_zero_delay_are_joined_by_kernel_vxlan_devices() {
    let Some(_one) = one_at_a_time("three_hosts_at_zero_delay_are_joined_by_kernel_vxlan_devices")
    else {
        return;
    };
    let name = unique("vxnone");
    let (hosts, scratch, reach, report) = three_hosts_up(
        &name,
        Spread {
            backend: "none",
            ..Spread::default()
        },
    );
    assert_eq!(report.backend, sdss::lab::plan::backend::BackendKind::None);
    let note = report.backend_note.unwrap_or_default();
    assert!(note.contains("not injected"), "{note}");
    down_leaves_nothing(&name, &hosts, &reach);
    let _ = std::fs::remove_dir_all(&scratch.0);
}

#[test]
fn an_emulator_host_speaks_vxlan_with_kernel_devices_on_the_others() {
    let Some(_one) =
        one_at_a_time("an_emulator_host_speaks_vxlan_with_kernel_devices_on_the_others")
    else {
        return;
    };
    let name = unique("vxmix");
    // No delays: `auto` settles on `none` (a bridge and a VXLAN device) on
    // h2 and h3, while h1's own backend is the emulator and its uplink.
    let (hosts, scratch, reach, report) = three_hosts_up(
        &name,
        Spread {
            backend: "auto",
            backends: [Some("emulator"), None, None],
            delayed: false,
            ..Spread::default()
        },
    );
    let note = report.backend_note.unwrap_or_default();
    assert!(
        note.contains("emulator on h1, none on h2, none on h3"),
        "{note}"
    );
    down_leaves_nothing(&name, &hosts, &reach);
    let _ = std::fs::remove_dir_all(&scratch.0);
}

// In a VM (scripts/vm-netem.sh): this machine's kernel has no netem. Under
// its software emulation a zero-delay lab measures 0.2-1.1 ms and single
// runs have 1-3 ms outliers (scripts/vm-netem.sh), hence a tolerance of 3 ms
// there. An emulator host beside netem hosts is not tested there: the
// emulator under software emulation was 3.6 ms late once; how an emulator
// host and kernel VXLAN hosts share a lab is tested here, natively, above.

#[test]
#[ignore = "needs a kernel with netem: scripts/vm-netem.sh runs it in a VM"]
fn a_lab_over_three_hosts_on_netem_is_joined_by_kernel_vxlan() {
    let Some(_one) = one_at_a_time("a_lab_over_three_hosts_on_netem_is_joined_by_kernel_vxlan")
    else {
        return;
    };
    let name = unique("vxhosts");
    let (hosts, scratch, reach, report) = three_hosts_up(
        &name,
        Spread {
            backend: "netem",
            // The VM's own floor (TCG, three hosts, six nodes on two
            // emulated CPUs) is all above the links, and grows with the
            // host's load: a same-host pair 3.45 ms over in one fresh-clone
            // CI run, 4.9 and 6.0 ms in another, 8.1 ms (a median of 5) in a
            // third, and, with the host 27% CPU-pressured by builds beside
            // it, pairs 10.7, 11.6 and 15.7 ms over on a median of 15. This
            // test is about kernel VXLAN and netem across hosts, not
            // precision (the emulator's variant above is held to 4 ms).
            tolerance: 20.0,
            samples: Some(15),
            // Twice the tolerance: a lost link still fails.
            links: (40.0, 80.0),
            ..Spread::default()
        },
    );
    assert_eq!(report.backend, sdss::lab::plan::backend::BackendKind::Netem);
    down_leaves_nothing(&name, &hosts, &reach);
    let _ = std::fs::remove_dir_all(&scratch.0);
}

/// Brings up `body` (nodes, events, expectations) over three hosts with
/// `--delay-backend backend`; returns the report, shown and kept, and the
/// command's exit code.
fn hosts_lab_up(
    name: &str,
    hosts: &Hosts,
    scratch: &Scratch,
    reach: &Path,
    backend: &str,
    head: &str,
    body: &str,
) -> (Option<i32>, Report) {
    let mut file = format!("name = \"{name}\"\n{head}");
    for table in hosts.tables() {
        file.push_str(&table);
    }
    file.push_str(body);
    let file = scratch.lab("hosts.toml", &file);
    let up = lab(
        &[
            "up",
            "--json",
            "--delay-backend",
            backend,
            file.to_str().unwrap(),
        ],
        reach,
    );
    let report: Report =
        serde_json::from_slice(&up.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&up)));
    eprintln!(
        "status {:?}\n{}\n{}",
        up.status.code(),
        String::from_utf8_lossy(&up.stderr),
        report.render()
    );
    keep(name, &report.render());
    (up.status.code(), report)
}

#[test]
fn a_graded_node_on_the_second_host_is_graded_with_its_probe_beside_it() {
    let Some(_one) =
        one_at_a_time("a_graded_node_on_the_second_host_is_graded_with_its_probe_beside_it")
    else {
        return;
    };
    let name = unique("hostsgrade");
    let hosts = Hosts::new(3, &name);
    let scratch = Scratch::new(&name);
    let reach = reach_script(&scratch);
    let correct = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grade/correct.py");
    // The killed observer lives on h1; the student, and so the probe, on h2.
    let body = format!(
        "[grade]\nduration = \"24s\"\nkill = \"n1\"\n\
         [[node]]\nname = \"n1\"\nhost = \"h1\"\n[[node]]\nname = \"n2\"\nhost = \"h3\"\n\
         [[node]]\nname = \"n3\"\nhost = \"h3\"\n\
         [[node]]\nname = \"student\"\nhost = \"h2\"\ncommand = [\"python3\", \"{correct}\", \"{{lab}}\"]\ngrade = true\n"
    );
    let head = "[defaults]\nrefresh_every = 2\n[verify]\nsamples = 2\nwarmup = 1\n";
    let (code, report) = hosts_lab_up(&name, &hosts, &scratch, &reach, "emulator", head, &body);
    assert_eq!(report.grading.len(), 1, "{}", report.render());
    let list = &report.grading[0];
    assert_eq!(list.node, "student");
    assert!(list.ok(), "{}", list.render());
    let limits = &list
        .check("process.limits")
        .expect("limits checked")
        .evidence;
    assert!(limits.contains("confined"), "{limits}");
    assert_eq!(code, Some(0), "{}", report.render());
    // The probe's namespace was built on the student's host.
    let probe = format!("sdss-{name}-grader");
    assert!(
        hosts.namespaces(1).contains(&probe),
        "{:?}",
        hosts.namespaces(1)
    );
    down_leaves_nothing(&name, &hosts, &reach);
    let _ = std::fs::remove_dir_all(&scratch.0);
}

#[test]
fn link_events_and_a_pair_play_across_three_hosts_and_their_expectations_hold() {
    let test = "link_events_and_a_pair_play_across_three_hosts_and_their_expectations_hold";
    // Tolerance as in three_hosts_up.
    link_events_across_three_hosts(test, "emulator", 8.0, 4.0);
}

#[test]
#[ignore = "needs a kernel with netem: scripts/vm-netem.sh runs it in a VM"]
fn link_events_and_a_pair_play_across_three_hosts_on_netem() {
    let test = "link_events_and_a_pair_play_across_three_hosts_on_netem";
    // The VM's floor, as in a_lab_over_three_hosts_on_netem_is_joined_by_kernel_vxlan.
    link_events_across_three_hosts(test, "netem", 16.0, 7.0);
}

/// Six nodes over three hosts on `backend`, every link `link` ms: a `set`
/// of a node's link on h1, a cut and heal of a node on h2, a partition whose
/// groups span every host and a `[[pair]]` from h1 to h3, each expectation
/// held within `tolerance` ms. Every changed delay moves by twice the link,
/// four times the tolerance or more, so a change applied on the wrong host fails.
fn link_events_across_three_hosts(test: &str, backend: &str, link: f64, tolerance: f64) {
    let Some(_one) = one_at_a_time(test) else {
        return;
    };
    let name = unique("hostsevents");
    let hosts = Hosts::new(3, &name);
    let scratch = Scratch::new(&name);
    let reach = reach_script(&scratch);
    wrong_link_still_fails(link, tolerance);
    let (slow, pair) = (3.0 * link, 5.0 * link);
    let head = format!(
        "[defaults]\ninterval = \"250ms\"\nrefresh_every = 4\ndelay = \"{link}ms\"\n\
         [verify]\nsamples = 5\nwarmup = 1\ntolerance = \"{tolerance}ms\"\n"
    );
    let mut body = String::new();
    for (node, host) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)] {
        body.push_str(&format!(
            "[[node]]\nname = \"n{node}\"\nhost = \"h{host}\"\n"
        ));
    }
    // n2 on h1 -> n5 on h3: the pair's delay, whole on h1.
    body.push_str(&format!(
        "[[pair]]\nfrom = \"n2\"\nto = \"n5\"\ndelay = \"{pair}ms\"\n"
    ));
    // n1 lives on h1, n3 on h2; the partition's groups span every host.
    body.push_str(&format!(
        "[[event]]\nname = \"slow\"\nat = \"12s\"\naction = \"set\"\nnode = \"n1\"\ndelay = \"{slow}ms\"\n"
    ));
    body.push_str(
        "[[event]]\nname = \"cut\"\nat = \"20s\"\naction = \"cut\"\nnode = \"n3\"\n\
         [[event]]\nname = \"back\"\nat = \"28s\"\naction = \"heal\"\nnode = \"n3\"\n\
         [[event]]\nname = \"split\"\nat = \"36s\"\naction = \"partition\"\ngroups = [[\"n1\", \"n3\", \"n5\"], [\"n2\", \"n4\", \"n6\"]]\n\
         [[event]]\nname = \"join\"\nat = \"46s\"\naction = \"heal\"\n\
         [[expect]]\nwhat = \"delay\"\nafter = \"slow\"\nwithin = \"8s\"\n\
         [[expect]]\nwhat = \"removed\"\nnode = \"n3\"\nafter = \"cut\"\nwithin = \"8s\"\n\
         [[expect]]\nwhat = \"discovered\"\nnode = \"n3\"\nafter = \"back\"\nwithin = \"8s\"\n\
         [[expect]]\nwhat = \"separated\"\nafter = \"split\"\nwithin = \"8s\"\n\
         [[expect]]\nwhat = \"rejoined\"\nafter = \"join\"\nwithin = \"8s\"\n",
    );
    let (code, report) = hosts_lab_up(&name, &hosts, &scratch, &reach, backend, &head, &body);
    // The delay table, before the first event: every pair, the [[pair]] at its own delay.
    assert_eq!(report.summary.pairs, 30, "{}", report.render());
    assert_eq!(report.summary.passed, 30, "{}", report.render());
    let judged = report
        .pairs
        .iter()
        .find(|p| p.from == "n2" && p.to == "n5")
        .expect("the pair judged");
    assert!(
        (judged.expected_ms - pair).abs() < 1.0,
        "expected {pair} ms and the underlay: {judged:?}"
    );
    let timeline = report.timeline.as_ref().expect("the timeline judged");
    assert_eq!(timeline.played.len(), 5, "{}", report.render());
    assert!(
        timeline.played.iter().all(|p| p.error.is_none()),
        "{:?}",
        timeline.played
    );
    assert_eq!(timeline.expects.len(), 5);
    assert!(timeline.ok(), "{}", report.render());
    assert_eq!(code, Some(0), "{}", report.render());
    down_leaves_nothing(&name, &hosts, &reach);
    let _ = std::fs::remove_dir_all(&scratch.0);
}
