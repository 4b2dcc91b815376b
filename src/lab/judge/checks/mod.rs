//! The checklist, computed from observations alone (no I/O, no clock).
//!
//! Each check states the assignment's requirement, a verdict and the evidence
//! that decided it. A check whose input is missing because something else
//! failed (nothing was heard, the server never answered) fails too, and says
//! "not measured" and why: a peer that cannot be heard cannot be used.

mod announce;
mod client;
mod process;
mod server;

use std::collections::BTreeMap;

use super::{Check, Checklist, Verdict};
use crate::lab::scenario::observe::{
    Destination, Observed, Observer, Probe, ProbeKind, LISTEN_BEFORE_SPEAKING,
};
use crate::protocol::{decode_timestamp, time_zone_offset_hours, Announcement, TimestampError};

use announce::{announced_port, cadence, format, heard, own_datagrams};
use client::{joined, prompt, refresh, survives};
use process::{alive, cpu, limits, memory};
use server::{closes, encoding, port_zero, reachable, robust, speaks_first, utc};

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
        limits(seen),
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

/// Ports announced in datagrams well formed but perhaps for their ID, with how often.
fn announced_ports(seen: &Observed) -> BTreeMap<u16, usize> {
    let mut ports = BTreeMap::new();
    for d in &seen.datagrams {
        if let Ok(port) = Announcement::port_of(&d.payload) {
            *ports.entry(port).or_default() += 1;
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::scenario::observe::{Datagram, ProcessSample, Timeline};
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
            silent_peer_open: Vec::new(),
            // It gives up on each after 3 s.
            silent_peer_closed: [6.1, 8.2, 12.3, 16.4]
                .map(|t| (T0 + t, T0 + t + 3.0))
                .into(),
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
            confined: Some(crate::lab::plan::sandbox::Limits::default()),
            limits_hit: Vec::new(),
            timeline: Timeline {
                started_at: T0,
                ended_at: T0 + 24.0,
                extended_by: None,
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
    fn promptness_counts_from_when_the_graded_program_was_first_heard() {
        // The machine started the program 2.6 s after the sdss nodes; it
        // connected to each at `at`, and was first heard at t=3.6 s.
        let connected_at = |at: f64| {
            let mut seen = correct();
            seen.datagrams.retain(|d| d.at >= T0 + 2.6);
            for d in &mut seen.datagrams {
                d.at += 0.6;
            }
            for o in seen.observers.iter_mut().filter(|o| o.name != "joiner") {
                o.connections.retain(|t| *t > T0 + at);
                o.connections.insert(0, T0 + at);
            }
            let list = grade(&seen);
            let prompt = list.checks.into_iter().find(|c| c.id == "client.prompt");
            prompt.unwrap()
        };
        let prompt = connected_at(3.8);
        assert_eq!(prompt.verdict, Verdict::Pass, "{}", prompt.evidence);
        assert!(
            prompt.evidence.contains("a after 0.2 s")
                && prompt
                    .evidence
                    .ends_with("(counted from t=3.6s, when it was first seen running: its first datagram or connection)"),
            "{}",
            prompt.evidence
        );
        // Seconds after it ran, it is slow wherever the lab started.
        let prompt = connected_at(7.6);
        assert_eq!(prompt.verdict, Verdict::Warn, "{}", prompt.evidence);
    }

    #[test]
    fn promptness_of_a_program_nobody_hears_counts_from_its_first_connection() {
        // It broadcasts where the lab cannot hear it, and the machine started
        // it 2 s late: it connected to a at 2.3 s and to the others by 3.0 s.
        let mut seen = correct();
        seen.datagrams.clear();
        for (o, at) in seen.observers.iter_mut().zip([2.3, 2.5, 3.0]) {
            o.connections[0] = T0 + at;
        }
        let list = grade(&seen);
        let prompt = list.check("client.prompt").unwrap();
        assert_eq!(prompt.verdict, Verdict::Pass, "{}", prompt.evidence);
        assert!(
            prompt.evidence.contains("c after 0.7 s"),
            "{}",
            prompt.evidence
        );
    }

    #[test]
    fn a_correct_node_passes_every_check() {
        let list = grade(&correct());
        assert_eq!(list.checks.len(), 22);
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
    fn one_late_answer_on_a_loaded_machine_is_not_a_server_that_waits() {
        let mut seen = correct();
        if let Some(p) = seen
            .probes
            .iter_mut()
            .find(|p| p.kind == ProbeKind::Listen && p.answered_at.is_some())
        {
            p.answered_at = Some(p.at + 0.3);
        }
        assert!(failing(&seen).is_empty(), "{:?}", failing(&seen));
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
    fn a_client_stuck_mid_period_keeps_the_cadence_it_had() {
        let mut seen = correct();
        // Refreshing every 10 broadcasts (2.5 s), stuck on the silent peer at
        // 6.05 s, 2.25 s into its second period: that period is not whole.
        seen.silent_peer_connections = vec![T0 + 6.05];
        for o in &mut seen.observers {
            o.connections = if o.name == "joiner" {
                Vec::new()
            } else {
                vec![T0 + 1.3, T0 + 3.8]
            };
        }
        let list = grade(&seen);
        let refresh = list.check("client.refresh").unwrap();
        assert_eq!(refresh.verdict, Verdict::Pass, "{}", refresh.evidence);
        assert!(refresh
            .evidence
            .starts_with("one connection per 10.0 broadcasts"));
    }

    /// `correct()` whose client, behind on the broadcasts, measured the
    /// others until it reached the silent peer at `at`, and nobody since;
    /// `open`: it still waits on it at the end.
    fn reached_late(at: f64, open: bool) -> Observed {
        let mut seen = correct();
        seen.silent_peer_connections = vec![at];
        seen.silent_peer_open = if open { vec![at] } else { Vec::new() };
        seen.silent_peer_closed = Vec::new();
        for o in &mut seen.observers {
            o.connections.retain(|t| *t < at);
        }
        seen
    }

    /// `reached_late(at, ..)` watched until `end` (from 24 s), where the run
    /// was extended to tell whether it gives up on the silent peer; `closed`:
    /// it did then.
    fn watched_on(at: f64, end: f64, closed: Option<f64>) -> Observed {
        let mut seen = reached_late(T0 + at, closed.is_none());
        seen.silent_peer_closed = closed.map(|c| (T0 + at, T0 + c)).into_iter().collect();
        seen.timeline.ended_at = T0 + end;
        seen.timeline.extended_by = Some(end - 24.0);
        seen
    }

    #[test]
    fn a_client_still_waiting_on_the_silent_peer_it_reached_late_is_stuck_there() {
        // Reached at 16 s or 19 s, still open 12 s later, when the run was
        // extended to tell.
        for (at, by) in [(16.0, "4.0"), (19.0, "7.0")] {
            let list = grade(&watched_on(at, at + 12.0, None));
            let check = list.check("client.silent_peer").unwrap();
            assert_eq!(check.verdict, Verdict::Fail, "{}", list.render());
            let want = format!(
                "stuck since it connected to the silent peer at t={at:.1}s: its last connection, none since; that connection was still open at the end, 12.0 s later"
            );
            assert!(check.evidence.contains(&want), "{}", check.evidence);
            assert!(check.evidence.contains("connections to sdss nodes)"));
            let note = format!("; the watch was extended by {by} s to tell");
            assert!(check.evidence.ends_with(&note), "{}", check.evidence);
            // The later steps cost it nothing: it measured others after them.
            for id in ["client.killed", "client.malformed"] {
                assert_eq!(list.check(id).unwrap().verdict, Verdict::Pass, "{id}");
            }
        }
    }

    #[test]
    fn a_client_that_gave_up_on_the_silent_peer_is_not_stuck_on_it() {
        // It timed out at 19 s and went on measuring the others.
        let mut seen = correct();
        seen.silent_peer_connections.push(T0 + 19.0);
        assert!(failing(&seen).is_empty(), "{:?}", failing(&seen));
        // Or it closed it and the run ended before its next connection.
        assert!(failing(&reached_late(T0 + 19.0, false)).is_empty());
        // Reached at 20 s, it gave up after 5 s (or 10 s: its timeout), in
        // the run extended to tell, 6 s and more after its last connection.
        for (timeout, by) in [(5.0, "1.3"), (10.0, "6.3")] {
            let seen = watched_on(20.0, 20.0 + timeout + 0.3, Some(20.0 + timeout));
            assert!(failing(&seen).is_empty(), "{:?}", failing(&seen));
            let list = grade(&seen);
            let check = list.check("client.silent_peer").unwrap();
            assert_eq!(check.verdict, Verdict::Pass, "{}", list.render());
            let note = format!(
                "; the watch was extended by {by} s to tell: it gave up on its connection to the silent peer of t=20.0s after {timeout:.1} s"
            );
            assert!(check.evidence.ends_with(&note), "{}", check.evidence);
        }
        // The run extended for another program: nothing is said of it here.
        let mut seen = correct();
        seen.timeline.ended_at = T0 + 26.0;
        seen.timeline.extended_by = Some(2.0);
        let list = grade(&seen);
        let check = list.check("client.silent_peer").unwrap();
        assert_eq!(check.verdict, Verdict::Pass, "{}", list.render());
        assert!(!check.evidence.contains("extended"), "{}", check.evidence);
    }

    #[test]
    fn a_client_that_gave_up_on_the_silent_peer_and_connected_to_nobody_since_is_stuck() {
        // It gave up at 13 s, then made no connection for 11 s.
        let mut seen = reached_late(T0 + 10.0, false);
        seen.silent_peer_closed = vec![(T0 + 10.0, T0 + 13.0)];
        let list = grade(&seen);
        let check = list.check("client.silent_peer").unwrap();
        assert_eq!(check.verdict, Verdict::Fail, "{}", list.render());
        assert!(
            check
                .evidence
                .contains("none since; it gave up on that connection at t=13.0s"),
            "{}",
            check.evidence
        );
    }

    #[test]
    fn a_connection_to_the_silent_peer_too_young_at_the_end_is_not_called_stuck() {
        // Open 0.5 s at the end: an exchange may take that long.
        let seen = reached_late(T0 + 23.5, true);
        assert!(failing(&seen).is_empty(), "{:?}", failing(&seen));
        // Open 2.5 s or 8 s (the run not extended, as when the extension's
        // bound came first): longer than sdss waits, too short to be sure.
        for (at, age) in [(21.5, "2.5"), (16.0, "8.0")] {
            let list = grade(&reached_late(T0 + at, true));
            let check = list.check("client.silent_peer").unwrap();
            assert_eq!(check.verdict, Verdict::Warn, "{}", list.render());
            let want = format!(
                "its last connection, to the silent peer at t={at:.1}s, was still open at the end, {age} s later: too young to tell"
            );
            assert!(check.evidence.contains(&want), "{}", check.evidence);
        }
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
    fn a_light_program_waiting_for_a_loaded_cpu_is_not_busy() {
        // 1.3% of a CPU, runnable in over a third of the samples (seen in CI
        // with four labs at once on two cores).
        let mut seen = correct();
        for (i, s) in seen.samples.iter_mut().enumerate() {
            s.cpu_secs = i as f64 * 0.25 * 0.013;
            s.runnable = i % 3 == 0;
        }
        assert!(failing(&seen).is_empty(), "{:?}", failing(&seen));
    }

    #[test]
    fn a_busy_loop_held_to_a_small_share_of_a_loaded_cpu_still_fails() {
        let mut seen = correct();
        for (i, s) in seen.samples.iter_mut().enumerate() {
            s.cpu_secs = i as f64 * 0.25 * 0.15;
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
                "announce.own Fail",
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
    fn a_right_cadence_held_now_and_then_by_the_machine_passes_and_an_irregular_one_warns() {
        let cadence = |seen: &Observed| grade(seen).check("announce.cadence").unwrap().clone();
        let mut seen = correct();
        // Each tick also goes to the directed broadcast; once, the machine
        // held the program 0.3 s between its two sends, and once 0.3 s
        // before a tick; its second tick came 0.4 s after its first (phased).
        let mut datagrams = Vec::new();
        for (i, d) in seen.datagrams.iter().enumerate() {
            let mut d = d.clone();
            d.at += match i {
                0 => 0.0,
                12 => -0.3,
                _ => -0.6,
            };
            let mut directed = d.clone();
            directed.destination = Destination::Directed;
            directed.at += if i == 5 { 0.3 } else { 0.001 };
            datagrams.extend([d, directed]);
        }
        seen.datagrams = datagrams;
        let right = cadence(&seen);
        assert_eq!(right.verdict, Verdict::Pass, "{}", right.evidence);
        assert!(
            right.evidence.starts_with("24 announcements"),
            "{}",
            right.evidence
        );
        // A program that sleeps a random 0.5 to 1.5 s is not on the period.
        let mut seen = correct();
        for (i, d) in seen.datagrams.iter_mut().enumerate() {
            d.at = T0 + i as f64 + if i % 2 == 0 { 0.0 } else { 0.4 };
        }
        let irregular = cadence(&seen);
        assert_eq!(irregular.verdict, Verdict::Warn, "{}", irregular.evidence);
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

    #[test]
    fn a_limit_hit_fails_the_limits_check_and_waiting_for_the_cpu_only_warns() {
        use crate::lab::builder::sandbox::spec::{LimitHit, LimitKind};
        let hit = |limit, text: &str| LimitHit {
            limit,
            at: 9.3,
            text: text.to_owned(),
        };
        let mut seen = correct();
        let check = |seen: &Observed| {
            grade(seen)
                .checks
                .into_iter()
                .find(|c| c.id == "process.limits")
                .unwrap()
        };
        let passed = check(&seen);
        assert_eq!(passed.verdict, Verdict::Pass);
        assert!(
            passed.evidence.contains("512 MiB memory"),
            "{}",
            passed.evidence
        );
        seen.limits_hit = vec![hit(LimitKind::Cpu, "held to 1 CPU")];
        assert_eq!(check(&seen).verdict, Verdict::Warn);
        seen.limits_hit.push(hit(
            LimitKind::Memory,
            "killed by the memory limit of 512 MiB",
        ));
        let failed = check(&seen);
        assert_eq!(failed.verdict, Verdict::Fail);
        assert!(
            failed
                .evidence
                .contains("killed by the memory limit of 512 MiB at t=9.3s"),
            "{}",
            failed.evidence
        );
        seen.confined = None;
        seen.limits_hit.clear();
        let unconfined = check(&seen);
        assert_eq!(unconfined.verdict, Verdict::Pass);
        assert!(unconfined.evidence.starts_with("not confined"));
    }
}
