//! The scenario's loop against fake sites: no root, no namespaces.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::site::Site;
use super::stream::Observations;
use super::{run, Convergence, LateAnswers, Measured, Run, Scene};
use crate::lab::plan::Plan;
use crate::lab::progress::Silent;

/// (site, event, when it was played after the start).
type Log = Arc<Mutex<Vec<(&'static str, usize, Duration)>>>;

/// A site that records what it is asked to play.
struct Fake {
    name: &'static str,
    nodes: &'static [&'static str],
    dir: PathBuf,
    log: Log,
    started: Instant,
    /// How long it takes to play a link change.
    slow: Duration,
    /// It has stopped answering.
    gone: bool,
}

impl Site for Fake {
    fn name(&self) -> String {
        format!("host {}", self.name)
    }

    fn holds(&self, node: &str) -> bool {
        self.nodes.contains(&node)
    }

    fn stdout_log(&self, node: &str) -> PathBuf {
        self.dir.join(node)
    }

    async fn play(&mut self, plan: &Plan, index: usize) -> Result<Option<Duration>, String> {
        if self.gone {
            std::future::pending::<()>().await;
        }
        let link = plan.timeline.events[index].change.is_link();
        if link {
            tokio::time::sleep(self.slow).await;
        }
        let at = self.started.elapsed();
        self.log.lock().unwrap().push((self.name, index, at));
        Ok(link.then_some(self.slow))
    }

    fn play_wait(&self) -> Duration {
        Duration::from_millis(400)
    }

    fn stopped(&mut self, _node: &str) -> Option<String> {
        self.gone
            .then(|| format!("its host {} was lost", self.name))
    }

    fn lost(&self) -> Option<String> {
        self.gone.then(|| "it stopped answering".to_owned())
    }
}

/// Every pair always measured: the run ends when the timeline is played.
struct Done;

impl Convergence for Done {
    fn measured(
        &self,
        _plan: &Plan,
        _observed: &std::collections::HashMap<String, Observations>,
        _late: Option<&LateAnswers>,
    ) -> Measured {
        Measured {
            complete: 0,
            converged: true,
        }
    }

    fn floors(
        &self,
        _plan: &Plan,
        _observed: &std::collections::HashMap<String, Observations>,
    ) -> Vec<Option<Duration>> {
        Vec::new()
    }
}

/// Nodes a and b on host one, c on host two, and `events`.
fn lab(events: &str) -> Plan {
    Plan::from_text(&format!(
        "name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[node]]\nname = \"c\"\n{events}"
    ))
}

struct Hosts {
    sites: [Fake; 2],
    log: Log,
    started: Instant,
    dir: PathBuf,
}

impl Hosts {
    fn new(test: &str) -> Hosts {
        let dir = std::env::temp_dir().join(format!("sdss-sites-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for node in ["a", "b", "c"] {
            std::fs::write(dir.join(node), "").unwrap();
        }
        let log = Log::default();
        let started = Instant::now();
        let fake = |name, nodes| Fake {
            name,
            nodes,
            dir: dir.clone(),
            log: log.clone(),
            started,
            slow: Duration::ZERO,
            gone: false,
        };
        Hosts {
            sites: [fake("one", &["a", "b"]), fake("two", &["c"])],
            log,
            started,
            dir,
        }
    }

    async fn run(&mut self, plan: &Plan) -> Run {
        let scene = Scene {
            plan,
            launched: self.started,
            started_at: 0.0,
            resume: None,
            graded_for: None,
        };
        run(
            &mut self.sites,
            scene,
            &Done,
            &CancellationToken::new(),
            &Silent,
        )
        .await
        .expect("the run ends")
    }

    fn played(&self) -> Vec<(&'static str, usize)> {
        let mut log: Vec<_> = self
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|(s, e, _)| (*s, *e))
            .collect();
        log.sort_by_key(|(site, event)| (*event, *site));
        log
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const EVENTS: &str = "[[event]]\nat = \"200ms\"\naction = \"kill\"\nnode = \"c\"\n\
    [[event]]\nat = \"400ms\"\naction = \"cut\"\nnode = \"a\"\n\
    [[event]]\nat = \"600ms\"\naction = \"start\"\nnode = \"c\"\n";

#[tokio::test]
async fn events_are_played_in_order_at_their_times_on_the_sites_with_a_share() {
    let plan = lab(EVENTS);
    let mut hosts = Hosts::new("order");
    let ran = hosts.run(&plan).await;
    // A process change goes to its node's site; a link change to every site.
    assert_eq!(
        hosts.played(),
        [("two", 0), ("one", 1), ("two", 1), ("two", 2)]
    );
    let log = hosts.log.lock().unwrap().clone();
    for (site, index, at) in log {
        let due = plan.timeline.events[index].at;
        assert!(
            at >= due,
            "{site} played event {index} at {at:?}, before {due:?}"
        );
    }
    assert_eq!(ran.played.len(), 3);
    assert!(
        ran.played.iter().all(|p| p.error.is_none()),
        "{:?}",
        ran.played
    );
    assert!(ran.played.windows(2).all(|w| w[0].at_s <= w[1].at_s));
    assert!(ran.lost.is_empty());
}

#[tokio::test]
async fn a_site_that_stops_answering_fails_its_events_and_the_run_goes_on() {
    let plan = lab(EVENTS);
    let mut hosts = Hosts::new("gone");
    hosts.sites[1].gone = true;
    let ran = hosts.run(&plan).await;
    // Host one still played its share of the cut.
    assert_eq!(hosts.played(), [("one", 1)]);
    let errors: Vec<_> = ran.played.iter().map(|p| p.error.clone()).collect();
    assert_eq!(
        errors,
        [
            Some("host two: no answer within 400ms".to_owned()),
            Some("host two: no answer within 400ms".to_owned()),
            Some("host two: no answer within 400ms".to_owned()),
        ]
    );
    assert_eq!(ran.lost, ["host two: it stopped answering"]);
    let c = ran.observed.get("c").expect("c followed");
    assert_eq!(c.exited.as_deref(), Some("its host two was lost"));
    assert!(ran.observed.get("a").is_some_and(|a| a.exited.is_none()));
}

#[tokio::test]
async fn a_site_slow_to_change_its_links_holds_the_next_event_back_not_out_of_order() {
    let plan = lab(
        "[[event]]\nat = \"100ms\"\naction = \"cut\"\nnode = \"a\"\n\
         [[event]]\nat = \"150ms\"\naction = \"kill\"\nnode = \"c\"\n",
    );
    let mut hosts = Hosts::new("slow");
    hosts.sites[0].slow = Duration::from_millis(250);
    let ran = hosts.run(&plan).await;
    assert_eq!(hosts.played(), [("one", 0), ("two", 0), ("two", 1)]);
    let cut = &ran.played[0];
    assert!(cut.error.is_none(), "{cut:?}");
    assert!(cut.took_ms.is_some_and(|ms| ms >= 250.0), "{cut:?}");
    // The kill waited for the cut to be in place everywhere.
    assert!(ran.played[1].at_s >= cut.at_s + 0.25, "{:?}", ran.played);
}
