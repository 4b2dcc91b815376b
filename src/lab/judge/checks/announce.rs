//! Announcements: their format, port, cadence and reach.

use super::*;

pub(super) fn format(seen: &Observed) -> Check {
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

pub(super) fn listening_text(seen: &Observed) -> String {
    if seen.listening.is_empty() {
        "no listening TCP port".to_owned()
    } else {
        let ports: Vec<String> = seen.listening.iter().map(u16::to_string).collect();
        format!("listening TCP port(s) {}", ports.join(", "))
    }
}

pub(super) fn announced_port(seen: &Observed, announced: &BTreeMap<u16, usize>) -> Check {
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
pub(super) fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Arrival times grouped into ticks, and the most datagrams one tick had. A
/// datagram joins the tick it follows when it comes within [`SAME_TICK_SECS`]
/// of the tick's first, or, to a destination the tick has not had yet, within
/// half a period: a program sending one datagram per destination may be held
/// between its sends by a loaded machine, and that is one tick, not two.
pub(super) fn ticks(seen: &Observed) -> (Vec<f64>, usize) {
    let mut ticks: Vec<f64> = Vec::new();
    let mut destinations: Vec<Destination> = Vec::new();
    let mut per_tick = 0;
    for d in &seen.datagrams {
        let same = ticks.last().is_some_and(|start| {
            let after = d.at - start;
            after < SAME_TICK_SECS
                || (after < EXPECTED_INTERVAL_SECS / 2.0 && !destinations.contains(&d.destination))
        });
        if !same {
            ticks.push(d.at);
            destinations.clear();
        }
        destinations.push(d.destination);
        per_tick = per_tick.max(destinations.len());
    }
    (ticks, per_tick)
}

/// How far a gap may be from the period and still be on it.
const ON_PERIOD_SECS: f64 = 0.25;

pub(super) fn cadence(seen: &Observed) -> Check {
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
    // A regular cadence has a small spread, or keeps nearly every gap on the
    // period: a loaded machine may hold a right program now and then (and one
    // may phase its second announcement, as sdss does), which a spread alone
    // counts against it; an irregular program is off again and again.
    let off = gaps
        .iter()
        .filter(|g| (*g - EXPECTED_INTERVAL_SECS).abs() > ON_PERIOD_SECS)
        .count();
    let allowed = (gaps.len() / 5).max(3);
    let mut evidence = format!(
        "{} announcements, every {mean:.3} s on average (spread {sd:.3} s, {off} of {} gaps more than {ON_PERIOD_SECS} s off the period, longest gap {max:.2} s)",
        ticks.len(),
        gaps.len()
    );
    if per_tick > 1 {
        evidence.push_str(&format!(
            "; up to {per_tick} datagrams per tick (several destinations)"
        ));
    }
    let regular = sd <= 0.25 || off <= allowed;
    let verdict = if (mean - EXPECTED_INTERVAL_SECS).abs() <= 0.15 && regular && max < 3.0 {
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

pub(super) fn own_datagrams(seen: &Observed) -> Check {
    const ID: &str = "announce.own";
    const TITLE: &str = "it ignores its own datagrams";
    if seen.self_connections == 0 && seen.datagrams.is_empty() {
        not_measured(
            ID,
            TITLE,
            "it sent no datagram, so it had none of its own to ignore",
        )
    } else if seen.self_connections == 0 {
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

pub(super) fn heard(seen: &Observed) -> Check {
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
