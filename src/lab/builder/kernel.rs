//! What build and teardown ask of the kernel, behind a trait: [`Host`] is
//! the real machine; tests give both a fake and check, without root, that
//! build records each object before making it and that teardown removes
//! exactly what build recorded, and leaves alone what only looks like it.

use std::io;
use std::process::Child;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::plan::{Plan, Segment};
use super::delay::{DelayBackend, DelayError};
use super::error::BuildError;
use super::launch::{self, Launch, LaunchError};
use super::links;
use super::netns::{self, NetnsError, NsId, Presence};
use super::sandbox::SandboxError;
use super::state::ProcessRecord;
use super::vxlan::{self, SegmentError};
use crate::lab::procfs;
use crate::lab::progress::Progress;

/// The kernel objects build makes and teardown looks at and removes.
pub trait Kernel {
    /// A handle on a namespace made (the real one: its nsfs file).
    type Netns;
    /// Readies the machine for named namespaces.
    fn prepare(&mut self) -> Result<(), NetnsError>;
    /// Creates the namespaces `names`; `record` runs once with their
    /// identities before any name exists, and a failure of `record` leaves
    /// nothing.
    fn create_netns(
        &mut self,
        names: &[String],
        record: &mut dyn FnMut(&[NsId]) -> io::Result<()>,
    ) -> Result<Vec<Self::Netns>, NetnsError>;
    /// Connects the lab's namespaces: bridge, veths (unless `emulated`: the
    /// emulator's TAPs are the links), addresses, routes, static neighbours.
    fn wire(
        &mut self,
        plan: &Plan,
        switch: &Self::Netns,
        nodes: &[Self::Netns],
        emulated: bool,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<(), BuildError>;
    /// Joins the bridge in `switch` (named `switch_netns`) to the other hosts
    /// of `segment` with a VXLAN device, whose UDP socket stays in the
    /// caller's namespace (the host's underlay).
    fn join_segment(
        &mut self,
        switch: &Self::Netns,
        switch_netns: &str,
        segment: &Segment,
    ) -> Result<(), SegmentError>;
    /// Puts `plan`'s impairments on the links, through `backend`.
    fn apply(&mut self, backend: &dyn DelayBackend, plan: &Plan) -> Result<(), DelayError>;
    /// Gives a namespace its ephemeral port range (the grading probe tells
    /// a graded node's own connections by it).
    fn set_port_range(&mut self, ns: &Self::Netns, name: &str, range: (u16, u16))
        -> io::Result<()>;
    /// Starts each launch (in order of the results), detached; several at once.
    fn spawn(&mut self, launches: &[Launch<'_, Self::Netns>]) -> Vec<Result<Child, LaunchError>>;
    /// What is at `/run/netns/NAME` now.
    fn presence(&self, netns: &str) -> io::Result<Presence>;
    /// Unmounts and removes a namespace's name.
    fn remove_netns(&mut self, netns: &str) -> Result<(), NetnsError>;
    /// Every name under `/run/netns`.
    fn netns_names(&self) -> Vec<String>;
    /// Processes in the namespaces with these inodes.
    fn processes_in(&self, inos: &[u64]) -> Vec<i32>;
    /// The process `pid` as it is now (its start time), if it runs.
    fn process(&self, pid: i32) -> Option<ProcessRecord>;
    /// Whether the process recorded as `record` still runs.
    fn alive(&self, record: &ProcessRecord) -> bool;
    /// SIGTERM, `grace` to exit, then SIGKILL, for those of `pids` still `records`.
    fn stop(&mut self, pids: &[i32], grace: Duration, records: &[ProcessRecord]);
    /// Kills what is left in a box's cgroup `name` and removes it from every
    /// controller; one that is not there is done.
    fn remove_cgroup(&mut self, name: &str) -> Result<(), SandboxError>;
}

/// The machine sdss runs on.
#[derive(Debug, Default)]
pub struct Host;

impl Kernel for Host {
    type Netns = std::fs::File;

    fn prepare(&mut self) -> Result<(), NetnsError> {
        netns::prepare_run_dir()
    }

    fn create_netns(
        &mut self,
        names: &[String],
        record: &mut dyn FnMut(&[NsId]) -> io::Result<()>,
    ) -> Result<Vec<std::fs::File>, NetnsError> {
        netns::create_all(names, record)
    }

    fn wire(
        &mut self,
        plan: &Plan,
        switch: &std::fs::File,
        nodes: &[std::fs::File],
        emulated: bool,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<(), BuildError> {
        // Netlink answers within its calls: off the async worker.
        tokio::task::block_in_place(|| links::wire(plan, switch, nodes, emulated, cancel, progress))
            .map_err(BuildError::from)
    }

    fn join_segment(
        &mut self,
        switch: &std::fs::File,
        switch_netns: &str,
        segment: &Segment,
    ) -> Result<(), SegmentError> {
        tokio::task::block_in_place(|| vxlan::join(switch, switch_netns, segment))
    }

    fn apply(&mut self, backend: &dyn DelayBackend, plan: &Plan) -> Result<(), DelayError> {
        // `tc` runs as a child process: off the async worker.
        tokio::task::block_in_place(|| backend.apply(plan))
    }

    fn set_port_range(
        &mut self,
        ns: &std::fs::File,
        name: &str,
        (low, high): (u16, u16),
    ) -> io::Result<()> {
        // From a thread that entered it: `/proc/sys/net` is the namespace of
        // the thread that opens it.
        netns::on_thread_in(ns, || {
            std::fs::write(
                "/proc/sys/net/ipv4/ip_local_port_range",
                format!("{low} {high}"),
            )
        })
        .and_then(|written| written)
        .map_err(|e| io::Error::new(e.kind(), format!("in {name}: {e}")))
    }

    fn spawn(&mut self, launches: &[Launch<'_, std::fs::File>]) -> Vec<Result<Child, LaunchError>> {
        tokio::task::block_in_place(|| launch::spawn_all(launches))
    }

    fn presence(&self, netns: &str) -> io::Result<Presence> {
        netns::presence(netns)
    }

    fn remove_netns(&mut self, netns: &str) -> Result<(), NetnsError> {
        netns::remove(netns)
    }

    fn netns_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(netns::NETNS_RUN_DIR) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect()
    }

    fn processes_in(&self, inos: &[u64]) -> Vec<i32> {
        procfs::in_net_namespaces(inos)
    }

    fn process(&self, pid: i32) -> Option<ProcessRecord> {
        ProcessRecord::of(pid, None)
    }

    fn alive(&self, record: &ProcessRecord) -> bool {
        record.alive()
    }

    fn stop(&mut self, pids: &[i32], grace: Duration, records: &[ProcessRecord]) {
        launch::stop(pids, grace, |pid| {
            records.iter().any(|r| r.pid == pid && r.alive())
        });
    }

    fn remove_cgroup(&mut self, name: &str) -> Result<(), SandboxError> {
        super::sandbox::cgroup::remove_cgroup(name)
    }
}

#[cfg(test)]
pub mod fake {
    //! A kernel in memory: namespaces by name, the links in each, processes
    //! by PID. Its processes are real but trivial: `echo ready`, so that a
    //! build waiting for the emulator's word goes on.

    use std::collections::{BTreeMap, BTreeSet};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::lab::plan::backend::BackendKind;
    use crate::lab::plan::{BRIDGE_IFNAME, NODE_IFNAME};

    /// A directory of its own, removed when dropped.
    pub struct TempDir(pub std::path::PathBuf);

    impl TempDir {
        /// A new empty directory under the system's temporary directory.
        pub fn new(what: &str) -> TempDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("sdss-{what}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// What the fake holds and what was done to it.
    #[derive(Debug, Default)]
    pub struct FakeKernel {
        /// `/run/netns`.
        pub netns: BTreeMap<String, Presence>,
        /// Running processes: PID -> (start time, namespace inode).
        pub processes: BTreeMap<i32, (u64, u64)>,
        /// Namespaces removed, in order.
        pub removed: Vec<String>,
        /// Processes stopped.
        pub stopped: BTreeSet<i32>,
        /// A namespace whose naming fails (after all were recorded).
        pub fail_on: Option<String>,
        /// Links by namespace name.
        pub links: BTreeMap<String, BTreeSet<String>>,
        /// The backend whose delays were applied.
        pub applied: Option<BackendKind>,
        /// The start, counted from 0, that fails.
        pub fail_spawn: Option<usize>,
        /// Processes started so far.
        pub spawned: usize,
        /// Segments joined: (switch namespace, segment).
        pub segments: Vec<(String, Segment)>,
        /// Whether the kernel lacks VXLAN.
        pub no_vxlan: bool,
        /// Cgroups removed, in order.
        pub cgroups_removed: Vec<String>,
    }

    impl FakeKernel {
        /// Adds a mounted namespace.
        pub fn mount(&mut self, name: &str, ino: u64) -> NsId {
            let id = NsId { dev: 4, ino };
            self.netns.insert(name.to_owned(), Presence::Mounted(id));
            id
        }

        /// Starts a process in the namespace with inode `ino`.
        pub fn start_process(&mut self, pid: i32, start_time: u64, ino: u64) -> ProcessRecord {
            self.processes.insert(pid, (start_time, ino));
            ProcessRecord {
                node: None,
                pid,
                start_time,
            }
        }

        /// The name of the mounted namespace `id`.
        fn name_of(&self, id: NsId) -> Option<String> {
            self.netns
                .iter()
                .find(|(_, p)| **p == Presence::Mounted(id))
                .map(|(name, _)| name.clone())
        }

        /// A start: `echo ready` into the launch's stdout, or the planned failure.
        fn start_one(&mut self, launch: &Launch<'_, NsId>) -> Result<Child, LaunchError> {
            let nth = self.spawned;
            self.spawned += 1;
            let failed = |source| LaunchError::Spawn {
                program: launch.argv.first().cloned().unwrap_or_default(),
                netns: launch.netns.to_owned(),
                source,
            };
            if self.fail_spawn == Some(nth) {
                return Err(failed(io::Error::other("the fake fails this start")));
            }
            let stdout = std::fs::File::create(&launch.stdout).map_err(failed)?;
            let child = Command::new("echo")
                .arg("ready")
                .stdin(Stdio::null())
                .stdout(stdout)
                .spawn()
                .map_err(failed)?;
            self.processes.insert(child.id() as i32, (1, launch.ns.ino));
            Ok(child)
        }

        fn add_link(&mut self, ns: NsId, link: &str) {
            if let Some(name) = self.name_of(ns) {
                self.links.entry(name).or_default().insert(link.to_owned());
            }
        }
    }

    impl Kernel for FakeKernel {
        type Netns = NsId;

        fn prepare(&mut self) -> Result<(), NetnsError> {
            Ok(())
        }

        fn create_netns(
            &mut self,
            names: &[String],
            record: &mut dyn FnMut(&[NsId]) -> io::Result<()>,
        ) -> Result<Vec<NsId>, NetnsError> {
            if let Some(taken) = names.iter().find(|n| self.netns.contains_key(*n)) {
                return Err(NetnsError::Exists(taken.clone()));
            }
            let base = 1000 + self.netns.len() as u64;
            let ids: Vec<NsId> = (0..names.len() as u64)
                .map(|i| NsId {
                    dev: 4,
                    ino: base + i,
                })
                .collect();
            record(&ids).map_err(|source| NetnsError::Record {
                name: names.first().cloned().unwrap_or_default(),
                source,
            })?;
            for (name, id) in names.iter().zip(&ids) {
                if self.fail_on.as_deref() == Some(name) {
                    return Err(NetnsError::Exists(name.clone()));
                }
                self.netns.insert(name.clone(), Presence::Mounted(*id));
            }
            Ok(ids)
        }

        fn wire(
            &mut self,
            plan: &Plan,
            switch: &NsId,
            nodes: &[NsId],
            emulated: bool,
            _cancel: &CancellationToken,
            _progress: &dyn Progress,
        ) -> Result<(), BuildError> {
            if !emulated {
                self.add_link(*switch, BRIDGE_IFNAME);
            }
            for (node, ns) in plan.nodes.iter().zip(nodes) {
                if !emulated {
                    self.add_link(*switch, &node.bridge_port);
                }
                self.add_link(*ns, NODE_IFNAME);
            }
            Ok(())
        }

        fn join_segment(
            &mut self,
            switch: &NsId,
            switch_netns: &str,
            segment: &Segment,
        ) -> Result<(), SegmentError> {
            if self.no_vxlan {
                return Err(SegmentError::NoVxlan);
            }
            self.add_link(*switch, &segment.ifname());
            self.segments
                .push((switch_netns.to_owned(), segment.clone()));
            Ok(())
        }

        fn apply(&mut self, backend: &dyn DelayBackend, _plan: &Plan) -> Result<(), DelayError> {
            self.applied = Some(backend.kind());
            Ok(())
        }

        fn set_port_range(&mut self, _: &NsId, _: &str, _: (u16, u16)) -> io::Result<()> {
            Ok(())
        }

        fn spawn(&mut self, launches: &[Launch<'_, NsId>]) -> Vec<Result<Child, LaunchError>> {
            launches.iter().map(|l| self.start_one(l)).collect()
        }

        fn presence(&self, netns: &str) -> io::Result<Presence> {
            Ok(self.netns.get(netns).cloned().unwrap_or(Presence::Absent))
        }

        fn remove_netns(&mut self, netns: &str) -> Result<(), NetnsError> {
            self.netns.remove(netns);
            self.links.remove(netns); // links live in their namespace
            self.removed.push(netns.to_owned());
            Ok(())
        }

        fn netns_names(&self) -> Vec<String> {
            self.netns.keys().cloned().collect()
        }

        fn processes_in(&self, inos: &[u64]) -> Vec<i32> {
            self.processes
                .iter()
                .filter(|(_, (_, at))| inos.contains(at))
                .map(|(pid, _)| *pid)
                .collect()
        }

        fn process(&self, pid: i32) -> Option<ProcessRecord> {
            self.processes
                .get(&pid)
                .map(|(start_time, _)| ProcessRecord {
                    node: None,
                    pid,
                    start_time: *start_time,
                })
        }

        fn alive(&self, record: &ProcessRecord) -> bool {
            self.processes
                .get(&record.pid)
                .is_some_and(|(start, _)| *start == record.start_time)
        }

        fn stop(&mut self, pids: &[i32], _grace: Duration, records: &[ProcessRecord]) {
            for pid in pids {
                let meant = records.iter().any(|r| r.pid == *pid && self.alive(r));
                if meant && self.processes.remove(pid).is_some() {
                    self.stopped.insert(*pid);
                }
            }
        }

        fn remove_cgroup(&mut self, name: &str) -> Result<(), SandboxError> {
            self.cgroups_removed.push(name.to_owned());
            Ok(())
        }
    }
}
