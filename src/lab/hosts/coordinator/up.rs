//! A lab's hosts as the sites `up` builds and plays: each host's share built
//! by its agent, the underlay measured, every node's output streamed here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::site::{Host, ASK_QUEUE};
use super::SpanError;
use super::{gather, lock, Heard};
use crate::lab::builder::state::{LabDir, LabState, Phase, StateRoot};
use crate::lab::builder::Stages;
use crate::lab::builder::UpOptions;
use crate::lab::hosts::remote::{HostError, RemoteExec, Session, BUILD_WAIT, MEASURE_WAIT};
use crate::lab::hosts::wire::{Reply, Request};
use crate::lab::plan::backend::{BackendKind, NetemSupport};
use crate::lab::plan::calibration::CalibrationRefusal;
use crate::lab::plan::hosts::{HostPlan, UnderlayDelay};
use crate::lab::plan::probing::ProbingRefusal;
use crate::lab::plan::{LinkProbing, Plan};
use crate::lab::progress::Progress;
use crate::lab::report::progress::Printer;
use crate::lab::scenario::calibrate::Calibrated;
use crate::lab::scenario::link_probe::record::PairRecord;
use crate::lab::scenario::sites::{Launched, Sites};
use crate::lab::scenario::Convergence;
use crate::lab::LabError;
use crate::node::clock::wall_now;

/// A lab's hosts, as [`Sites`]: each host's share built by its agent, the
/// underlay between them measured, their nodes' output streamed here.
pub struct Hosts<'a> {
    exec: &'a RemoteExec,
    root: &'a StateRoot,
    options: UpOptions,
    printer: Printer,
    /// The coordinator's record, once `build` made it.
    dir: Option<LabDir>,
    /// The sessions that built each share, until `start` streams them.
    sessions: Vec<Session>,
    /// Each host as a site, once streamed.
    hosts: Vec<Host>,
    /// Ends the streams.
    stop: CancellationToken,
    streams: Vec<JoinHandle<()>>,
}

impl<'a> Hosts<'a> {
    /// The hosts of a lab, reached through `exec`, its record under `root`.
    pub fn new(
        exec: &'a RemoteExec,
        root: &'a StateRoot,
        options: UpOptions,
        printer: Printer,
    ) -> Hosts<'a> {
        Hosts {
            exec,
            root,
            options,
            printer,
            dir: None,
            sessions: Vec::new(),
            hosts: Vec::new(),
            stop: CancellationToken::new(),
            streams: Vec::new(),
        }
    }

    /// Ends the streams and closes the sessions.
    async fn end_streams(&mut self) {
        self.stop.cancel();
        for stream in self.streams.drain(..) {
            let _ = stream.await;
        }
        for session in self.sessions.drain(..) {
            session.close().await;
        }
    }
}

impl Sites for Hosts<'_> {
    type Site = Host;
    type Error = SpanError;

    async fn build(
        &mut self,
        plan: Plan,
        note: Option<String>,
        _cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<Launched, SpanError> {
        if plan.verify.calibrate {
            return Err(CalibrationRefusal::Hosts.into());
        }
        let mut state = LabState::creating(plan.clone());
        state.backend_note = note;
        let dir = self.dir.insert(self.root.create(state)?);
        progress.step("building every host's share", plan.hosts.len() as u64);
        let (exec, options, printer) = (self.exec, &self.options, &self.printer);
        let built = join_all(plan.hosts.iter().map(|host| async {
            let result = build_on(exec, &plan, host, options, printer.clone()).await;
            progress.inc();
            result
        }))
        .await;
        let mut failures = Vec::new();
        let mut backends = Vec::new();
        let mut netem = None;
        for result in built {
            match result {
                Ok((session, kind, probed)) => {
                    netem = netem.or(probed);
                    backends.push((session.host.clone(), kind));
                    self.sessions.push(session);
                }
                Err(e) => failures.push(e),
            }
        }
        if !failures.is_empty() {
            return Err(SpanError::Hosts(failures));
        }
        let backend = backends
            .first()
            .map_or(BackendKind::None, |(_, kind)| *kind);
        // Hosts may settle differently (`auto`, or a host's own `backend`): say so.
        let differ = backends.iter().any(|(_, kind)| *kind != backend).then(|| {
            let each: Vec<String> = backends
                .iter()
                .map(|(host, kind)| format!("{kind} on {host}"))
                .collect();
            format!("the hosts' delay backends differ: {}", each.join(", "))
        });
        dir.record(|s| {
            s.phase = Phase::Running;
            s.backend = Some(backend);
            s.backend_note = differ.or(s.backend_note.take());
            s.netem = netem;
            s.nodes_started_at = Some(wall_now());
        })?;
        Ok(Launched {
            backend,
            stages: Stages::default(),
            launched_at: Instant::now(),
        })
    }

    async fn ready(&mut self, progress: &dyn Progress) -> Result<(), SpanError> {
        let dir = self.dir.as_mut().ok_or(LabError::NotBuilt)?;
        let plan = dir.state.plan.clone();
        progress.step(
            "measuring the underlay between hosts",
            self.sessions.len() as u64,
        );
        let underlay = measure(&plan, &mut self.sessions).await?;
        for u in &underlay {
            progress.line(&format!(
                "underlay {} -> {}: {:.3} ms, clocks {:+.3} ms apart",
                u.from,
                u.to,
                u.delay.as_secs_f64() * 1e3,
                u.clock * 1e3
            ));
        }
        // A measurement, recorded beside the plan, which stays as it was made.
        dir.record(|s| s.underlay = underlay)?;
        Ok(())
    }

    /// Streams every host's node output into this lab's directory; each
    /// host, a site, plays its share of the timeline through its stream.
    async fn start(
        &mut self,
        _convergence: &dyn Convergence,
        _cancel: &CancellationToken,
        _progress: &dyn Progress,
    ) -> Result<Option<Calibrated>, SpanError> {
        let dir = self.dir.as_ref().ok_or(LabError::NotBuilt)?;
        let plan = dir.state.plan.clone();
        let paths: HashMap<String, PathBuf> = plan
            .nodes
            .iter()
            .map(|n| (n.name.clone(), dir.stdout_log(&n.name)))
            .collect();
        for mut session in self.sessions.drain(..) {
            let request = Request::Logs {
                lab: plan.lab.clone(),
                from: Vec::new(),
                follow: true,
            };
            let heard = Arc::new(Heard::default());
            let (asks, mut requests) = mpsc::channel(ASK_QUEUE);
            let name = session.host.clone();
            self.hosts.push(Host {
                nodes: plan
                    .nodes
                    .iter()
                    .filter(|n| n.host.as_deref() == Some(name.as_str()))
                    .map(|n| n.name.clone())
                    .collect(),
                name,
                paths: paths.clone(),
                asks,
                heard: heard.clone(),
            });
            let (paths, stop) = (paths.clone(), self.stop.clone());
            self.streams.push(tokio::spawn(async move {
                let result = async {
                    session.send(&request).await?;
                    gather(&mut session, &paths, &heard, Some(&mut requests), &stop).await
                }
                .await;
                if let Err(e) = result {
                    *lock(&heard.lost) = Some(e.to_string());
                }
                session.close().await;
            }));
        }
        Ok(None)
    }

    async fn probe_links(
        &mut self,
        _probing: &LinkProbing,
        _cancel: &CancellationToken,
    ) -> Result<Vec<PairRecord>, SpanError> {
        // `up` refuses it before the build (plan::probing::check).
        Err(LabError::from(ProbingRefusal::Hosts).into())
    }

    fn record(&self) -> Option<&LabDir> {
        self.dir.as_ref()
    }

    fn sites(&mut self) -> &mut [Host] {
        &mut self.hosts
    }

    async fn close(&mut self) {
        self.end_streams().await;
    }

    /// Every host's share taken down (each host's own `up` already removed
    /// a share that failed), then the coordinator's record.
    async fn teardown(&mut self, progress: &dyn Progress) {
        self.end_streams().await;
        let Some(dir) = self.dir.take() else {
            return;
        };
        let plan = dir.state.plan.clone();
        drop(dir);
        if let Err(e) = super::down(self.root, &plan, self.exec, &self.printer).await {
            progress.line(&format!("{e}"));
        }
    }
}

impl Drop for Hosts<'_> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the agent on `host`, has it build its share; the session stays open.
async fn build_on(
    exec: &RemoteExec,
    plan: &Plan,
    host: &HostPlan,
    options: &UpOptions,
    printer: Printer,
) -> Result<(Session, BackendKind, Option<NetemSupport>), HostError> {
    let share = plan.share(&host.name).ok_or_else(|| HostError::Failed {
        host: host.name.clone(),
        message: "not in the plan".to_owned(),
    })?;
    let mut session = Session::open(exec, host, printer.clone())?;
    session
        .send(&Request::Up {
            plan: Box::new(share),
            backend: host.backend.unwrap_or(options.backend),
        })
        .await?;
    match session.recv_within("up", BUILD_WAIT).await? {
        Reply::Built {
            backend,
            netem,
            seconds,
            stages,
        } => {
            printer.line(&format!(
                "host {}: up in {seconds:.3} s ({stages} s)",
                host.name
            ));
            Ok((session, backend, netem))
        }
        other => Err(session.unexpected(&other)),
    }
}

/// Each host measures the others: half the shortest round trip, and the clocks, per host pair.
async fn measure(plan: &Plan, sessions: &mut [Session]) -> Result<Vec<UnderlayDelay>, SpanError> {
    let results = join_all(sessions.iter_mut().map(|session| async {
        let peers: Vec<_> = plan
            .hosts
            .iter()
            .filter(|h| h.name != session.host)
            .map(|h| h.underlay)
            .collect();
        session.send(&Request::Measure { peers }).await?;
        match session.recv_within("measure", MEASURE_WAIT).await? {
            Reply::Underlay { delays } => Ok((session.host.clone(), delays)),
            other => Err(session.unexpected(&other)),
        }
    }))
    .await;
    let mut measured = Vec::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok((from, delays)) => {
                for (peer, delay) in delays {
                    let Some(to) = plan.hosts.iter().find(|h| h.underlay == peer) else {
                        continue;
                    };
                    match delay {
                        Some((seconds, clock)) => measured.push(UnderlayDelay {
                            from: from.clone(),
                            to: to.name.clone(),
                            delay: Duration::from_secs_f64(seconds.max(0.0)),
                            clock,
                        }),
                        None => failures.push(HostError::Failed {
                            host: from.clone(),
                            message: format!(
                                "host {} ({peer}) does not answer on UDP {}: the hosts must reach each other on UDP {} and 4789",
                                to.name,
                                crate::lab::hosts::underlay::PROBE_PORT,
                                crate::lab::hosts::underlay::PROBE_PORT
                            ),
                        }),
                    }
                }
            }
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(measured)
    } else {
        Err(SpanError::Hosts(failures))
    }
}
