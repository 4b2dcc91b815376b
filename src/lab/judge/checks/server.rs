//! The timestamp server, judged on the lab's listening connections first;
//! the clients that may kill it come last (`robust`).

use super::*;

pub(super) fn probe_text(p: &Probe) -> String {
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
pub(super) fn judging(seen: &Observed) -> &[Probe] {
    let risky = seen
        .probes
        .iter()
        .position(|p| p.kind != ProbeKind::Listen)
        .unwrap_or(seen.probes.len());
    &seen.probes[..risky]
}

pub(super) fn reachable(seen: &Observed, announced: &BTreeMap<u16, usize>) -> Check {
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

pub(super) fn port_zero(seen: &Observed, announced: &BTreeMap<u16, usize>) -> Check {
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

pub(super) fn speaks_first(seen: &Observed) -> Check {
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
    let mut latencies: Vec<f64> = unprompted.iter().map(|p| latency(p)).collect();
    latencies.sort_by(f64::total_cmp);
    let slowest_ms = latencies.last().map_or(0.0, |l| l * 1000.0);
    // The median, not the slowest: a server that reads with a timeout is slow
    // every time; one answer late on a loaded machine is the machine.
    let median_ms = latencies[latencies.len() / 2] * 1000.0;
    let evidence = format!(
        "{} of {} clients that listened first got its time unprompted, {median_ms:.1} ms after connecting (median), at most {slowest_ms:.1} ms",
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
    } else if median_ms > SLOW_ANSWER_SECS * 1000.0 {
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

pub(super) fn closes(seen: &Observed) -> Check {
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
pub(super) fn first_answer(seen: &Observed) -> Option<&Probe> {
    judging(seen).iter().find(|p| p.answered())
}

pub(super) fn encoding(seen: &Observed) -> Check {
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

pub(super) fn utc(seen: &Observed) -> Check {
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

pub(super) fn robust(seen: &Observed) -> Check {
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
        // The lab tries them only on a server that answered it.
        if !seen.probes.iter().any(Probe::answered) {
            return not_measured(ID, TITLE, "it never answered the lab");
        }
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
