//! What build's namespace step and teardown ask of the kernel, behind a
//! trait: [`Host`] is the real machine; tests give both a fake and check,
//! without root, that teardown removes exactly what build recorded, and
//! leaves alone what only looks like it.

use std::io;
use std::time::Duration;

use super::launch;
use super::netns::{self, NetnsError, NsId, Presence};
use super::state::ProcessRecord;

/// The kernel objects build makes and teardown looks at and removes.
pub trait Kernel {
    /// A handle on a namespace made (the real one: its nsfs file).
    type Netns;
    /// Creates the namespace `name`; `record` runs with its identity before
    /// its name exists, and a failure of `record` leaves nothing.
    fn create_netns(
        &mut self,
        name: &str,
        record: &mut dyn FnMut(NsId) -> io::Result<()>,
    ) -> Result<Self::Netns, NetnsError>;
    /// What is at `/run/netns/NAME` now.
    fn presence(&self, netns: &str) -> io::Result<Presence>;
    /// Unmounts and removes a namespace's name.
    fn remove_netns(&mut self, netns: &str) -> Result<(), NetnsError>;
    /// Every name under `/run/netns`.
    fn netns_names(&self) -> Vec<String>;
    /// Processes in the namespace with inode `ino`.
    fn processes_in(&self, ino: u64) -> Vec<i32>;
    /// The process `pid` as it is now (its start time), if it runs.
    fn process(&self, pid: i32) -> Option<ProcessRecord>;
    /// Whether the process recorded as `record` still runs.
    fn alive(&self, record: &ProcessRecord) -> bool;
    /// SIGTERM, `grace` to exit, then SIGKILL, for those of `pids` still `records`.
    fn stop(&mut self, pids: &[i32], grace: Duration, records: &[ProcessRecord]);
}

/// The machine sdss runs on.
#[derive(Debug, Default)]
pub struct Host;

impl Kernel for Host {
    type Netns = std::fs::File;

    fn create_netns(
        &mut self,
        name: &str,
        record: &mut dyn FnMut(NsId) -> io::Result<()>,
    ) -> Result<std::fs::File, NetnsError> {
        let id = netns::create(name, record)?;
        netns::open(name, Some(id))
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

    fn processes_in(&self, ino: u64) -> Vec<i32> {
        netns::processes_in(ino)
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
}

#[cfg(test)]
pub mod fake {
    //! A kernel in memory: namespaces by name, processes by PID.

    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

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
        /// A namespace whose creation fails.
        pub fail_on: Option<String>,
    }

    impl FakeKernel {
        /// Adds a mounted namespace.
        pub fn mount(&mut self, name: &str, ino: u64) -> NsId {
            let id = NsId { dev: 4, ino };
            self.netns.insert(name.to_owned(), Presence::Mounted(id));
            id
        }

        /// Starts a process in the namespace with inode `ino`.
        pub fn spawn(&mut self, pid: i32, start_time: u64, ino: u64) -> ProcessRecord {
            self.processes.insert(pid, (start_time, ino));
            ProcessRecord {
                node: None,
                pid,
                start_time,
            }
        }
    }

    impl Kernel for FakeKernel {
        type Netns = NsId;

        fn create_netns(
            &mut self,
            name: &str,
            record: &mut dyn FnMut(NsId) -> io::Result<()>,
        ) -> Result<NsId, NetnsError> {
            if self.fail_on.as_deref() == Some(name) || self.netns.contains_key(name) {
                return Err(NetnsError::Exists(name.to_owned()));
            }
            let id = NsId {
                dev: 4,
                ino: 1000 + self.netns.len() as u64,
            };
            record(id).map_err(|source| NetnsError::Sys {
                action: "recording",
                name: name.to_owned(),
                source,
            })?;
            self.netns.insert(name.to_owned(), Presence::Mounted(id));
            Ok(id)
        }

        fn presence(&self, netns: &str) -> io::Result<Presence> {
            Ok(self.netns.get(netns).cloned().unwrap_or(Presence::Absent))
        }

        fn remove_netns(&mut self, netns: &str) -> Result<(), NetnsError> {
            self.netns.remove(netns);
            self.removed.push(netns.to_owned());
            Ok(())
        }

        fn netns_names(&self) -> Vec<String> {
            self.netns.keys().cloned().collect()
        }

        fn processes_in(&self, ino: u64) -> Vec<i32> {
            self.processes
                .iter()
                .filter(|(_, (_, at))| *at == ino)
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
    }
}
