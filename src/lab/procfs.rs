//! The one place sdss reads processes from `/proc`, through the `procfs`
//! crate: the lab's own records of the processes it started
//! (`builder::state`), the grader's readings of them (`scenario::probe`),
//! teardown's search for what is left in a lab's namespaces, and the box's
//! watch. Callers see only the types here.
//!
//! Every reading is soft: a process may exit between two reads, so one that
//! is gone (or unreadable) is absent from the answer, never an error.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use ::procfs::net::{TcpNetEntry, TcpState};
use ::procfs::process::{all_processes, Process};

/// One reading of a process group's processes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupReading {
    /// User + system CPU seconds, all processes.
    pub cpu_secs: f64,
    /// Resident memory, all processes, kB.
    pub rss_kb: u64,
    /// Whether a thread was running or runnable.
    pub runnable: bool,
    /// How many processes.
    pub processes: usize,
    /// Whether the leader is a zombie (exited, not reaped).
    pub zombie: bool,
}

/// What sdss reads of a process (or a thread) in `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R` running or runnable, `Z` zombie, `X` dead, ...
    pub state: char,
    /// Its parent.
    pub parent: i32,
    /// Its process group.
    pub group: i32,
    /// User and system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// When it started, in clock ticks since boot: with the PID, who it is.
    pub start_time: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

impl From<&::procfs::process::Stat> for Stat {
    fn from(stat: &::procfs::process::Stat) -> Stat {
        Stat {
            state: stat.state,
            parent: stat.ppid,
            group: stat.pgrp,
            cpu_ticks: stat.utime + stat.stime,
            start_time: stat.starttime,
            rss_pages: stat.rss,
        }
    }
}

impl Stat {
    /// Reads process `pid`'s; none when it is gone.
    pub fn of(pid: i32) -> Option<Stat> {
        Some(Stat::from(&Process::new(pid).ok()?.stat().ok()?))
    }

    /// Whether it still runs: an exited process stays readable as a zombie
    /// (`Z`) until reaped, and briefly as dead (`X`).
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Every process of the process groups led by `leaders`, and every
/// descendant of a leader (a confined program leaves the group of the box's
/// keeper, and a program may start a session of its own: its processes are
/// still its own), in one pass over `/proc`; a leader that is gone has no entry.
pub fn groups(leaders: &[i32]) -> HashMap<i32, GroupReading> {
    let mut readings: HashMap<i32, GroupReading> = leaders
        .iter()
        .filter_map(|&leader| {
            let stat = Stat::of(leader)?;
            let reading = GroupReading {
                cpu_secs: 0.0,
                rss_kb: 0,
                runnable: false,
                processes: 0,
                zombie: stat.state == 'Z',
            };
            Some((leader, reading))
        })
        .collect();
    let ticks = ::procfs::ticks_per_second().max(1) as f64;
    let page_kb = (::procfs::page_size() / 1024).max(1);
    let Ok(processes) = all_processes() else {
        return readings;
    };
    // Each `Process` holds a descriptor: read the stat and let it go, so a
    // machine of many processes costs no more descriptors than one.
    let all: HashMap<i32, Stat> = processes
        .filter_map(Result::ok)
        .filter_map(|process| Some((process.pid(), Stat::from(&process.stat().ok()?))))
        .collect();
    for (pid, stat) in &all {
        let Some(leader) = leader_of(*pid, stat, &all, &readings) else {
            continue;
        };
        let Some(reading) = readings.get_mut(&leader) else {
            continue;
        };
        reading.processes += 1;
        reading.cpu_secs += stat.cpu_ticks as f64 / ticks;
        reading.rss_kb += stat.rss_pages * page_kb;
        reading.runnable |= runnable(*pid);
    }
    readings
}

/// Whether a thread of process `pid` is running or runnable.
fn runnable(pid: i32) -> bool {
    let Ok(tasks) = Process::new(pid).and_then(|process| process.tasks()) else {
        return false;
    };
    tasks
        .filter_map(Result::ok)
        .any(|task| task.stat().is_ok_and(|thread| thread.state == 'R'))
}

/// The leader whose group `pid` is in, or which it descends from.
fn leader_of<T>(
    pid: i32,
    stat: &Stat,
    all: &HashMap<i32, Stat>,
    leaders: &HashMap<i32, T>,
) -> Option<i32> {
    if leaders.contains_key(&stat.group) {
        return Some(stat.group);
    }
    let mut at = pid;
    // Bounded: a chain of parents is short, and a PID reused meanwhile
    // could make a loop of a stale reading.
    for _ in 0..64 {
        if leaders.contains_key(&at) {
            return Some(at);
        }
        at = all.get(&at)?.parent;
    }
    None
}

/// The listening TCP ports (IPv4 and IPv6) in the namespace of `pid`, and its
/// IPv4 connections from `own` to `own` as (local port, remote port).
pub fn sockets(pid: i32, own: Ipv4Addr) -> (Vec<u16>, Vec<(u16, u16)>) {
    let Ok(process) = Process::new(pid) else {
        return (Vec::new(), Vec::new());
    };
    let mut entries = process.tcp().unwrap_or_default();
    entries.extend(process.tcp6().unwrap_or_default());
    classify(&entries, own)
}

/// Splits a socket table into listening ports and connections to itself. An
/// IPv6 entry is never one to `own`: the v6 table shows a v4 peer as mapped.
fn classify(entries: &[TcpNetEntry], own: Ipv4Addr) -> (Vec<u16>, Vec<(u16, u16)>) {
    let own = IpAddr::V4(own);
    let mut listening = Vec::new();
    let mut selfish = Vec::new();
    for entry in entries {
        let (local, remote) = (entry.local_address, entry.remote_address);
        if entry.state == TcpState::Listen {
            listening.push(local.port());
        } else if local.ip() == own && remote.ip() == own {
            selfish.push((local.port(), remote.port()));
        }
    }
    listening.sort_unstable();
    listening.dedup();
    (listening, selfish)
}

/// Every process in one of the network namespaces with inodes `inos`, from
/// one pass over `/proc`.
///
/// The namespace is read from the `ns/net` link alone: the crate's
/// `namespaces()` stats every link, and fails for a process that unshared a
/// PID namespace and has not forked yet (its `pid_for_children` is missing),
/// which teardown must still find.
pub fn in_net_namespaces(inos: &[u64]) -> Vec<i32> {
    let Ok(processes) = all_processes() else {
        return Vec::new();
    };
    processes
        .filter_map(Result::ok)
        .map(|process| process.pid())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|link| {
                link.to_str()
                    .and_then(|l| l.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok())
                    .is_some_and(|ino: u64| inos.contains(&ino))
            })
        })
        .collect()
}

/// The threads of this process.
pub fn own_threads() -> Vec<i32> {
    Process::myself()
        .and_then(|me| me.tasks())
        .map(|tasks| tasks.filter_map(Result::ok).map(|task| task.tid).collect())
        .unwrap_or_default()
}

/// How many files process `pid` has open; none when it is gone.
///
/// Counted from `/proc/PID/fd` by hand: the crate's `fd_count` is right only
/// from Linux 6.2 (before, it counts `.` and `..` too), and its `fd` reads
/// each descriptor's link.
pub fn open_files(pid: i32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// One line of `/proc/PID/cgroup`: the group a process is in, in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMembership {
    /// The hierarchy's controllers (v1); none for the unified hierarchy (v2).
    pub controllers: Vec<String>,
    /// The group's path from the hierarchy's root, with its leading `/`.
    pub path: String,
}

/// The groups this process is in, one per hierarchy; none when unreadable.
pub fn own_cgroups() -> Vec<CgroupMembership> {
    let Ok(groups) = Process::myself().and_then(|me| me.cgroups()) else {
        return Vec::new();
    };
    groups
        .into_iter()
        .map(|group| CgroupMembership {
            controllers: group.controllers,
            path: group.pathname,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::procfs::{ExplicitSystemInfo, FromBufReadSI, FromRead};

    #[test]
    fn a_stat_line_is_read_after_the_last_parenthesis_of_the_name() {
        let line = "4242 (sdss (node) x) S 1 4242 4242 0 -1 4194560 300 0 0 0 7 5 0 0 20 0 2 0 123456 9000000 1300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let parsed = ::procfs::process::Stat::from_read(line.as_bytes()).expect("a whole line");
        assert_eq!(
            Stat::from(&parsed),
            Stat {
                state: 'S',
                parent: 1,
                group: 4242,
                cpu_ticks: 12,
                start_time: 123456,
                rss_pages: 1300,
            }
        );
        let cut = ::procfs::process::Stat::from_read("4242 (cut) S 1 4242".as_bytes());
        assert!(cut.is_err(), "a short line");
    }

    #[test]
    fn this_test_reads_its_own_stat() {
        let pid = std::process::id() as i32;
        let me = Stat::of(pid).expect("our own stat");
        assert!(me.alive());
        assert_eq!(me.parent, nix::unistd::getppid().as_raw());
        assert!(me.start_time > 0 && me.rss_pages > 0);
        assert_eq!(
            Stat::of(pid).map(|again| again.start_time),
            Some(me.start_time)
        );
        // The main thread may sleep, but this one runs.
        assert!(runnable(pid));
        assert!(own_threads().contains(&nix::unistd::gettid().as_raw()));
        assert!(open_files(pid).is_some_and(|n| n >= 3));
    }

    #[test]
    fn a_process_that_left_its_group_still_counts_for_its_ancestor() {
        let stat = |parent, group| Stat {
            state: 'S',
            parent,
            group,
            cpu_ticks: 0,
            start_time: 0,
            rss_pages: 0,
        };
        // 10 leads its group; 11 is its child in it; 12, a child of 11, made
        // a session of its own; 20 is a stranger.
        let all: HashMap<i32, Stat> = [
            (10, stat(1, 10)),
            (11, stat(10, 10)),
            (12, stat(11, 12)),
            (20, stat(1, 20)),
        ]
        .into();
        let leaders: HashMap<i32, ()> = [(10, ())].into();
        for pid in [10, 11, 12] {
            assert_eq!(
                leader_of(pid, &all[&pid], &all, &leaders),
                Some(10),
                "{pid}"
            );
        }
        assert_eq!(leader_of(20, &all[&20], &all, &leaders), None);
    }

    #[test]
    fn proc_net_tcp_lines_give_listening_ports_and_self_connections() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:A0D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n   1: 020012C6:A0D2 020012C6:9C40 06 00000000:00000000 00:00000000 00000000     0        0 0\n   2: 020012C6:A0D2 030012C6:9C41 01 00000000:00000000 00:00000000 00000000     0        0 2\n";
        // The table prints addresses in the host's byte order; this one's is
        // a little-endian host's.
        let host = ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: 100,
            page_size: 4096,
            is_little_endian: true,
        };
        let table = ::procfs::net::TcpNetEntries::from_buf_read(text.as_bytes(), &host)
            .expect("a whole table");
        let own = Ipv4Addr::new(198, 18, 0, 2);
        let (listening, selfish) = classify(&table.0, own);
        assert_eq!(listening, [0xA0D2]);
        assert_eq!(selfish, [(0xA0D2, 0x9C40)]);
    }

    #[test]
    fn a_listening_socket_of_ours_is_seen() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("its address").port();
        let pid = std::process::id() as i32;
        let (listening, _) = sockets(pid, Ipv4Addr::LOCALHOST);
        assert!(listening.contains(&port), "{port} not in {listening:?}");
    }

    #[test]
    fn a_process_group_we_start_is_readable() {
        // A group of our own making, as a node's is.
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        use std::process::Stdio;
        // It says "ready" once running, then waits for its stdin to close.
        let mut command = std::process::Command::new("sh");
        command
            .args(["-c", "echo ready; read line"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        command.process_group(0);
        let mut child = command.spawn().expect("spawn sleep");
        let leader = child.id() as i32;
        let mut ready = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut ready)
            .expect("read ready");
        let readings = groups(&[leader]);
        drop(child.stdin.take());
        let _ = child.wait();
        let reading = readings.get(&leader).expect("the group we started");
        assert_eq!(reading.processes, 1);
        assert!(reading.rss_kb > 0);
        assert!(!reading.zombie);
        assert!(groups(&[leader]).is_empty(), "a reaped leader has no entry");
    }
}
