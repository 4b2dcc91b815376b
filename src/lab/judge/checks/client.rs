//! The client: whom it measures, how often, and whether each step of the
//! scenario stopped it.

use super::server::probe_text;
use super::*;

/// The end of an observer's life in the run.
pub(super) fn end_of(o: &Observer, seen: &Observed) -> f64 {
    o.killed_at.unwrap_or(seen.timeline.ended_at)
}

pub(super) fn prompt(seen: &Observed) -> Check {
    const ID: &str = "client.prompt";
    const TITLE: &str = "it connects promptly to a newly started node";
    let mut worst: Option<(f64, String)> = None;
    let mut lines = Vec::new();
    // Promptness counts from when both were running: a graded program that a
    // loaded machine started seconds after the sdss nodes could not have
    // connected before it ran. Its first datagram says it runs, and so does
    // its first connection (a program nobody hears still connects).
    let first_heard = seen
        .datagrams
        .first()
        .map(|d| d.at)
        .into_iter()
        .chain(seen.observers.iter().flat_map(|o| {
            let started = o.started_at.unwrap_or(f64::NEG_INFINITY);
            o.connections.iter().copied().filter(move |t| *t >= started)
        }))
        .chain(seen.silent_peer_connections.iter().copied())
        .filter(|t| *t >= seen.timeline.started_at)
        .min_by(f64::total_cmp);
    for o in &seen.observers {
        let Some(started) = o.started_at else {
            continue;
        };
        let from = started.max(seen.timeline.started_at);
        let both_running = from.max(first_heard.unwrap_or(from));
        match o.connections.iter().find(|t| **t >= from - 0.5) {
            Some(t) => {
                let after = (t - both_running).max(0.0);
                lines.push(format!("{} after {after:.1} s", o.name));
                if worst.as_ref().is_none_or(|(w, _)| after > *w) {
                    worst = Some((after, o.name.clone()));
                }
            }
            None if end_of(o, seen) - both_running > 5.0 => {
                lines.push(format!("{} never", o.name));
                worst = Some((f64::INFINITY, o.name.clone()));
            }
            None => {}
        }
    }
    let mut evidence = format!("first connection to each sdss node: {}", lines.join(", "));
    if let Some(at) = first_heard.filter(|at| *at > seen.timeline.started_at + 0.5) {
        evidence.push_str(&format!(
            " (counted from {}, when it was first seen running: its first datagram or connection)",
            secs(at, seen)
        ));
    }
    match worst {
        None => not_measured(ID, TITLE, "no sdss node ran long enough"),
        Some((w, _)) if w <= 3.0 => check(ID, TITLE, Verdict::Pass, evidence),
        Some((w, _)) if w <= 10.0 => check(ID, TITLE, Verdict::Warn, evidence + ": slow"),
        Some(_) => check(ID, TITLE, Verdict::Fail, evidence),
    }
}

pub(super) fn refresh(seen: &Observed) -> Check {
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
        let (Some(first), Some(last)) = (o.connections.first(), o.connections.last()) else {
            continue;
        };
        let r = o.connections.len() - 1;
        // Whole periods only, first to last connection: a run cut short (the
        // client got stuck) would otherwise count a broken period's broadcasts
        // against one refresh, and fail a cadence that was right.
        let end = if r > 0 {
            *last
        } else {
            end_of(o, seen).min(stuck_at)
        };
        let b = o
            .broadcasts
            .iter()
            .filter(|t| **t > *first && **t <= end)
            .count();
        lines.push(format!(
            "{}: {} connections, {b} broadcasts from the first to the last",
            o.name,
            r + 1
        ));
        // One that never came back is judged once it had time to.
        if r > 0 || b >= 10 {
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

pub(super) fn joined(seen: &Observed) -> Check {
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
pub(super) fn steps(seen: &Observed) -> Vec<(String, f64)> {
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

/// How long a connection to the silent peer, still open at the end and
/// followed by no other, must have been open for its client to be called
/// stuck on it: past any timeout a client reasonably sets (`settimeout(5)`,
/// `10`: common in students' code; sdss gives up after 2 s,
/// `tests/grade/correct.py` after 3 s). A 4 s threshold called stuck a client
/// that reached the silent peer late with such a timeout; the run is extended
/// instead (by the probe, at most this much) until each connection to the
/// silent peer open at its end is closed by its client or this old.
const STUCK_OPEN_SECS: f64 = crate::lab::plan::GradeSettings::STUCK_OPEN.as_secs_f64();

/// A client that stopped connecting to anyone during the run.
pub(super) struct Stuck {
    /// The step it did not get past, and when.
    since: (String, f64),
    /// Its last connection.
    last_at: f64,
    /// To whom.
    last_to: String,
    /// How long that connection had been open at the end, when it was to the
    /// silent peer and still open.
    waiting: Option<f64>,
}

/// How the silent peer is named as a client's last connection.
const SILENT: &str = "the silent peer";

/// Its last connection: when, to whom, whether to the silent peer.
fn last_connection(seen: &Observed) -> Option<(f64, String, bool)> {
    seen.observers
        .iter()
        .flat_map(|o| o.connections.iter().map(|t| (*t, o.name.clone(), false)))
        .chain(
            seen.silent_peer_connections
                .iter()
                .map(|t| (*t, SILENT.to_owned(), true)),
        )
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// How long its last connection had been open at the end, when it was to the
/// silent peer and still open.
fn waiting_on_silent(seen: &Observed, last_at: f64) -> Option<f64> {
    seen.silent_peer_open
        .contains(&last_at)
        .then_some(seen.timeline.ended_at - last_at)
}

/// Its last connection, to the silent peer, still open at the end: too
/// young to call it stuck, yet older than sdss's own 2 s wait (younger, it
/// says nothing). When it was made, and its age.
fn too_young(seen: &Observed) -> Option<(f64, f64)> {
    let (last_at, _, _) = last_connection(seen)?;
    let age = waiting_on_silent(seen, last_at)?;
    (age >= 2.0 * SETTLE_SECS && stuck(seen).is_none()).then_some((last_at, age))
}

/// When its client stopped for good: it connected, then made no connection
/// after some step although the run went on, or it was still waiting on the
/// silent peer at the end, long enough ([`STUCK_OPEN_SECS`]), connected to
/// nobody since. The step named is the silent peer when that is whom it last
/// connected to, else the first step after its last connection.
pub(super) fn stuck(seen: &Observed) -> Option<Stuck> {
    let (last_at, last_to, to_silent) = last_connection(seen)?;
    let steps = steps(seen);
    let since = match seen.timeline.silent_at {
        Some(at) if to_silent => steps.iter().find(|(_, t)| *t == at),
        _ => steps.iter().find(|(_, t)| *t >= last_at),
    }?;
    let waiting = waiting_on_silent(seen, last_at);
    // Still waiting on the silent peer: stuck once past any bounded wait.
    // Else it had time to connect again: a refresh period and more since its
    // last connection, or since it gave up on it when that was the silent peer.
    let gave_up = to_silent.then(|| closed_at(seen, last_at)).flatten();
    let quiet = seen.timeline.ended_at - gave_up.unwrap_or(last_at).max(since.1);
    let stuck = match waiting {
        Some(w) => w >= STUCK_OPEN_SECS,
        None => quiet >= 2.0 * SETTLE_SECS + 4.0,
    };
    stuck.then(|| Stuck {
        since: since.clone(),
        last_at,
        last_to,
        waiting,
    })
}

/// When it closed its connection to the silent peer made at `opened`, if
/// the silent peer saw it closed.
fn closed_at(seen: &Observed, opened: f64) -> Option<f64> {
    seen.silent_peer_closed
        .iter()
        .find(|(at, _)| *at == opened)
        .map(|(_, closed)| *closed)
}

/// When the run was extended to watch it waiting on the silent peer at the
/// run's planned end: by how much, and what that connection came to.
fn extension_note(seen: &Observed) -> Option<String> {
    let by = seen.timeline.extended_by?;
    let planned_end = seen.timeline.ended_at - by;
    let opened = seen
        .silent_peer_connections
        .iter()
        .copied()
        .filter(|at| *at < planned_end)
        .max_by(f64::total_cmp)?;
    let closed = closed_at(seen, opened);
    // Only its own wait there is told: the run is extended for every program.
    if closed.is_some_and(|c| c < planned_end)
        || !seen.silent_peer_open.contains(&opened) && closed.is_none()
    {
        return None;
    }
    let mut note = format!("the watch was extended by {by:.1} s to tell");
    if let Some(closed) = closed {
        note.push_str(&format!(
            ": it gave up on its connection to the silent peer of {} after {:.1} s",
            secs(opened, seen),
            closed - opened
        ));
    }
    Some(note)
}

/// What a stuck client's evidence says: since when, and on what.
fn stuck_text(s: &Stuck, seen: &Observed) -> String {
    let late = seen
        .timeline
        .silent_at
        .filter(|at| s.since.1 == *at && s.last_at > at + SETTLE_SECS);
    let mut text = match late {
        // It measured others after the silent peer appeared, then reached it.
        Some(_) => format!(
            "stuck since it connected to the silent peer at {}: its last connection, none since",
            secs(s.last_at, seen)
        ),
        None => format!(
            "stuck since {} at {}: its last connection was to {} at {}, none since",
            s.since.0,
            secs(s.since.1, seen),
            s.last_to,
            secs(s.last_at, seen)
        ),
    };
    if let Some(w) = s.waiting {
        text.push_str(&format!(
            "; that connection was still open at the end, {w:.1} s later"
        ));
    } else if let Some(closed) = closed_at(seen, s.last_at).filter(|_| s.last_to == SILENT) {
        text.push_str(&format!(
            "; it gave up on that connection at {}",
            secs(closed, seen)
        ));
    }
    text
}

/// Whether it still broadcast, served and measured others after `event`.
pub(super) fn survives(
    seen: &Observed,
    id: &str,
    title: &str,
    event: Option<(String, f64)>,
) -> Check {
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
    let stuck_here = stuck(seen).filter(|s| s.since.1 <= at);
    if measured > 0 {
        fine.push(format!("{measured} connections to sdss nodes"));
    }
    match stuck_here {
        // Stuck on this step, even after measuring others since it: a client
        // that was behind reaches it late.
        Some(s) if measured == 0 || s.since.1 == at => broken.push(stuck_text(&s, seen)),
        _ if measured == 0 => broken.push("it measured no other node afterwards".to_owned()),
        _ => {}
    }
    if let Some(how) = &seen.exited {
        broken.push(format!("it died ({how})"));
    }
    let since = format!("after {what} at {}", secs(at, seen));
    let silent_step = seen.timeline.silent_at == Some(at);
    let mut checked = judged(id, title, seen, since, broken, fine, silent_step);
    if let Some(note) = extension_note(seen).filter(|_| silent_step) {
        checked.evidence = format!("{}; {note}", checked.evidence);
    }
    checked
}

/// The verdict on a step: `broken` fails it, else a last connection to the
/// silent peer still open and too young to tell (`silent_step`) warns.
fn judged(
    id: &str,
    title: &str,
    seen: &Observed,
    since: String,
    broken: Vec<String>,
    fine: Vec<String>,
    silent_step: bool,
) -> Check {
    // With the run extended, only a connection made during the extension
    // may still be too young at its end.
    let young = too_young(seen).filter(|_| silent_step);
    if let (true, Some((opened, age))) = (broken.is_empty(), young) {
        check(
            id,
            title,
            Verdict::Warn,
            format!(
                "{since}: {}, but its last connection, to the silent peer at {}, was still open at the end, {age:.1} s later: too young to tell whether it would give up",
                fine.join(", "),
                secs(opened, seen)
            ),
        )
    } else if broken.is_empty() {
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
