//! Reading processes and sockets from `/proc`: the lab's own records of the
//! processes it started (`builder::state`) and the grader's readings of them
//! (`scenario::probe`) parse `/proc/PID/stat` through one [`Stat`].

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use nix::unistd::{sysconf, SysconfVar};

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

impl Stat {
    /// Parses a `stat` line. The command name, in parentheses, may hold
    /// anything (spaces, parentheses): fields are counted after the last `)`.
    pub fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        // After the name: state(0) ppid pgrp(2) ... utime(11) stime(12) ...
        // starttime(19) vsize rss(21).
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
        Some(Stat {
            state: fields.first()?.chars().next()?,
            parent: fields.get(1)?.parse().ok()?,
            group: fields.get(2)?.parse().ok()?,
            cpu_ticks: number(11)? + number(12)?,
            start_time: number(19)?,
            rss_pages: number(21)?,
        })
    }

    /// Reads the `stat` file at `path` (`/proc/PID/stat` or a thread's).
    pub fn read(path: impl AsRef<Path>) -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Reads process `pid`'s; none when it is gone.
    pub fn of(pid: i32) -> Option<Stat> {
        Stat::read(format!("/proc/{pid}/stat"))
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
    let sysconf = |var, default| sysconf(var).ok().flatten().unwrap_or(default).max(1);
    let ticks = sysconf(SysconfVar::CLK_TCK, 100) as f64;
    let page_kb = (sysconf(SysconfVar::PAGE_SIZE, 4096) / 1024).max(1) as u64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return readings;
    };
    let all: HashMap<i32, Stat> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter_map(|pid| Some((pid, Stat::of(pid)?)))
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
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            let runnable = tasks.filter_map(Result::ok).any(|task| {
                Stat::read(task.path().join("stat")).is_some_and(|thread| thread.state == 'R')
            });
            reading.runnable |= runnable;
        }
    }
    readings
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

/// Parses `ADDR:PORT` as in `/proc/net/tcp` (address in host byte order hex).
fn endpoint(text: &str) -> Option<(Ipv4Addr, u16)> {
    let (address, port) = text.split_once(':')?;
    let address = u32::from_str_radix(address, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some((Ipv4Addr::from(address.to_le_bytes()), port))
}

/// Parses a `/proc/net/tcp` table: listening ports, and (local port, remote
/// port) of connections from `own` to `own`.
pub fn parse_tcp(text: &str, own: Ipv4Addr) -> (Vec<u16>, Vec<(u16, u16)>) {
    let mut listening = Vec::new();
    let mut selfish = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state)) = (
            fields.get(1).and_then(|f| endpoint(f)),
            fields.get(2).and_then(|f| endpoint(f)),
            fields.get(3),
        ) else {
            continue;
        };
        if *state == "0A" {
            listening.push(local.1);
        } else if local.0 == own && remote.0 == own {
            selfish.push((local.1, remote.1));
        }
    }
    (listening, selfish)
}

/// The listening TCP ports in the namespace of `pid`, and its connections to itself.
pub fn sockets(pid: i32, own: Ipv4Addr) -> (Vec<u16>, Vec<(u16, u16)>) {
    let mut listening = Vec::new();
    let mut selfish = Vec::new();
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) {
        let (l, s) = parse_tcp(&text, own);
        listening.extend(l);
        selfish.extend(s);
    }
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp6")) {
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) == Some(&"0A") {
                if let Some(port) = fields
                    .get(1)
                    .and_then(|f| f.rsplit_once(':'))
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                {
                    listening.push(port);
                }
            }
        }
    }
    listening.sort_unstable();
    listening.dedup();
    (listening, selfish)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_after_the_last_parenthesis_of_the_name() {
        let line = "4242 (sdss (node) x) S 1 4242 4242 0 -1 4194560 300 0 0 0 7 5 0 0 20 0 2 0 123456 9000000 1300 18446744073709551615";
        let stat = Stat::parse(line).expect("a whole line");
        assert_eq!(
            stat,
            Stat {
                state: 'S',
                parent: 1,
                group: 4242,
                cpu_ticks: 12,
                start_time: 123456,
                rss_pages: 1300,
            }
        );
        assert_eq!(Stat::parse("4242 (cut) S 1 4242"), None, "a short line");
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
        let own = Ipv4Addr::new(198, 18, 0, 2);
        let (listening, selfish) = parse_tcp(text, own);
        assert_eq!(listening, [0xA0D2]);
        assert_eq!(selfish, [(0xA0D2, 0x9C40)]);
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
