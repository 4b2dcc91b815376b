//! The process: alive, CPU, memory, the limits of its box.

use super::*;
use crate::lab::builder::sandbox::spec::LimitKind;

pub(super) fn alive(seen: &Observed) -> Check {
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

/// CPU use below which a program is not busy whatever its runnable samples
/// say: a node that sleeps between broadcasts uses about 1%.
const BUSY_PERCENT: f64 = 5.0;

pub(super) fn cpu(seen: &Observed) -> Check {
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
    // Runnable samples catch a busy loop that a loaded machine holds to a
    // small share of the CPU; but a light program waiting for the CPU on that
    // machine is runnable too, so they count only beside real CPU use.
    let busy = percent >= BUSY_PERCENT;
    if percent >= 50.0 || (busy && runnable >= 60.0) {
        check(ID, TITLE, Verdict::Fail, format!("{evidence}: a busy loop"))
    } else if percent >= 20.0 || (busy && runnable >= 25.0) {
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

pub(super) fn memory(seen: &Observed) -> Check {
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

pub(super) fn limits(seen: &Observed) -> Check {
    const ID: &str = "process.limits";
    const TITLE: &str = "it stays within the limits of its box (memory, tasks, CPU, files, disk)";
    let Some(limits) = &seen.confined else {
        return check(
            ID,
            TITLE,
            Verdict::Pass,
            "not confined: it ran as sdss does ([sandbox] enabled = false, or --no-sandbox)"
                .to_owned(),
        );
    };
    let within = format!("confined: {}", limits.describe());
    if seen.limits_hit.is_empty() {
        return check(ID, TITLE, Verdict::Pass, format!("{within}; no limit hit"));
    }
    let hits: Vec<String> = seen
        .limits_hit
        .iter()
        .map(|h| format!("{} at t={:.1}s", h.text, h.at))
        .collect();
    // Waiting for the CPU harms no one; every other limit refused it something.
    let verdict = if seen.limits_hit.iter().all(|h| h.limit == LimitKind::Cpu) {
        Verdict::Warn
    } else {
        Verdict::Fail
    };
    check(ID, TITLE, verdict, format!("{}; {within}", hits.join("; ")))
}
