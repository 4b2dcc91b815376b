//! The phase before the first event: the delay table is judged on it, so a
//! lab whose first event comes before its pairs can have their samples is
//! refused, with the time it needs, before anything is built. (A pair the
//! machine was too slow for is judged on what it had when the event came.)

use std::time::Duration;

use thiserror::Error;

use super::Plan;

/// Why a lab's first event comes too early.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the first event ({event}) at {at} comes before the pairs can have their {samples} sample(s) after {warmup} warm-up, which take at least {needs} (one exchange per peer every {every}), and the delay table is judged on what comes before it: move the event to {needs} or later, or ask fewer [verify] samples"
)]
pub struct TooEarly {
    /// The event, as the timeline names it.
    pub event: String,
    /// When it comes.
    pub at: String,
    /// Samples graded per pair.
    pub samples: u32,
    /// Samples discarded first.
    pub warmup: u32,
    /// The least time those take.
    pub needs: String,
    /// Time between two exchanges with a peer.
    pub every: String,
}

/// The least time after the start before every pair can have its samples:
/// one interval to hear a peer, then one exchange per `refresh_every`
/// announcements for each sample, the warm-up's included; in whole seconds,
/// rounded up, as people write event times.
pub fn least_time(plan: &Plan) -> Duration {
    let every = plan.node_settings.interval * plan.node_settings.refresh_every.max(1);
    let least = plan.node_settings.interval + every * (plan.verify.warmup + plan.verify.samples);
    Duration::from_secs(least.as_secs_f64().ceil() as u64)
}

/// Refuses `plan` when its first event that changes what is expected comes
/// before [`least_time`].
pub fn check(plan: &Plan) -> Result<(), TooEarly> {
    let Some((index, event)) = plan
        .timeline
        .events
        .iter()
        .enumerate()
        .find(|(_, e)| e.change.changes_expectations())
    else {
        return Ok(());
    };
    let needs = least_time(plan);
    if event.at >= needs {
        return Ok(());
    }
    let format = crate::units::format_duration;
    Err(TooEarly {
        event: super::timeline::describe_event(plan, index),
        at: format(event.at),
        samples: plan.verify.samples,
        warmup: plan.verify.warmup,
        needs: format(needs),
        every: format(plan.node_settings.interval * plan.node_settings.refresh_every.max(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n";

    fn cut_at(at: &str) -> Plan {
        Plan::from_text(&format!(
            "{TWO}[[event]]\nname = \"cut\"\nat = \"{at}\"\naction = \"cut\"\nnode = \"b\"\n"
        ))
    }

    #[test]
    fn a_first_event_before_the_samples_can_be_had_is_refused_with_the_time_needed() {
        // 250 ms interval, an exchange every 4: 0.25 + 6 x 1 s, rounded up.
        let error = check(&cut_at("5s")).unwrap_err();
        assert_eq!(error.needs, "7s");
        let text = error.to_string();
        assert!(
            text.contains("at 5s") && text.contains("7s or later"),
            "{text}"
        );
        assert!(check(&cut_at("7s")).is_ok());
        assert!(check(&Plan::from_text(TWO)).is_ok());
    }
}
