//! A running lab's figures for Prometheus (`sdss lab metrics`, `lab up/run
//! --metrics`): per ordered pair the injected and the measured delay, the
//! error, the verdict and the samples, the phase the timeline is in, the
//! nodes that run and the emulator's counters, so that "injected against
//! measured" can be graphed and alerted on.
//!
//! A scrape reads what the nodes wrote since the last one, as `watch` does
//! (incrementally, in bounded memory), on the endpoint's blocking pool; one
//! at a time. It is served by the node's endpoint, with its bounds (a few
//! connections, a small request, a deadline on each).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabel, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio_util::sync::CancellationToken;

use crate::lab::builder::emulator::PortCounters;
use crate::lab::builder::emulator_totals;
use crate::lab::builder::state::{ProcessRecord, StateError, StateRoot};
use crate::lab::judge::delays::PairVerdict;
use crate::lab::plan::timeline::PairState;
use crate::output::endpoint::{Endpoint, EndpointError};
use crate::output::metrics::Exposition;

use super::Source;

/// Binds `addr` for lab `lab`'s metrics; [`Endpoint::serve`] then serves them.
/// The lab need not be up yet: until it is, a scrape says `sdss_lab_up 0`.
pub async fn bind(
    root: StateRoot,
    lab: String,
    addr: SocketAddr,
) -> Result<Endpoint, EndpointError> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(LabCollector {
        root,
        lab,
        source: Mutex::new(None),
    }));
    Endpoint::bind(addr, Exposition::new(registry)).await
}

/// Serves lab `lab`'s metrics on `addr` until `cancel`.
pub async fn serve(
    root: StateRoot,
    lab: String,
    addr: SocketAddr,
    cancel: CancellationToken,
) -> Result<(), EndpointError> {
    bind(root, lab, addr).await?.serve(cancel).await;
    Ok(())
}

/// Reads the lab at each scrape.
struct LabCollector {
    root: StateRoot,
    lab: String,
    /// The lab's logs as followed so far; `None` until it is up.
    source: Mutex<Option<Source>>,
}

impl fmt::Debug for LabCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabCollector")
            .field("lab", &self.lab)
            .finish()
    }
}

/// One ordered pair now.
#[derive(Debug, Default)]
struct PairNow {
    from: String,
    to: String,
    /// The delay the current phase injects (absent when cut or a node is stopped), s.
    expected: Option<f64>,
    /// The median of its graded samples, s.
    measured: Option<f64>,
    /// Its last sample, s.
    last: Option<f64>,
    error: Option<f64>,
    tolerance: f64,
    /// `None`: not gradable.
    pass: Option<bool>,
    samples: usize,
    total_samples: usize,
    /// Whether it has all its samples.
    graded: bool,
}

/// What a scrape shows of a lab that is up.
#[derive(Debug, Default)]
struct Snapshot {
    elapsed: f64,
    phase: usize,
    phase_name: String,
    samples_wanted: usize,
    pairs: Vec<PairNow>,
    nodes: Vec<(String, bool)>,
    emulator: Option<PortCounters>,
}

impl LabCollector {
    /// The lab now, or `None` when it is not up (yet, or any more).
    fn snapshot(&self) -> Option<Snapshot> {
        let mut slot = self.source.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Source::open(&self.root, &self.lab).ok();
        }
        let source = slot.as_mut()?;
        if source.dir.reload().is_err() {
            *slot = None;
            return None;
        }
        source.dir.state.nodes_started_at?;
        let Ok(verification) = source.refresh() else {
            *slot = None;
            return None;
        };
        let elapsed = source.elapsed();
        let state = &source.dir.state;
        let plan = &state.plan;
        let phases = &plan.timeline.phases;
        let at = Duration::from_secs_f64(elapsed.max(0.0));
        let phase = phases.iter().rposition(|p| p.from <= at).unwrap_or(0);
        let phase_name = match phases.get(phase).and_then(|p| p.event) {
            Some(event) => plan
                .timeline
                .events
                .get(event)
                .map_or_else(String::new, |e| {
                    e.name.clone().unwrap_or_else(|| e.change.describe())
                }),
            None => "start".to_owned(),
        };
        let seconds = |ms: f64| ms / 1e3;
        let pairs = verification
            .pairs
            .iter()
            .map(|pair| {
                let expected = match phases.get(phase) {
                    Some(now) => now
                        .expected(&pair.from, &pair.to)
                        .map(|i| i.delay.as_secs_f64()),
                    None => Some(seconds(pair.expected_ms)),
                };
                let separated = phases
                    .get(phase)
                    .and_then(|p| p.pair(&pair.from, &pair.to))
                    .is_some_and(|s| matches!(s, PairState::Separated));
                PairNow {
                    from: pair.from.clone(),
                    to: pair.to.clone(),
                    expected: if separated { None } else { expected },
                    measured: pair.measured_ms.map(seconds),
                    last: pair.series.last().map(|s| seconds(s.ms)),
                    error: pair.error_ms.map(seconds),
                    tolerance: seconds(pair.tolerance_ms),
                    pass: match pair.verdict {
                        PairVerdict::Pass => Some(true),
                        PairVerdict::Fail => Some(false),
                        PairVerdict::Skipped => None,
                    },
                    samples: pair.samples,
                    total_samples: pair.total_samples,
                    graded: pair.samples >= verification.samples_wanted,
                }
            })
            .collect();
        let nodes = plan
            .nodes
            .iter()
            .map(|node| {
                let running = state
                    .processes
                    .iter()
                    .any(|p| p.node.as_deref() == Some(node.name.as_str()) && p.alive());
                (node.name.clone(), running)
            })
            .collect();
        Some(Snapshot {
            elapsed,
            phase,
            phase_name,
            samples_wanted: verification.samples_wanted,
            pairs,
            nodes,
            emulator: emulator_totals(&source.dir),
        })
    }
}

impl Collector for LabCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snapshot = self.snapshot();
        let lab = self.lab.as_str();
        let mut out = Out(&mut encoder);
        out.gauge(
            (
                "sdss_lab_up",
                "Whether the lab is up with its nodes started",
                None,
            ),
            [([("lab", lab)], f64::from(u8::from(snapshot.is_some())))],
        )?;
        let Some(now) = snapshot else {
            return Ok(());
        };
        let seconds = Some(Unit::Seconds);
        out.gauge(
            (
                "sdss_lab_elapsed",
                "Time since the lab's nodes started",
                seconds.clone(),
            ),
            [([("lab", lab)], now.elapsed)],
        )?;
        let number = now.phase.to_string();
        out.gauge(
            (
                "sdss_lab_phase",
                "The timeline's phase now (0: before its first event)",
                None,
            ),
            [([("lab", lab)], now.phase as f64)],
        )?;
        out.gauge(
            (
                "sdss_lab_phase_info",
                "The phase now and the event that began it (always 1)",
                None,
            ),
            [(
                [("lab", lab), ("phase", &number), ("name", &now.phase_name)],
                1.0,
            )],
        )?;
        out.gauge(
            (
                "sdss_lab_samples_wanted",
                "Samples each pair needs to be graded",
                None,
            ),
            [([("lab", lab)], now.samples_wanted as f64)],
        )?;
        out.gauge(
            ("sdss_lab_node_up", "Whether a node's process runs", None),
            now.nodes.iter().map(|(node, up)| {
                (
                    [("lab", lab), ("node", node.as_str())],
                    f64::from(u8::from(*up)),
                )
            }),
        )?;
        type Field = fn(&PairNow) -> Option<f64>;
        let pair_gauges: [(&str, &str, Option<Unit>, Field); 9] = [
            (
                "sdss_lab_pair_expected_delay",
                "Delay the current phase injects from one node to another (absent when cut)",
                seconds.clone(),
                |p| p.expected,
            ),
            (
                "sdss_lab_pair_measured_delay",
                "Median of the pair's graded samples",
                seconds.clone(),
                |p| p.measured,
            ),
            (
                "sdss_lab_pair_last_delay",
                "The pair's last sample",
                seconds.clone(),
                |p| p.last,
            ),
            (
                "sdss_lab_pair_error",
                "Measured minus floor minus expected, as judged",
                seconds.clone(),
                |p| p.error,
            ),
            (
                "sdss_lab_pair_tolerance",
                "Error allowed to the pair",
                seconds.clone(),
                |p| Some(p.tolerance),
            ),
            (
                "sdss_lab_pair_pass",
                "1 when the pair is within tolerance, 0 when it fails or is not measured",
                None,
                |p| p.pass.map(|v| f64::from(u8::from(v))),
            ),
            (
                "sdss_lab_pair_samples",
                "Samples graded so far (the pair is graded at sdss_lab_samples_wanted)",
                None,
                |p| Some(p.samples as f64),
            ),
            (
                "sdss_lab_pair_received_samples",
                "Every sample received, warm-up included",
                None,
                |p| Some(p.total_samples as f64),
            ),
            (
                "sdss_lab_pair_graded",
                "1 once the pair has all its samples",
                None,
                |p| Some(f64::from(u8::from(p.graded))),
            ),
        ];
        for (name, help, unit, field) in pair_gauges {
            out.gauge(
                (name, help, unit),
                now.pairs.iter().filter_map(|p| {
                    field(p).map(|v| {
                        (
                            [
                                ("lab", lab),
                                ("from", p.from.as_str()),
                                ("to", p.to.as_str()),
                            ],
                            v,
                        )
                    })
                }),
            )?;
        }
        if let Some(counters) = now.emulator {
            let kinds = [
                ("received", counters.received),
                ("forwarded", counters.forwarded),
                ("lost", counters.lost),
                ("cut", counters.cut),
                ("overflowed", counters.overflowed),
                ("rejected", counters.rejected),
                ("errors", counters.errors),
                ("unstamped", counters.unstamped),
                ("late", counters.late),
            ];
            let mut family = out.0.encode_descriptor(
                "sdss_lab_emulator_frames",
                "The link emulator's frames, by what became of them (as `lab verify` reports them)",
                None,
                MetricType::Counter,
            )?;
            for (kind, count) in kinds {
                let labels = [("lab", lab), ("kind", kind)];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Writes gauge families.
struct Out<'a, 'b>(&'a mut DescriptorEncoder<'b>);

impl Out<'_, '_> {
    fn gauge<L: EncodeLabel, const N: usize>(
        &mut self,
        (name, help, unit): (&str, &str, Option<Unit>),
        rows: impl IntoIterator<Item = ([L; N], f64)>,
    ) -> Result<(), fmt::Error> {
        let mut family = self
            .0
            .encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        for (labels, value) in rows {
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Why the metrics server that outlives `up` could not start.
#[derive(Debug, thiserror::Error)]
pub enum DetachError {
    /// The lab's state.
    #[error(transparent)]
    State(#[from] StateError),
    /// Starting the process.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What was started.
        program: String,
        /// The OS error.
        source: io::Error,
    },
    /// It exited before it served.
    #[error("the metrics server exited before serving on {addr}: {said}")]
    Exited {
        /// Where it was to listen.
        addr: SocketAddr,
        /// What it printed.
        said: String,
    },
    /// It did not answer on its address in time.
    #[error("the metrics server did not listen on {0} within {DETACH_WAIT:?}")]
    Silent(SocketAddr),
}

/// How long a detached server has to listen.
const DETACH_WAIT: Duration = Duration::from_secs(5);

/// Starts `sdss lab metrics LAB --listen ADDR` in a process group of its own,
/// records it among the lab's processes (so that `down` stops it with the
/// rest) and waits until it listens. Blocking. Returns its PID.
pub fn detach(
    root: &StateRoot,
    lab: &str,
    addr: SocketAddr,
    sdss: &Path,
) -> Result<u32, DetachError> {
    let mut dir = root
        .open(lab)?
        .ok_or_else(|| StateError::NotUp(lab.to_owned()))?;
    let log = dir.path().join("lab-metrics.err");
    let stderr = std::fs::File::create(&log).map_err(|source| StateError::Io {
        action: "creating",
        path: log.clone(),
        source,
    })?;
    let program = format!("{} lab metrics {lab} --listen {addr}", sdss.display());
    let mut child = Command::new(sdss)
        .args(["lab", "metrics", lab, "--listen", &addr.to_string()])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|source| DetachError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    let recorded = ProcessRecord::of(pid as i32, None);
    if let Err(e) = dir.record(|s| s.processes.extend(recorded)) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e.into());
    }
    let target = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    let deadline = Instant::now() + DETACH_WAIT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(DetachError::Exited {
                addr,
                said: said.trim().to_owned(),
            });
        }
        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            // Recorded: `down` stops it.
            return Err(DetachError::Silent(addr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::metrics::Format;

    #[test]
    fn a_lab_that_is_not_up_says_so_and_nothing_else() {
        let root = StateRoot::at(
            std::env::temp_dir().join(format!("sdss-lab-metrics-test-{}", std::process::id())),
        );
        let mut registry = Registry::default();
        registry.register_collector(Box::new(LabCollector {
            root,
            lab: "nolab".to_owned(),
            source: Mutex::new(None),
        }));
        let text = Exposition::new(registry).encode(Format::Text).unwrap();
        assert!(
            text.lines().any(|l| l == r#"sdss_lab_up{lab="nolab"} 0.0"#),
            "{text}"
        );
        assert!(!text.contains("sdss_lab_pair"), "{text}");
    }
}
