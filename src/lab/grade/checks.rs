//! The checklist, computed from observations alone (no I/O, no clock).
//!
//! Each check states the assignment's requirement, a verdict and the evidence
//! that decided it. A check whose input is missing because something else
//! failed (nothing was heard, the server never answered) fails too, and says
//! "not measured" and why: a peer that cannot be heard cannot be used.

use std::collections::BTreeMap;

use super::observe::{Destination, Observed, Observer, Probe, ProbeKind, LISTEN_BEFORE_SPEAKING};
use super::{Check, Checklist, Verdict};
use crate::protocol::{decode_timestamp, time_zone_offset_hours, Announcement, TimestampError};

/// The assignment's broadcast period.
const EXPECTED_INTERVAL_SECS: f64 = crate::protocol::ANNOUNCE_INTERVAL.as_secs_f64();
/// Datagrams closer than this belong to one tick (sent to several destinations).
const SAME_TICK_SECS: f64 = 0.2;
/// How soon after an event its effects are looked for.
const SETTLE_SECS: f64 = 1.0;

/// Grades one node from what the lab saw of it.
pub fn grade(seen: &Observed) -> Checklist {
    let announced = announced_ports(seen);
    let checks = vec![
        format(seen),
        announced_port(seen, &announced),
        cadence(seen),
        own_datagrams(seen),
        heard(seen),
        reachable(seen, &announced),
        port_zero(seen, &announced),
        speaks_first(seen),
        closes(seen),
        encoding(seen),
        utc(seen),
        robust(seen),
        prompt(seen),
        refresh(seen),
        joined(seen),
        survives(
            seen,
            "client.killed",
            "a node killed during the run costs it nothing: it keeps broadcasting, serving and measuring the others",
            seen.timeline.killed.as_ref().map(|(n, t)| (format!("{n} was killed"), *t)),
        ),
        survives(
            seen,
            "client.silent_peer",
            "a peer that accepts and never answers does not stop it",
            seen.timeline.silent_at.map(|t| {
                (
                    format!(
                        "the silent peer appeared (it connected to it {} time(s))",
                        seen.silent_peer_connections.len()
                    ),
                    t,
                )
            }),
        ),
        survives(
            seen,
            "client.malformed",
            "a burst of malformed datagrams does not stop it",
            seen.timeline
                .burst_at
                .map(|t| ("the malformed burst was sent".to_owned(), t)),
        ),
        alive(seen),
        cpu(seen),
        memory(seen),
    ];
    Checklist::new(seen.node.clone(), seen.command.clone(), checks)
}

/// A failed check whose evidence could not be gathered, and why.
fn not_measured(id: &str, title: &str, why: &str) -> Check {
    check(id, title, Verdict::Fail, format!("not measured: {why}"))
}

fn check(id: &str, title: &str, verdict: Verdict, evidence: String) -> Check {
    Check {
        id: id.to_owned(),
        title: title.to_owned(),
        verdict,
        evidence,
    }
}

fn escaped(bytes: &[u8], limit: usize) -> String {
    let text: String = bytes
        .iter()
        .take(limit)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > limit {
        format!("{text}...")
    } else {
        text
    }
}

fn secs(t: f64, seen: &Observed) -> String {
    format!("t={:.1}s", t - seen.timeline.started_at)
}

fn nothing_heard() -> String {
    "not measured: none of its datagrams reached the lab (see announce.heard)".to_owned()
}

/// Ports announced in well-formed datagrams, with how often.
fn announced_ports(seen: &Observed) -> BTreeMap<u16, usize> {
    let mut ports = BTreeMap::new();
    for d in &seen.datagrams {
        if let Ok(a) = Announcement::decode(&d.payload) {
            *ports.entry(a.port).or_default() += 1;
        }
    }
    ports
}

fn format(seen: &Observed) -> Check {
    const ID: &str = "announce.format";
    const TITLE: &str = "datagrams are `<ID> ON <PORT>`, UTF-8, with an 8-character ID";
    let Some(first) = seen.datagrams.first() else {
        return check(ID, TITLE, Verdict::Fail, nothing_heard());
    };
    let total = seen.datagrams.len();
    let mut bad = Vec::new();
    let mut junk = 0;
    let mut ids = std::collections::BTreeSet::new();
    for d in &seen.datagrams {
        match Announcement::decode(&d.payload) {
            Err(e) => bad.push(format!("\"{}\": {e}", escaped(&d.payload, 40))),
            Ok(a) => {
                if !a.id.is_canonical() {
                    bad.push(format!(
                        "ID {:?} has {} characters, not 8",
                        a.id.as_str(),
                        a.id.as_str().chars().count()
                    ));
                }
                if a.encode() != d.payload {
                    junk += 1;
                }
                ids.insert(a.id.as_str().to_owned());
            }
        }
    }
    let sample = format!("\"{}\"", escaped(&first.payload, 40));
    if let Some(example) = bad.first() {
        return check(
            ID,
            TITLE,
            Verdict::Fail,
            format!(
                "{} of {total} datagrams malformed, e.g. {example}",
                bad.len()
            ),
        );
    }
    let ids_note = if ids.len() > 1 {
        format!("; {} different IDs during one run", ids.len())
    } else {
        String::new()
    };
    if junk > 0 {
        return check(
            ID,
            TITLE,
            Verdict::Warn,
            format!("{total} datagrams like {sample}: {junk} carry trailing bytes (newline, spaces or NULs) that strict peers reject{ids_note}"),
        );
    }
    check(
        ID,
        TITLE,
        Verdict::Pass,
        format!("{total} datagrams, all exactly like {sample}{ids_note}"),
    )
}

fn listening_text(seen: &Observed) -> String {
    if seen.listening.is_empty() {
        "no listening TCP port".to_owned()
    } else {
        let ports: Vec<String> = seen.listening.iter().map(u16::to_string).collect();
        format!("listening TCP port(s) {}", ports.join(", "))
    }
}

fn announced_port(seen: &Observed, announced: &BTreeMap<u16, usize>) -> Check {
    const ID: &str = "announce.port";
    const TITLE: &str = "the announced port is its listening TCP port";
    if announced.is_empty() {
        return check(ID, TITLE, Verdict::Fail, nothing_heard());
    }
    let wrong: Vec<u16> = announced
        .keys()
        .copied()
        .filter(|p| !seen.listening.contains(p))
        .collect();
    let ports: Vec<String> = announced.keys().map(u16::to_string).collect();
    if wrong.is_empty() {
        check(
            ID,
            TITLE,
            Verdict::Pass,
            format!("announces {}; {}", ports.join(", "), listening_text(seen)),
        )
    } else {
        check(
            ID,
            TITLE,
            Verdict::Fail,
            format!(
                "announces {} but nothing of it listens on {}; {}",
                ports.join(", "),
                wrong
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                listening_text(seen)
            ),
        )
    }
}

/// Mean and standard deviation.
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Arrival times grouped into ticks, and the most datagrams one tick had.
fn ticks(seen: &Observed) -> (Vec<f64>, usize) {
    let mut ticks: Vec<f64> = Vec::new();
    let mut per_tick = 0;
    let mut current = 0;
    for d in &seen.datagrams {
        match ticks.last() {
            Some(last) if d.at - last < SAME_TICK_SECS => current += 1,
            _ => {
                ticks.push(d.at);
                current = 1;
            }
        }
        per_tick = per_tick.max(current);
    }
    (ticks, per_tick)
}

fn cadence(seen: &Observed) -> Check {
    const ID: &str = "announce.cadence";
    const TITLE: &str = "one announcement per second";
    let (ticks, per_tick) = ticks(seen);
    if ticks.len() < 3 {
        let why = if ticks.is_empty() {
            nothing_heard()
        } else {
            format!(
                "only {} announcement(s) in {:.0} s",
                ticks.len(),
                seen.timeline.ended_at - seen.timeline.started_at
            )
        };
        return check(ID, TITLE, Verdict::Fail, why);
    }
    let gaps: Vec<f64> = ticks.windows(2).map(|w| w[1] - w[0]).collect();
    let (mean, sd) = mean_sd(&gaps);
    let max = gaps.iter().copied().fold(0.0, f64::max);
    let mut evidence = format!(
        "{} announcements, every {mean:.3} s on average (spread {sd:.3} s, longest gap {max:.2} s)",
        ticks.len()
    );
    if per_tick > 1 {
        evidence.push_str(&format!(
            "; up to {per_tick} datagrams per tick (several destinations)"
        ));
    }
    let verdict = if (mean - EXPECTED_INTERVAL_SECS).abs() <= 0.15 && sd <= 0.25 && max < 3.0 {
        Verdict::Pass
    } else if (0.5..=2.0).contains(&mean) {
        evidence.push_str(": irregular or off the 1 s period");
        Verdict::Warn
    } else {
        evidence.push_str(": not the assignment's 1 s period");
        Verdict::Fail
    };
    check(ID, TITLE, verdict, evidence)
}

fn own_datagrams(seen: &Observed) -> Check {
    const ID: &str = "announce.own";
    const TITLE: &str = "it ignores its own datagrams";
    if seen.self_connections == 0 {
        check(
            ID,
            TITLE,
            Verdict::Pass,
            "it never connected to its own timestamp server".to_owned(),
        )
    } else {
        check(
            ID,
            TITLE,
            Verdict::Fail,
            format!(
                "{} connection(s) from itself to its own timestamp server: it treats its own broadcasts as a peer's",
                seen.self_connections
            ),
        )
    }
}

fn heard(seen: &Observed) -> Check {
    const ID: &str = "announce.heard";
    const TITLE: &str =
        "heard by peers bound to 255.255.255.255 and by peers bound to 0.0.0.0 (directed broadcasts)";
    let limited = seen
        .datagrams
        .iter()
        .filter(|d| d.destination == Destination::Limited)
        .count();
    let directed = seen.datagrams.len() - limited;
    let sdss: Vec<String> = seen
        .observers
        .iter()
        .filter(|o| o.heard_graded > 0)
        .map(|o| format!("{} ({})", o.name, o.heard_graded))
        .collect();
    let sdss = if sdss.is_empty() {
        "no sdss node heard it".to_owned()
    } else {
        format!("sdss nodes heard it: {}", sdss.join(", "))
    };
    let counts = format!(
        "{limited} datagram(s) to 255.255.255.255, {directed} to the lab's directed broadcast; {sdss}"
    );
    if seen.datagrams.is_empty() {
        check(
            ID,
            TITLE,
            Verdict::Fail,
            format!("nothing it sent reached the lab link: its broadcast destination is not the lab's (hard-coded?); {sdss}"),
        )
    } else if limited == 0 {
        check(
            ID,
            TITLE,
            Verdict::Warn,
            format!("{counts}: peers that bind 255.255.255.255 never hear it"),
        )
    } else {
        check(ID, TITLE, Verdict::Pass, counts)
    }
}

fn probe_text(p: &Probe) -> String {
    let how = match (p.kind, p.spoke) {
        (ProbeKind::Listen, None) => "listening first".to_owned(),
        (ProbeKind::Listen, Some((at, dialect))) => format!(
            "listening first, then writing its time ({dialect}) after {:.1} s",
            at - p.at
        ),
        (ProbeKind::CloseMute, _) => "writing nothing, then closing".to_owned(),
        (ProbeKind::Binary, _) => "writing its time as !d at once".to_owned(),
    };
    match &p.connect_error {
        Some(e) => format!("port {} ({how}): {e}", p.port),
        None if p.bytes.is_empty() => format!(
            "port {} ({how}): no answer{}",
            p.port,
            if p.closed { ", closed" } else { "" }
        ),
        None => format!(
            "port {} ({how}): {} bytes \"{}\" after {:.1} ms{}",
            p.port,
            p.bytes.len(),
            escaped(&p.bytes, 24),
            p.answered_at.map_or(0.0, |t| (t - p.at) * 1e3),
            if p.closed {
                ", then closed"
            } else {
                ", left open"
            }
        ),
    }
}

/// The lab's connections before the first that may kill a fragile server:
/// what the server checks judge.
fn judging(seen: &Observed) -> &[Probe] {
    let risky = seen
        .probes
        .iter()
        .position(|p| p.kind != ProbeKind::Listen)
        .unwrap_or(seen.probes.len());
    &seen.probes[..risky]
}

fn reachable(seen: &Observed, announced: &BTreeMap<u16, usize>) -> Check {
    const ID: &str = "server.reachable";
    const TITLE: &str = "its timestamp server is reachable on the announced port";
    if announced.is_empty() {
        return not_measured(
            ID,
            TITLE,
            "no announcement reached the lab, so no peer knows a port to connect to",
        );
    }
    let tried: Vec<&Probe> = seen
        .probes
        .iter()
        .filter(|p| announced.contains_key(&p.port))
        .collect();
    let Some(first) = tried.first() else {
        return not_measured(
            ID,
            TITLE,
            "the lab made no connection to the announced port",
        );
    };
    let connected: Vec<&&Probe> = tried.iter().filter(|p| p.connect_error.is_none()).collect();
    let evidence = format!(
        "{} of {} lab connections to the announced port succeeded, e.g. {}",
        connected.len(),
        tried.len(),
        probe_text(connected.first().copied().copied().unwrap_or(first))
    );
    let verdict = if connected.is_empty() {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    check(ID, TITLE, verdict, evidence)
}

fn port_zero(seen: &Observed, announced: &BTreeMap<u16, usize>) -> Check {
    const ID: &str = "server.port_zero";
    const TITLE: &str = "its TCP server binds port 0 (the OS chooses the port)";
    let (lo, hi) = seen.port_range;
    let (ports, what): (Vec<u16>, &str) = if seen.listening.is_empty() {
        (announced.keys().copied().collect(), "announced")
    } else {
        (seen.listening.iter().copied().collect(), "listening")
    };
    if ports.is_empty() {
        return not_measured(ID, TITLE, "no listening or announced port");
    }
    let list = |ports: &[u16]| {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let outside: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| !(lo..=hi).contains(p))
        .collect();
    if outside.is_empty() {
        check(
            ID,
            TITLE,
            Verdict::Pass,
            format!(
                "{what} port {} is inside the range {lo}-{hi} the lab gave its namespace for the OS to choose from",
                list(&ports)
            ),
        )
    } else {
        check(
            ID,
            TITLE,
            Verdict::Fail,
            format!(
                "{what} port {} is outside the range {lo}-{hi} the lab gave its namespace for the OS to choose from: the port is hard-coded",
                list(&outside)
            ),
        )
    }
}

/// A listening client's answer later than this means the server waited for it first.
const SLOW_ANSWER_SECS: f64 = crate::protocol::SERVER_FIRST_WITHIN.as_secs_f64();

fn speaks_first(seen: &Observed) -> Check {
    const ID: &str = "server.speaks_first";
    const TITLE: &str = "it answers without waiting for the client";
    let listened: Vec<&Probe> = judging(seen)
        .iter()
        .filter(|p| p.connect_error.is_none())
        .collect();
    if listened.is_empty() {
        return not_measured(
            ID,
            TITLE,
            "no lab connection succeeded (see server.reachable)",
        );
    }
    let latency = |p: &Probe| p.answered_at.map_or(0.0, |t| t - p.at);
    let (unprompted, waited): (Vec<&Probe>, Vec<&Probe>) =
        listened.iter().partition(|p| p.answered_unprompted());
    let prompted: Vec<&Probe> = waited.iter().copied().filter(|p| p.answered()).collect();
    if unprompted.is_empty() {
        let mute = format!(
            "none of {} clients that listened first got a word in {LISTEN_BEFORE_SPEAKING:.1} s",
            listened.len()
        );
        return match prompted.first() {
            Some(p) => check(
                ID,
                TITLE,
                Verdict::Fail,
                format!(
                    "{mute}; once the lab wrote its time as text, it answered {} of them, e.g. {}: it waits for the client (client-first), so clients that wait to be spoken to hang",
                    prompted.len(),
                    probe_text(p)
                ),
            ),
            None => check(
                ID,
                TITLE,
                Verdict::Fail,
                format!(
                    "{mute}, nor after the lab wrote its time as text, e.g. {}: it never answers",
                    probe_text(listened[0])
                ),
            ),
        };
    }
    let slowest = unprompted
        .iter()
        .copied()
        .max_by(|a, b| latency(a).total_cmp(&latency(b)));
    let slowest_ms = slowest.map_or(0.0, |p| latency(p) * 1000.0);
    let evidence = format!(
        "{} of {} clients that listened first got its time unprompted, at most {slowest_ms:.1} ms after connecting",
        unprompted.len(),
        listened.len()
    );
    if !waited.is_empty() {
        check(
            ID,
            TITLE,
            Verdict::Warn,
            format!(
                "{evidence}; {} others waited over {LISTEN_BEFORE_SPEAKING:.1} s, e.g. {}",
                waited.len(),
                probe_text(waited[0])
            ),
        )
    } else if slowest_ms > SLOW_ANSWER_SECS * 1000.0 {
        check(
            ID,
            TITLE,
            Verdict::Warn,
            format!(
                "{evidence}: it waits for the client before answering (a read with a timeout?)"
            ),
        )
    } else {
        check(ID, TITLE, Verdict::Pass, evidence)
    }
}

fn closes(seen: &Observed) -> Check {
    const ID: &str = "server.closes";
    const TITLE: &str = "it closes the connection after answering";
    let answered: Vec<&Probe> = judging(seen).iter().filter(|p| p.answered()).collect();
    if answered.is_empty() {
        return not_measured(ID, TITLE, "it never answered the lab");
    }
    let open: Vec<&&Probe> = answered.iter().filter(|p| !p.closed).collect();
    match open.first() {
        None => check(
            ID,
            TITLE,
            Verdict::Pass,
            format!("closed all {} answered connections", answered.len()),
        ),
        Some(p) => check(
            ID,
            TITLE,
            Verdict::Fail,
            format!(
                "{} of {} answered connections left open, e.g. {}",
                open.len(),
                answered.len(),
                probe_text(p)
            ),
        ),
    }
}

/// The first answer the lab got before any client that may kill a server.
fn first_answer(seen: &Observed) -> Option<&Probe> {
    judging(seen).iter().find(|p| p.answered())
}

fn encoding(seen: &Observed) -> Check {
    const ID: &str = "server.encoding";
    const TITLE: &str = "its time is an 8-byte big-endian double (struct.pack(\"!d\", t))";
    let Some(p) = first_answer(seen) else {
        return not_measured(ID, TITLE, "it never answered the lab");
    };
    let at = p.answered_at.unwrap_or(p.at);
    let bytes = format!("{} bytes \"{}\"", p.bytes.len(), escaped(&p.bytes, 24));
    match decode_timestamp(&p.bytes, at) {
        Ok(d) => match d.dialect {
            crate::protocol::Dialect::BinaryBe => check(
                ID,
                TITLE,
                Verdict::Pass,
                format!("{bytes}: !d, {:.6}", d.seconds),
            ),
            other => check(
                ID,
                TITLE,
                Verdict::Warn,
                format!(
                    "{bytes}: {other} ({:.6}); sdss reads it, but peers that unpack \"!d\" do not",
                    d.seconds
                ),
            ),
        },
        Err(TimestampError::Float32 {
            seconds,
            resolution_secs,
        }) => check(
            ID,
            TITLE,
            Verdict::Fail,
            format!(
                "{bytes}: a 4-byte float ({seconds:.0}); at today's epoch its resolution is {resolution_secs:.0} s, so no delay can be measured"
            ),
        ),
        Err(e) => check(ID, TITLE, Verdict::Fail, format!("{bytes}: {e}")),
    }
}

fn utc(seen: &Observed) -> Check {
    const ID: &str = "server.utc";
    const TITLE: &str = "its time is UTC";
    let Some(p) = first_answer(seen) else {
        return not_measured(ID, TITLE, "it never answered the lab");
    };
    let at = p.answered_at.unwrap_or(p.at);
    let (seconds, resolution) = match decode_timestamp(&p.bytes, at) {
        Ok(d) => (d.seconds, 0.0),
        Err(TimestampError::Float32 {
            seconds,
            resolution_secs,
        }) => (seconds, resolution_secs),
        Err(e) => return not_measured(ID, TITLE, &format!("its answer is no time ({e})")),
    };
    let offset = seconds - at;
    if let Some(hours) = time_zone_offset_hours(offset).filter(|_| offset.abs() > resolution) {
        return check(
            ID,
            TITLE,
            Verdict::Fail,
            format!(
                "its clock reads {offset:+.1} s from the lab's (the same kernel clock): {hours:+} h, a time zone: it sends local time, not UTC"
            ),
        );
    }
    if offset.abs() <= 1.0_f64.max(resolution) {
        let note = if resolution > 0.0 {
            format!(" (within the 4-byte float's {resolution:.0} s resolution)")
        } else {
            String::new()
        };
        check(
            ID,
            TITLE,
            Verdict::Pass,
            format!("{offset:+.3} s from the lab's clock{note}"),
        )
    } else {
        check(
            ID,
            TITLE,
            Verdict::Fail,
            format!("{offset:+.1} s from the lab's clock, which shares the kernel's clock: not the current UTC time"),
        )
    }
}

fn robust(seen: &Observed) -> Check {
    const ID: &str = "server.robust";
    const TITLE: &str =
        "its server survives clients that write nothing or write !d first (both exist)";
    let risky: Vec<(usize, &Probe)> = seen
        .probes
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind != ProbeKind::Listen && p.connect_error.is_none())
        .collect();
    let Some(&(first, _)) = risky.first() else {
        return check(
            ID,
            TITLE,
            Verdict::Warn,
            "not measured: the run ended before the lab tried such clients".to_owned(),
        );
    };
    if !seen.probes[..first].iter().any(Probe::answered) {
        return not_measured(ID, TITLE, "it never answered the lab before");
    }
    for &(i, p) in &risky {
        let after = &seen.probes[i + 1..];
        if !after.is_empty() && !after.iter().any(Probe::answered) {
            let sent = match p.kind {
                ProbeKind::Binary => "wrote its time as !d (8 bytes) first",
                _ => "wrote nothing and closed",
            };
            return check(
                ID,
                TITLE,
                Verdict::Fail,
                format!(
                    "a client that {sent} at {} stopped its server: {} later connection(s) got no answer, e.g. {}; any peer of the assignment may send that",
                    secs(p.at, seen),
                    after.len(),
                    probe_text(&after[0])
                ),
            );
        }
    }
    let tried: Vec<String> = risky
        .iter()
        .map(|(_, p)| format!("{} ({})", probe_text(p), secs(p.at, seen)))
        .collect();
    check(
        ID,
        TITLE,
        Verdict::Pass,
        format!("it answered again after each of: {}", tried.join("; ")),
    )
}

/// The end of an observer's life in the run.
fn end_of(o: &Observer, seen: &Observed) -> f64 {
    o.killed_at.unwrap_or(seen.timeline.ended_at)
}

fn prompt(seen: &Observed) -> Check {
    const ID: &str = "client.prompt";
    const TITLE: &str = "it connects promptly to a newly started node";
    let mut worst: Option<(f64, String)> = None;
    let mut lines = Vec::new();
    for o in &seen.observers {
        let Some(started) = o.started_at else {
            continue;
        };
        let from = started.max(seen.timeline.started_at);
        match o.connections.iter().find(|t| **t >= from - 0.5) {
            Some(t) => {
                let after = t - from;
                lines.push(format!("{} after {after:.1} s", o.name));
                if worst.as_ref().is_none_or(|(w, _)| after > *w) {
                    worst = Some((after, o.name.clone()));
                }
            }
            None if end_of(o, seen) - from > 5.0 => {
                lines.push(format!("{} never", o.name));
                worst = Some((f64::INFINITY, o.name.clone()));
            }
            None => {}
        }
    }
    let evidence = format!("first connection to each sdss node: {}", lines.join(", "));
    match worst {
        None => not_measured(ID, TITLE, "no sdss node ran long enough"),
        Some((w, _)) if w <= 3.0 => check(ID, TITLE, Verdict::Pass, evidence),
        Some((w, _)) if w <= 10.0 => check(ID, TITLE, Verdict::Warn, evidence + ": slow"),
        Some(_) => check(ID, TITLE, Verdict::Fail, evidence),
    }
}

fn refresh(seen: &Observed) -> Check {
    const ID: &str = "client.refresh";
    const TITLE: &str =
        "then about once per 10 of that node's broadcasts, never on every broadcast";
    let mut lines = Vec::new();
    let (mut broadcasts, mut refreshes) = (0usize, 0usize);
    let mut lowest = f64::INFINITY;
    // A client that got stuck is judged on its cadence until then (the stuck
    // steps say the rest).
    let stuck_at = stuck(seen).map_or(f64::INFINITY, |s| s.since.1);
    for o in &seen.observers {
        let Some(first) = o.connections.first() else {
            continue;
        };
        let end = end_of(o, seen).min(stuck_at);
        let b = o
            .broadcasts
            .iter()
            .filter(|t| **t > *first && **t <= end)
            .count();
        let r = o.connections.len() - 1;
        lines.push(format!(
            "{}: {} connections, {b} broadcasts after the first",
            o.name,
            r + 1
        ));
        if b >= 10 {
            broadcasts += b;
            refreshes += r;
            lowest = lowest.min(b as f64 / r.max(1) as f64);
        }
    }
    let detail = lines.join("; ");
    if broadcasts == 0 {
        return check(
            ID,
            TITLE,
            Verdict::Fail,
            if detail.is_empty() {
                "not measured: it never connected to any sdss node".to_owned()
            } else {
                format!("not measured: it connected to no sdss node long enough ({detail})")
            },
        );
    }
    if refreshes == 0 {
        return check(
            ID,
            TITLE,
            Verdict::Warn,
            format!("it never measured a node again after {broadcasts} broadcasts ({detail})"),
        );
    }
    let ratio = broadcasts as f64 / refreshes as f64;
    let evidence = format!("one connection per {ratio:.1} broadcasts ({detail})");
    if lowest < 3.0 {
        check(
            ID,
            TITLE,
            Verdict::Fail,
            format!("{evidence}: it connects on (nearly) every broadcast, cramming the network"),
        )
    } else if (6.0..=16.0).contains(&ratio) {
        check(ID, TITLE, Verdict::Pass, evidence)
    } else {
        check(
            ID,
            TITLE,
            Verdict::Warn,
            format!("{evidence}: not every 10 broadcasts"),
        )
    }
}

fn joined(seen: &Observed) -> Check {
    const ID: &str = "client.joined";
    const TITLE: &str = "it finds a node that joined during the run";
    let Some((name, at)) = &seen.timeline.joined else {
        return check(
            ID,
            TITLE,
            Verdict::Warn,
            "not measured: no node joined during this run".to_owned(),
        );
    };
    let connections = seen
        .observers
        .iter()
        .find(|o| &o.name == name)
        .map_or(0, |o| o.connections.len());
    if connections > 0 {
        check(
            ID,
            TITLE,
            Verdict::Pass,
            format!(
                "{name} joined at {}; it connected to it {connections} time(s)",
                secs(*at, seen)
            ),
        )
    } else {
        check(
            ID,
            TITLE,
            Verdict::Fail,
            format!(
                "{name} joined at {} and it never connected to it",
                secs(*at, seen)
            ),
        )
    }
}

/// The steps of the scenario that happened, in time order.
fn steps(seen: &Observed) -> Vec<(String, f64)> {
    let t = &seen.timeline;
    let mut steps: Vec<(String, f64)> = [
        t.silent_at
            .map(|at| ("the silent peer appeared".to_owned(), at)),
        t.joined
            .as_ref()
            .map(|(n, at)| (format!("{n} joined"), *at)),
        t.burst_at.map(|at| ("the malformed burst".to_owned(), at)),
        t.killed
            .as_ref()
            .map(|(n, at)| (format!("{n} was killed"), *at)),
    ]
    .into_iter()
    .flatten()
    .collect();
    steps.sort_by(|a, b| a.1.total_cmp(&b.1));
    steps
}

/// A client that stopped connecting to anyone during the run.
struct Stuck {
    /// The step it did not get past, and when.
    since: (String, f64),
    /// Its last connection.
    last_at: f64,
    /// To whom.
    last_to: String,
}

/// When its client stopped for good: it connected, then made no connection
/// after some step although the run went on. The step named is the silent
/// peer when that is whom it last connected to, else the first step after
/// its last connection.
fn stuck(seen: &Observed) -> Option<Stuck> {
    let (last_at, last_to) = seen
        .observers
        .iter()
        .flat_map(|o| o.connections.iter().map(|t| (*t, o.name.clone())))
        .chain(
            seen.silent_peer_connections
                .iter()
                .map(|t| (*t, "the silent peer".to_owned())),
        )
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    let steps = steps(seen);
    let since = match (&seen.timeline.silent_at, last_to.as_str()) {
        (Some(at), "the silent peer") => steps.iter().find(|(_, t)| t == at),
        _ => steps.iter().find(|(_, t)| *t >= last_at),
    }?;
    // It had time to connect again: a refresh period and more.
    let quiet = seen.timeline.ended_at - last_at.max(since.1);
    (quiet >= 2.0 * SETTLE_SECS + 4.0).then(|| Stuck {
        since: since.clone(),
        last_at,
        last_to,
    })
}

/// Whether it still broadcast, served and measured others after `event`.
fn survives(seen: &Observed, id: &str, title: &str, event: Option<(String, f64)>) -> Check {
    let Some((what, at)) = event else {
        return check(
            id,
            title,
            Verdict::Warn,
            "not measured: this step was not part of the run".to_owned(),
        );
    };
    let after = at + SETTLE_SECS;
    let mut broken = Vec::new();
    let mut fine = Vec::new();
    if !seen.datagrams.is_empty() {
        let n = seen.datagrams.iter().filter(|d| d.at > after).count();
        if n == 0 {
            broken.push("it stopped broadcasting".to_owned());
        } else {
            fine.push(format!("{n} datagrams"));
        }
    }
    let probes: Vec<&Probe> = seen.probes.iter().filter(|p| p.at > at).collect();
    if probes.iter().any(|p| p.answered()) {
        fine.push(format!(
            "answered {} of {} lab connections",
            probes.iter().filter(|p| p.answered()).count(),
            probes.len()
        ));
    } else if seen.probes.iter().any(|p| p.at <= at && p.answered()) || probes.is_empty() {
        broken.push(match probes.first() {
            Some(p) => format!("its server stopped answering ({})", probe_text(p)),
            None => "the lab did not probe its server afterwards".to_owned(),
        });
    }
    let measured: usize = seen
        .observers
        .iter()
        .filter(|o| o.killed_at.is_none_or(|k| k > after))
        .map(|o| o.connections.iter().filter(|t| **t > after).count())
        .sum();
    if measured > 0 {
        fine.push(format!("{measured} connections to sdss nodes"));
    } else {
        broken.push(match stuck(seen).filter(|s| s.since.1 <= at) {
            Some(s) => format!(
                "stuck since {} at {}: its last connection was to {} at {}, none since",
                s.since.0,
                secs(s.since.1, seen),
                s.last_to,
                secs(s.last_at, seen)
            ),
            None => "it measured no other node afterwards".to_owned(),
        });
    }
    if let Some(how) = &seen.exited {
        broken.push(format!("it died ({how})"));
    }
    let since = format!("after {what} at {}", secs(at, seen));
    if broken.is_empty() {
        check(
            id,
            title,
            Verdict::Pass,
            format!("{since}: {}", fine.join(", ")),
        )
    } else {
        check(
            id,
            title,
            Verdict::Fail,
            format!(
                "{since}: {}{}",
                broken.join(", "),
                if fine.is_empty() {
                    String::new()
                } else {
                    format!(" (still: {})", fine.join(", "))
                }
            ),
        )
    }
}

fn alive(seen: &Observed) -> Check {
    const ID: &str = "process.alive";
    const TITLE: &str = "it is still running at the end";
    match &seen.exited {
        None => check(
            ID,
            TITLE,
            Verdict::Pass,
            format!(
                "running after {:.0} s",
                seen.timeline.ended_at - seen.timeline.started_at
            ),
        ),
        Some(how) => check(ID, TITLE, Verdict::Fail, how.clone()),
    }
}

fn cpu(seen: &Observed) -> Check {
    const ID: &str = "process.cpu";
    const TITLE: &str = "it does not busy-loop (CPU over the run)";
    let (Some(first), Some(last)) = (seen.samples.first(), seen.samples.last()) else {
        return not_measured(ID, TITLE, "no sample");
    };
    let wall = last.at - first.at;
    if wall <= 0.0 || seen.samples.len() < 3 {
        return not_measured(ID, TITLE, "too few samples");
    }
    let percent = (last.cpu_secs - first.cpu_secs) / wall * 100.0;
    let runnable = seen.samples.iter().filter(|s| s.runnable).count() as f64
        / seen.samples.len() as f64
        * 100.0;
    let evidence = format!(
        "{percent:.1}% of a CPU over {wall:.0} s; runnable in {runnable:.0}% of {} samples",
        seen.samples.len()
    );
    if percent >= 50.0 || runnable >= 60.0 {
        check(ID, TITLE, Verdict::Fail, format!("{evidence}: a busy loop"))
    } else if percent >= 20.0 || runnable >= 25.0 {
        check(
            ID,
            TITLE,
            Verdict::Warn,
            format!("{evidence}: busier than a node that sleeps between broadcasts"),
        )
    } else {
        check(ID, TITLE, Verdict::Pass, evidence)
    }
}

fn memory(seen: &Observed) -> Check {
    const ID: &str = "process.memory";
    const TITLE: &str = "its memory stays bounded";
    let (Some(first), Some(last)) = (seen.samples.first(), seen.samples.last()) else {
        return not_measured(ID, TITLE, "no sample");
    };
    let peak = seen.samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let mb = |kb: u64| kb as f64 / 1024.0;
    let evidence = format!(
        "resident {:.1} MB at first, {:.1} MB at most, {:.1} MB at the end ({} process(es) at the end)",
        mb(first.rss_kb),
        mb(peak),
        mb(last.rss_kb),
        last.processes
    );
    if peak > 512 * 1024 {
        check(ID, TITLE, Verdict::Fail, evidence)
    } else if peak > 128 * 1024 {
        check(ID, TITLE, Verdict::Warn, evidence)
    } else {
        check(ID, TITLE, Verdict::Pass, evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::grade::observe::{Datagram, ProcessSample, Timeline};
    use crate::protocol::{encode_timestamp, Dialect};

    const T0: f64 = 1_800_000_000.0;
    const PORT: u16 = 52_483;

    fn datagram(at: f64, text: &str) -> Datagram {
        Datagram {
            at,
            destination: Destination::Limited,
            payload: text.as_bytes().to_vec(),
        }
    }

    fn answer(at: f64, kind: ProbeKind, bytes: Vec<u8>) -> Probe {
        Probe {
            at,
            port: PORT,
            kind,
            spoke: (kind == ProbeKind::Binary).then_some((at, Dialect::BinaryBe)),
            connect_error: None,
            bytes,
            answered_at: Some(at + 0.001),
            closed: true,
        }
    }

    fn observer(name: &str, every: f64, refresh: usize, killed: Option<f64>) -> Observer {
        let end = killed.unwrap_or(T0 + 24.0);
        let broadcasts: Vec<f64> = (0..)
            .map(|i| T0 + i as f64 * every)
            .take_while(|t| *t < end)
            .collect();
        let connections = broadcasts
            .iter()
            .step_by(refresh)
            .map(|t| t + 0.3)
            .collect();
        Observer {
            name: name.into(),
            started_at: Some(T0),
            killed_at: killed,
            broadcasts,
            connections,
            heard_graded: 24,
        }
    }

    /// What the lab sees of a correct node over a 24 s run.
    fn correct() -> Observed {
        // As the probe makes them: listening until t=15 s, then a mute client
        // that gives up and a binary one, each followed by listening ones.
        let probes = (0..15)
            .map(|i| {
                let at = T0 + 1.5 * (i + 1) as f64;
                let kind = match i {
                    9 => ProbeKind::CloseMute,
                    11 => ProbeKind::Binary,
                    _ => ProbeKind::Listen,
                };
                answer(at, kind, encode_timestamp(at, Dialect::BinaryBe))
            })
            .collect();
        Observed {
            node: "s".into(),
            command: vec!["python3".into(), "s.py".into()],
            address: Some("198.18.0.4".parse().unwrap()),
            port_range: (52_000, 52_999),
            datagrams: (0..24)
                .map(|i| datagram(T0 + i as f64, &format!("bf19618f ON {PORT}")))
                .collect(),
            observers: vec![
                observer("a", 0.25, 10, None),
                observer("b", 0.25, 10, None),
                observer("c", 0.25, 10, Some(T0 + 12.0)),
                Observer {
                    started_at: Some(T0 + 8.0),
                    ..observer("joiner", 1.0, 10, None)
                },
            ],
            probes,
            listening: [PORT].into(),
            self_connections: 0,
            silent_peer_connections: vec![T0 + 6.1, T0 + 8.2, T0 + 12.3, T0 + 16.4],
            samples: (0..96)
                .map(|i| ProcessSample {
                    at: T0 + i as f64 * 0.25,
                    cpu_secs: 0.1 + i as f64 * 0.001,
                    rss_kb: 15_000,
                    runnable: i % 50 == 0,
                    processes: 1,
                })
                .collect(),
            exited: None,
            timeline: Timeline {
                started_at: T0,
                ended_at: T0 + 24.0,
                joined: Some(("joiner".into(), T0 + 8.0)),
                killed: Some(("c".into(), T0 + 12.0)),
                silent_at: Some(T0 + 6.0),
                burst_at: Some(T0 + 10.0),
            },
        }
    }

    fn failing(seen: &Observed) -> Vec<String> {
        grade(seen)
            .checks
            .iter()
            .filter(|c| c.verdict != Verdict::Pass)
            .map(|c| format!("{} {:?}", c.id, c.verdict))
            .collect()
    }

    #[test]
    fn a_correct_node_passes_every_check() {
        let list = grade(&correct());
        assert_eq!(list.checks.len(), 21);
        assert!(
            list.checks.iter().all(|c| c.verdict == Verdict::Pass),
            "{}",
            list.render()
        );
        assert_eq!(list.score, 100.0);
    }

    #[test]
    fn a_four_byte_float_fails_the_encoding_only_and_states_the_resolution() {
        let mut seen = correct();
        for p in &mut seen.probes {
            p.bytes = encode_timestamp(p.at, Dialect::Float32);
        }
        assert_eq!(failing(&seen), ["server.encoding Fail"]);
        let list = grade(&seen);
        let evidence = &list.check("server.encoding").unwrap().evidence;
        assert!(evidence.contains("resolution is 128 s"), "{evidence}");
    }

    #[test]
    fn text_and_little_endian_are_warned() {
        let mut seen = correct();
        for p in &mut seen.probes {
            p.bytes = encode_timestamp(p.at, Dialect::Ascii);
        }
        assert_eq!(failing(&seen), ["server.encoding Warn"]);
        for p in &mut seen.probes {
            p.bytes = encode_timestamp(p.at, Dialect::BinaryLe);
        }
        assert_eq!(failing(&seen), ["server.encoding Warn"]);
    }

    #[test]
    fn local_time_fails_utc_with_the_hours() {
        let mut seen = correct();
        for p in &mut seen.probes {
            p.bytes = encode_timestamp(p.at - 7.0 * 3600.0, Dialect::BinaryBe);
        }
        assert_eq!(failing(&seen), ["server.utc Fail"]);
        let list = grade(&seen);
        assert!(list.check("server.utc").unwrap().evidence.contains("-7 h"));
    }

    #[test]
    fn a_connection_on_every_broadcast_fails_the_refresh() {
        let mut seen = correct();
        seen.observers = vec![observer("a", 0.25, 1, None), observer("b", 0.25, 1, None)];
        seen.timeline.killed = None;
        seen.timeline.joined = None;
        let result = failing(&seen);
        assert!(
            result.contains(&"client.refresh Fail".to_owned()),
            "{result:?}"
        );
    }

    #[test]
    fn a_port_outside_the_ephemeral_range_is_hard_coded() {
        let mut seen = correct();
        seen.listening = [5000].into();
        for d in &mut seen.datagrams {
            d.payload = b"bf19618f ON 5000".to_vec();
        }
        for p in &mut seen.probes {
            p.port = 5000;
        }
        assert_eq!(failing(&seen), ["server.port_zero Fail"]);
    }

    #[test]
    fn announcing_a_port_it_does_not_listen_on_fails_port_and_reachability() {
        let mut seen = correct();
        for d in &mut seen.datagrams {
            d.payload = format!("bf19618f ON {}", PORT + 1).into_bytes();
        }
        let mut refused = seen.probes.clone();
        for p in &mut refused {
            p.port = PORT + 1;
            p.connect_error = Some("refused".into());
            p.bytes.clear();
        }
        seen.probes.extend(refused);
        assert_eq!(
            failing(&seen),
            ["announce.port Fail", "server.reachable Fail"]
        );
    }

    /// The server answers a listening client only once it wrote its time,
    /// in `dialect`.
    fn client_first(seen: &mut Observed, dialect: Dialect) {
        for p in seen.probes.iter_mut() {
            match p.kind {
                ProbeKind::Listen => {
                    let spoke = p.at + LISTEN_BEFORE_SPEAKING;
                    p.spoke = Some((spoke, Dialect::Ascii));
                    p.answered_at = Some(spoke + 0.0004);
                    p.bytes = encode_timestamp(spoke, dialect);
                }
                ProbeKind::CloseMute => {
                    p.bytes.clear();
                    p.answered_at = None;
                }
                ProbeKind::Binary => {}
            }
        }
    }

    #[test]
    fn a_server_that_waits_for_the_client_fails_speaks_first() {
        let mut seen = correct();
        client_first(&mut seen, Dialect::BinaryBe);
        assert_eq!(failing(&seen), ["server.speaks_first Fail"]);
        let list = grade(&seen);
        let evidence = &list.check("server.speaks_first").unwrap().evidence;
        assert!(
            evidence.contains("once the lab wrote its time as text, it answered 9 of them")
                && evidence.contains("client-first"),
            "{evidence}"
        );
    }

    #[test]
    fn a_text_client_first_server_killed_by_a_mute_client_is_judged_before_and_blamed_after() {
        let mut seen = correct();
        client_first(&mut seen, Dialect::Ascii);
        // The mute client at t=15 s killed it: nothing answers after.
        for p in seen.probes.iter_mut().filter(|p| p.at > T0 + 15.0) {
            p.bytes.clear();
            p.answered_at = None;
            p.closed = false;
        }
        assert_eq!(
            failing(&seen),
            [
                "server.speaks_first Fail",
                "server.encoding Warn",
                "server.robust Fail"
            ]
        );
        let list = grade(&seen);
        let evidence = |id: &str| list.check(id).unwrap().evidence.clone();
        assert!(
            evidence("server.encoding").contains("ascii"),
            "{}",
            list.render()
        );
        assert!(
            evidence("server.utc").contains("0.000 s from the lab's clock"),
            "{}",
            list.render()
        );
        let robust = evidence("server.robust");
        assert!(
            robust.contains("wrote nothing and closed at t=15.0s stopped its server"),
            "{robust}"
        );
    }

    #[test]
    fn a_server_that_survives_every_client_is_robust() {
        let list = grade(&correct());
        let robust = &list.check("server.robust").unwrap().evidence;
        assert!(
            robust.contains("writing nothing, then closing") && robust.contains("as !d at once"),
            "{robust}"
        );
    }

    #[test]
    fn a_server_that_waits_a_while_before_answering_is_warned() {
        let mut seen = correct();
        for p in seen
            .probes
            .iter_mut()
            .filter(|p| p.kind == ProbeKind::Listen)
        {
            p.answered_at = Some(p.at + 0.5);
        }
        assert_eq!(failing(&seen), ["server.speaks_first Warn"]);
    }

    #[test]
    fn a_client_stuck_on_the_silent_peer_is_stuck_since_then_in_every_later_step() {
        let mut seen = correct();
        // Its only client thread connected to the silent peer at 6.05 s and never came back.
        seen.silent_peer_connections = vec![T0 + 6.05];
        for o in &mut seen.observers {
            o.connections
                .retain(|t| *t < T0 + 6.0 && o.name != "joiner");
        }
        let list = grade(&seen);
        for id in ["client.silent_peer", "client.killed", "client.malformed"] {
            let check = list.check(id).unwrap();
            assert_eq!(check.verdict, Verdict::Fail, "{}", list.render());
            assert!(
                check.evidence.contains(
                    "stuck since the silent peer appeared at t=6.0s: its last connection was to the silent peer at t=6.0s"
                ),
                "{id}: {}",
                check.evidence
            );
        }
        assert_eq!(list.check("client.joined").unwrap().verdict, Verdict::Fail);
    }

    #[test]
    fn a_server_that_never_answers_fails_everything_it_serves() {
        let mut seen = correct();
        for p in &mut seen.probes {
            p.bytes.clear();
            p.answered_at = None;
        }
        let result = failing(&seen);
        for id in [
            "server.speaks_first",
            "server.closes",
            "server.encoding",
            "server.utc",
        ] {
            assert!(result.contains(&format!("{id} Fail")), "{result:?}");
        }
    }

    #[test]
    fn a_busy_loop_fails_cpu() {
        let mut seen = correct();
        for (i, s) in seen.samples.iter_mut().enumerate() {
            s.cpu_secs = i as f64 * 0.25 * 0.95;
            s.runnable = true;
        }
        assert_eq!(failing(&seen), ["process.cpu Fail"]);
    }

    #[test]
    fn a_node_nobody_hears_fails_what_depends_on_hearing_it() {
        let mut seen = correct();
        seen.datagrams.clear();
        for o in &mut seen.observers {
            o.heard_graded = 0;
        }
        assert_eq!(
            failing(&seen),
            [
                "announce.format Fail",
                "announce.port Fail",
                "announce.cadence Fail",
                "announce.heard Fail",
                "server.reachable Fail"
            ]
        );
    }

    #[test]
    fn only_directed_broadcasts_are_a_warning() {
        let mut seen = correct();
        for d in &mut seen.datagrams {
            d.destination = Destination::Directed;
        }
        assert_eq!(failing(&seen), ["announce.heard Warn"]);
    }

    #[test]
    fn malformed_announcements_and_trailing_bytes() {
        let mut seen = correct();
        seen.datagrams[3].payload = b"bf19618f ON 52483\n".to_vec();
        assert_eq!(failing(&seen), ["announce.format Warn"]);
        seen.datagrams[4].payload = b"bf19618f on 52483".to_vec();
        assert_eq!(failing(&seen), ["announce.format Fail"]);
    }

    #[test]
    fn a_slow_cadence_fails() {
        let mut seen = correct();
        for (i, d) in seen.datagrams.iter_mut().enumerate() {
            d.at = T0 + i as f64 * 3.0;
        }
        seen.datagrams.truncate(8);
        let list = grade(&seen);
        assert_eq!(
            list.check("announce.cadence").unwrap().verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn dying_after_the_burst_fails_the_malformed_step_and_alive() {
        let mut seen = correct();
        let burst = T0 + 10.0;
        seen.datagrams.retain(|d| d.at < burst);
        seen.probes.retain(|p| p.at < burst);
        for o in &mut seen.observers {
            o.connections.retain(|t| *t < burst);
        }
        seen.exited = Some("it exited: exit status: 1".into());
        let result = failing(&seen);
        for id in ["client.malformed", "client.killed", "process.alive"] {
            assert!(result.contains(&format!("{id} Fail")), "{result:?}");
        }
    }

    #[test]
    fn connecting_to_itself_fails_own() {
        let mut seen = correct();
        seen.self_connections = 3;
        assert_eq!(failing(&seen), ["announce.own Fail"]);
    }

    #[test]
    fn never_connecting_to_the_joiner_fails_joined() {
        let mut seen = correct();
        if let Some(j) = seen.observers.iter_mut().find(|o| o.name == "joiner") {
            j.connections.clear();
        }
        let result = failing(&seen);
        assert!(
            result.contains(&"client.joined Fail".to_owned()),
            "{result:?}"
        );
    }
}
