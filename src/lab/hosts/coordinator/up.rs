//! `up` over several hosts: each host's share built by its agent, the
//! underlay measured, then every node's output streamed here and judged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::site::{Host, ASK_QUEUE};
use super::SpanError;
use super::{gather, lock, Heard};
use crate::lab::builder::state::{LabDir, LabState, Phase, StateRoot};
use crate::lab::builder::Stages;
use crate::lab::builder::UpOptions;
use crate::lab::file::backend::BackendChoice;
use crate::lab::hosts::remote::{HostError, RemoteExec, Session, BUILD_WAIT, MEASURE_WAIT};
use crate::lab::hosts::wire::{Reply, Request};
use crate::lab::lifecycle::{judge_run, Judged, UpOutcome};
use crate::lab::plan::backend::{BackendKind, NetemSupport};
use crate::lab::plan::calibration::CalibrationRefusal;
use crate::lab::plan::hosts::{HostPlan, UnderlayDelay};
use crate::lab::plan::Plan;
use crate::lab::progress::Progress;
use crate::lab::report::progress::{Console, Printer};
use crate::lab::report::{HostsReport, Report};
use crate::lab::scenario::{self, Scene};
use crate::lab::LabError;
use crate::node::clock::wall_now;

/// Brings a lab up on its hosts; on any failure or Ctrl-C every host's share
/// is taken down again (each host's own `up` already removed a failed share).
pub async fn up(
    plan: Plan,
    options: &UpOptions,
    exec: &RemoteExec,
    root: &StateRoot,
    cancel: &CancellationToken,
    progress: &Console,
) -> Result<UpOutcome, SpanError> {
    // As on one machine: `none` injects nothing, so nothing is expected.
    let zeroed = options.backend == BackendChoice::None && !plan.is_unimpaired();
    let plan = if zeroed { plan.zero_delay() } else { plan };
    if plan.verify.calibrate {
        return Err(CalibrationRefusal::Hosts.into());
    }
    let mut state = LabState::creating(plan.clone());
    state.backend_note =
        zeroed.then(|| "zero delay: the delays in the lab file were not injected".to_owned());
    let dir = root.create(state)?;
    let result = tokio::select! {
        result = up_on_hosts(dir, options, exec, cancel, progress) => result,
        _ = cancel.cancelled() => Err(LabError::Cancelled.into()),
    };
    if result.is_err() {
        progress.line("taking every host's share down");
        if let Err(e) = super::down(root, &plan, exec, &progress.printer()).await {
            progress.line(&format!("{e}"));
        }
    }
    result
}

async fn up_on_hosts(
    mut dir: LabDir,
    options: &UpOptions,
    exec: &RemoteExec,
    cancel: &CancellationToken,
    progress: &Console,
) -> Result<UpOutcome, SpanError> {
    let started = Instant::now();
    let plan = dir.state.plan.clone();
    progress.step("building every host's share", plan.hosts.len() as u64);
    let built = join_all(plan.hosts.iter().map(|host| async {
        let result = build_on(exec, &plan, host, options, progress.printer()).await;
        progress.inc();
        result
    }))
    .await;
    let mut sessions = Vec::new();
    let mut failures = Vec::new();
    let mut backends = Vec::new();
    let mut netem = None;
    for result in built {
        match result {
            Ok((session, kind, probed)) => {
                netem = netem.or(probed);
                backends.push((session.host.clone(), kind));
                sessions.push(session);
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        for session in sessions {
            session.close().await;
        }
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
    let build_time = started.elapsed();
    dir.record(|s| {
        s.phase = Phase::Running;
        s.backend = Some(backend);
        s.backend_note = differ.or(s.backend_note.take());
        s.netem = netem;
        s.nodes_started_at = Some(wall_now());
    })?;
    let launched = Instant::now();

    progress.step(
        "measuring the underlay between hosts",
        sessions.len() as u64,
    );
    let underlay = measure(&plan, &mut sessions).await?;
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

    let report = if options.verify {
        Some(run_scenario(&dir, sessions, launched, cancel, progress).await?)
    } else {
        for session in sessions {
            session.close().await;
        }
        None
    };
    Ok(UpOutcome {
        backend,
        report,
        build_time,
        stages: Stages::default(),
        converge_time: launched.elapsed(),
        built: None,
    })
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

/// Streams every host's node output into this lab's directory, plays the
/// timeline over the hosts (the scenario's one loop, each host a site) and
/// judges it as a lab on one machine is judged; a host that stops streaming
/// is reported, and its nodes' pairs fail with the reason.
async fn run_scenario(
    dir: &LabDir,
    sessions: Vec<Session>,
    launched: Instant,
    cancel: &CancellationToken,
    progress: &Console,
) -> Result<Report, LabError> {
    let judged = dir.state.judged_plan();
    let plan = judged.as_ref();
    progress.step(
        "waiting for every pair to be measured",
        plan.expected.len() as u64,
    );
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let paths: HashMap<String, PathBuf> = plan
        .nodes
        .iter()
        .map(|n| (n.name.clone(), dir.stdout_log(&n.name)))
        .collect();
    let mut streams = Vec::new();
    let mut hosts = Vec::new();
    for mut session in sessions {
        let request = Request::Logs {
            lab: plan.lab.clone(),
            from: Vec::new(),
            follow: true,
        };
        let heard = Arc::new(Heard::default());
        let (asks, mut requests) = mpsc::channel(ASK_QUEUE);
        let name = session.host.clone();
        hosts.push(Host {
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
        let (paths, stop) = (paths.clone(), stop.clone());
        streams.push(tokio::spawn(async move {
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
    let scene = Scene {
        plan,
        launched,
        started_at: dir.state.nodes_started_at.unwrap_or_else(wall_now),
        resume: None,
        graded_for: plan.grading.as_ref().map(|g| g.duration),
    };
    let ran = scenario::run(&mut hosts, scene, &Judged, cancel, progress).await;
    stop.cancel();
    for stream in streams {
        let _ = stream.await;
    }
    let ran = ran?;
    let report = judge_run(dir, &ran, launched, progress)?;
    Ok(report.with_hosts(HostsReport::new(plan, ran.lost.clone())))
}
