//! A node's metrics in the OpenMetrics text format (`--metrics`), for
//! Prometheus. Per-peer series are fed from the events the output renders:
//! a `neighbor` event sets them, a `removed` event deletes them, so their
//! number follows the neighbor table's, which is bounded. They are labelled
//! by the peer's address alone, which a restart keeps: a peer back with a
//! new ID continues its series, and `sdss_peer_info` says which ID it has
//! now. Counters come from the node's [`Tally`], exact where events are
//! limited or dropped; `process_*` and `sdss_build_info` are read at each
//! scrape.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

use crate::node::event::{NeighborReport, NodeEvent};
use crate::node::tally::{ExchangeResult, Tally};

use super::process::{Build, ProcessCollector};

/// The smallest bucket of the delay and RTT histograms: a loopback
/// handshake takes tens of microseconds.
const FIRST_BUCKET: f64 = 50e-6;
/// Buckets double from 50 us; the last is 0.82 s (then `+Inf`).
const BUCKETS: u16 = 15;

/// Which peer a series is about: its address (IP and TCP port), which
/// outlives its ID. The port tells apart peers that share an IP (nodes on
/// loopback).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PeerLabels {
    ip: String,
    port: u16,
}

/// A peer's exchanges by how they ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExchangeLabels {
    ip: String,
    port: u16,
    result: &'static str,
}

/// What a peer is now: the ID and dialect its address answers with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct InfoLabels {
    ip: String,
    port: u16,
    id: String,
    dialect: String,
}

type SecondsGauge = Gauge<f64, AtomicU64>;
type Seconds = Family<PeerLabels, SecondsGauge>;
type Histograms = Family<PeerLabels, Histogram, fn() -> Histogram>;

/// Creates the metrics of a node whose table holds at most `capacity` peers.
/// The first half goes to the output thread, which feeds it events; the
/// second to the endpoint, which encodes on each scrape.
pub fn metrics(tally: Arc<Tally>, capacity: usize) -> (PeerMetrics, Exposition) {
    let mut registry = Registry::default();
    let families = Families::default();
    let seconds = [
        (
            "sdss_peer_delay",
            "Delay measured to a neighbor at each exchange: its time's arrival minus its time (B -> A)",
            &families.delay as &dyn Registrable,
        ),
        (
            "sdss_peer_last_delay",
            "Last delay measured to a neighbor",
            &families.last_delay,
        ),
        (
            "sdss_peer_min_delay",
            "Smallest delay measured to a neighbor since it joined the table",
            &families.min_delay,
        ),
        (
            "sdss_peer_mean_delay",
            "Mean delay measured to a neighbor since it joined the table",
            &families.mean_delay,
        ),
        (
            "sdss_peer_jitter",
            "Mean absolute difference between a neighbor's consecutive delays",
            &families.jitter,
        ),
        (
            "sdss_peer_offset",
            "Estimated offset of a neighbor's clock against ours, assuming a symmetric path",
            &families.offset,
        ),
        (
            "sdss_peer_rtt",
            "TCP handshake time of each exchange with a neighbor",
            &families.rtt,
        ),
    ];
    for (name, help, family) in seconds {
        family.register(&mut registry, name, help);
    }
    registry.register(
        "sdss_peer_exchanges",
        "Timestamp exchanges with a neighbor, by result (success or failure)",
        families.exchanges.clone(),
    );
    registry.register(
        "sdss_peer_info",
        "The ID and dialect of the neighbor at an address (always 1)",
        families.info.clone(),
    );
    registry.register(
        "sdss_peers",
        "Neighbors: peers whose last exchange succeeded",
        families.peers.clone(),
    );
    registry.register_collector(Box::new(Counts(tally)));
    registry.register_collector(Box::new(Build));
    registry.register_collector(Box::new(ProcessCollector));
    let peer_metrics = PeerMetrics {
        families,
        series: HashMap::new(),
        capacity: capacity.max(1),
        next_touch: 0,
    };
    let exposition = Exposition {
        registry: Arc::new(registry),
    };
    (peer_metrics, exposition)
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(FIRST_BUCKET, 2.0, BUCKETS))
}

/// A family registered in seconds, whatever its metric.
trait Registrable {
    fn register(&self, registry: &mut Registry, name: &str, help: &str);
}

impl Registrable for Seconds {
    fn register(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register_with_unit(name, help, Unit::Seconds, self.clone());
    }
}

impl Registrable for Histograms {
    fn register(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register_with_unit(name, help, Unit::Seconds, self.clone());
    }
}

/// Every per-peer family; clones share their series.
#[derive(Debug)]
struct Families {
    delay: Histograms,
    last_delay: Seconds,
    min_delay: Seconds,
    mean_delay: Seconds,
    jitter: Seconds,
    offset: Seconds,
    rtt: Histograms,
    exchanges: Family<ExchangeLabels, Counter>,
    info: Family<InfoLabels, Gauge>,
    peers: Gauge,
}

impl Default for Families {
    fn default() -> Self {
        let histograms = || Histograms::new_with_constructor(seconds_histogram as fn() -> _);
        Families {
            delay: histograms(),
            last_delay: Seconds::default(),
            min_delay: Seconds::default(),
            mean_delay: Seconds::default(),
            jitter: Seconds::default(),
            offset: Seconds::default(),
            rtt: histograms(),
            exchanges: Family::default(),
            info: Family::default(),
            peers: Gauge::default(),
        }
    }
}

/// What is known of the peer at one address.
#[derive(Debug)]
struct Series {
    info: InfoLabels,
    /// The report's counts when last seen: the counters grow by the difference.
    successes: u64,
    failures: u64,
    touched: u64,
}

/// The per-peer series, updated from the node's events.
#[derive(Debug)]
pub struct PeerMetrics {
    families: Families,
    /// Each address with series.
    series: HashMap<SocketAddr, Series>,
    /// Most addresses with series: the table's bound.
    capacity: usize,
    next_touch: u64,
}

impl PeerMetrics {
    /// Takes what `event` says about a neighbor.
    pub fn observe(&mut self, event: &NodeEvent) {
        match event {
            NodeEvent::Neighbor(report) => self.measured(report),
            // Only the peer the series are about: the removal of an old ID
            // at an address a new one answers from leaves them.
            // (A removal names the IP, not the port: the ID tells which.)
            NodeEvent::Removed { id, ip, .. } => {
                let gone = self
                    .series
                    .iter()
                    .find(|(addr, s)| addr.ip() == *ip && s.info.id == id.as_str())
                    .map(|(addr, _)| *addr);
                if let Some(addr) = gone {
                    self.remove(&addr);
                }
            }
            _ => return,
        }
        self.families.peers.set(self.series.len() as i64);
    }

    fn measured(&mut self, report: &NeighborReport) {
        let addr = SocketAddr::new(report.ip, report.port);
        let labels = PeerLabels {
            ip: report.ip.to_string(),
            port: report.port,
        };
        let info = InfoLabels {
            ip: labels.ip.clone(),
            port: report.port,
            id: report.id.to_string(),
            dialect: label(report.dialect),
        };
        if !self.series.contains_key(&addr) && self.series.len() >= self.capacity {
            // The table never holds more neighbors than its capacity; only a
            // `removed` event lost in a full queue could make room short here.
            self.remove_stalest();
        }
        self.next_touch += 1;
        let series = self.series.entry(addr).or_insert_with(|| Series {
            info: info.clone(),
            successes: 0,
            failures: 0,
            touched: 0,
        });
        let f = &self.families;
        if series.info != info {
            if series.info.id != info.id {
                // A new ID is a new table entry: its counts start from zero.
                (series.successes, series.failures) = (0, 0);
            }
            f.info.remove(&series.info);
            series.info = info;
        }
        f.info.get_or_create(&series.info).set(1);
        let grown = |now: u64, before: u64| now.checked_sub(before).unwrap_or(now);
        for (result, now, before) in [
            ("success", report.successes, &mut series.successes),
            ("failure", report.failures, &mut series.failures),
        ] {
            let exchanges = ExchangeLabels {
                ip: labels.ip.clone(),
                port: labels.port,
                result,
            };
            f.exchanges
                .get_or_create(&exchanges)
                .inc_by(grown(now, *before));
            *before = now;
        }
        series.touched = self.next_touch;
        let seconds = |ms: f64| ms / 1e3;
        if let Some(delay) = report.delay_ms {
            f.delay.get_or_create(&labels).observe(seconds(delay));
        }
        for (family, value) in [
            (&f.last_delay, report.delay_ms),
            (&f.min_delay, report.min_ms),
            (&f.mean_delay, report.mean_ms),
            (&f.jitter, report.jitter_ms),
            (&f.offset, report.offset_ms),
        ] {
            set_or_remove(family, &labels, value.map(seconds));
        }
        f.rtt.get_or_create(&labels).observe(seconds(report.rtt_ms));
    }

    fn remove(&mut self, addr: &SocketAddr) {
        let Some(series) = self.series.remove(addr) else {
            return;
        };
        let f = &self.families;
        let labels = PeerLabels {
            ip: addr.ip().to_string(),
            port: addr.port(),
        };
        f.info.remove(&series.info);
        for result in ["success", "failure"] {
            f.exchanges.remove(&ExchangeLabels {
                ip: labels.ip.clone(),
                port: labels.port,
                result,
            });
        }
        for family in [
            &f.last_delay,
            &f.min_delay,
            &f.mean_delay,
            &f.jitter,
            &f.offset,
        ] {
            family.remove(&labels);
        }
        f.delay.remove(&labels);
        f.rtt.remove(&labels);
    }

    fn remove_stalest(&mut self) {
        let stalest = self
            .series
            .iter()
            .min_by_key(|(_, series)| series.touched)
            .map(|(addr, _)| *addr);
        if let Some(addr) = stalest {
            self.remove(&addr);
        }
    }
}

/// A peer whose time is unreadable (a 4-byte float) has no delay or offset.
fn set_or_remove(family: &Seconds, labels: &PeerLabels, value: Option<f64>) {
    match value {
        Some(value) => {
            family.get_or_create(labels).set(value);
        }
        None => {
            family.remove(labels);
        }
    }
}

/// The two text formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`# UNIT`, `# EOF`): what Prometheus asks for.
    OpenMetrics,
    /// The Prometheus text format 0.0.4: for anything else (curl, promtool).
    Text,
}

impl Format {
    /// OpenMetrics when `accept` (an `Accept` header) names it, else text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// What a scrape reads; cheap to clone.
#[derive(Debug, Clone)]
pub struct Exposition {
    registry: Arc<Registry>,
}

impl Exposition {
    /// Serves `registry`: what a process other than a node exposes (a lab's metrics).
    pub fn new(registry: Registry) -> Exposition {
        Exposition {
            registry: Arc::new(registry),
        }
    }

    /// Every series in `format` (OpenMetrics ends in `# EOF`).
    pub fn encode(&self, format: Format) -> Result<String, fmt::Error> {
        let mut text = String::new();
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut text, &self.registry)?
            }
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?
            }
        }
        Ok(text)
    }
}

/// The node's counters, read at each scrape.
#[derive(Debug)]
struct Counts(Arc<Tally>);

impl Collector for Counts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let tally = &self.0;
        counters(
            &mut encoder,
            ("sdss_datagrams", "Discovery datagrams sent and received."),
            "kind",
            tally.datagram_counts().map(|(kind, n)| (label(kind), n)),
        )?;
        counters(
            &mut encoder,
            ("sdss_exchanges", "Timestamp exchanges, by how they ended."),
            "result",
            tally.exchange_counts().map(|(result, n)| {
                let value = match result {
                    ExchangeResult::Success => "success".to_owned(),
                    ExchangeResult::Failed(cause) => label(cause),
                };
                (value, n)
            }),
        )?;
        counters(
            &mut encoder,
            (
                "sdss_warnings",
                "Warnings, shown or suppressed by the rate limit.",
            ),
            "kind",
            tally.warning_counts().map(|(kind, n)| (label(kind), n)),
        )
    }
}

/// One counter family, one series per `(label value, count)`.
fn counters(
    encoder: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    key: &str,
    counts: impl Iterator<Item = (String, u64)>,
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in counts {
        let labels = [(key, value.as_str())];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The name a kind or cause has in the JSON output: one word per concept.
fn label(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::event::{RemovalCause, WarningKind};
    use crate::node::tally::DatagramKind;
    use crate::protocol::Dialect;

    fn report(id: &str, ip: &str, delay_ms: Option<f64>) -> NodeEvent {
        NodeEvent::Neighbor(NeighborReport {
            id: id.parse().unwrap(),
            ip: ip.parse().unwrap(),
            port: 6758,
            delay_ms,
            rtt_ms: 0.2,
            offset_ms: delay_ms.map(|d| d / 2.0),
            min_ms: delay_ms,
            mean_ms: delay_ms,
            jitter_ms: None,
            samples: 1,
            successes: 1,
            failures: 0,
            dialect: Dialect::BinaryBe,
        })
    }

    fn removed(id: &str, ip: &str) -> NodeEvent {
        NodeEvent::Removed {
            id: id.parse().unwrap(),
            ip: ip.parse().unwrap(),
            cause: RemovalCause::Refused,
            reason: "refresh failed: connection refused".into(),
        }
    }

    #[test]
    fn the_exposition_has_each_neighbors_series_and_the_counts_in_base_units() {
        let tally = Arc::new(Tally::default());
        let (mut peers, exposition) = metrics(tally.clone(), 16);
        peers.observe(&report("aaaaaaaa", "10.0.0.2", Some(1.5)));
        peers.observe(&report("bbbbbbbb", "10.0.0.3", Some(3.0)));
        let NodeEvent::Neighbor(mut again) = report("bbbbbbbb", "10.0.0.3", Some(4.0)) else {
            unreachable!()
        };
        (again.successes, again.failures, again.jitter_ms) = (2, 1, Some(1.0));
        peers.observe(&NodeEvent::Neighbor(again));
        tally.datagram(DatagramKind::Heard);
        tally.datagram(DatagramKind::Heard);
        tally.exchange(ExchangeResult::Failed(RemovalCause::NoAnswer));
        tally.warnings(WarningKind::MalformedDatagram, 3);
        let text = exposition.encode(Format::OpenMetrics).unwrap();
        for line in [
            "# TYPE sdss_peer_delay_seconds histogram",
            "# UNIT sdss_peer_delay_seconds seconds",
            r#"sdss_peer_delay_seconds_bucket{le="0.0016",ip="10.0.0.2",port="6758"} 1"#,
            r#"sdss_peer_delay_seconds_count{ip="10.0.0.3",port="6758"} 2"#,
            r#"sdss_peer_delay_seconds_sum{ip="10.0.0.3",port="6758"} 0.007"#,
            r#"sdss_peer_last_delay_seconds{ip="10.0.0.2",port="6758"} 0.0015"#,
            r#"sdss_peer_last_delay_seconds{ip="10.0.0.3",port="6758"} 0.004"#,
            r#"sdss_peer_min_delay_seconds{ip="10.0.0.3",port="6758"} 0.004"#,
            r#"sdss_peer_mean_delay_seconds{ip="10.0.0.3",port="6758"} 0.004"#,
            r#"sdss_peer_jitter_seconds{ip="10.0.0.3",port="6758"} 0.001"#,
            r#"sdss_peer_offset_seconds{ip="10.0.0.3",port="6758"} 0.002"#,
            "# TYPE sdss_peer_rtt_seconds histogram",
            r#"sdss_peer_rtt_seconds_bucket{le="0.00005",ip="10.0.0.2",port="6758"} 0"#,
            r#"sdss_peer_rtt_seconds_bucket{le="0.0001",ip="10.0.0.2",port="6758"} 0"#,
            r#"sdss_peer_rtt_seconds_bucket{le="0.0002",ip="10.0.0.3",port="6758"} 2"#,
            r#"sdss_peer_rtt_seconds_count{ip="10.0.0.3",port="6758"} 2"#,
            r#"sdss_peer_exchanges_total{ip="10.0.0.3",port="6758",result="success"} 2"#,
            r#"sdss_peer_exchanges_total{ip="10.0.0.3",port="6758",result="failure"} 1"#,
            r#"sdss_peer_info{ip="10.0.0.2",port="6758",id="aaaaaaaa",dialect="binary_be"} 1"#,
            "sdss_peers 2",
            "# TYPE sdss_datagrams counter",
            r#"sdss_datagrams_total{kind="heard"} 2"#,
            r#"sdss_datagrams_total{kind="malformed"} 0"#,
            r#"sdss_exchanges_total{result="success"} 0"#,
            r#"sdss_exchanges_total{result="no_answer"} 1"#,
            r#"sdss_warnings_total{kind="malformed_datagram"} 3"#,
            r#"sdss_warnings_total{kind="events_dropped"} 0"#,
            concat!(
                r#"sdss_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
            "# TYPE process_cpu_seconds counter",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_open_fds gauge",
            "# TYPE process_start_time_seconds gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        assert!(!text.contains(r#"result="silent""#), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let text = exposition.encode(Format::Text).unwrap();
        for line in [
            "# TYPE sdss_exchanges_total counter",
            r#"sdss_exchanges_total{result="no_answer"} 1"#,
            r#"sdss_peer_last_delay_seconds{ip="10.0.0.2",port="6758"} 0.0015"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }

    #[test]
    fn a_removed_neighbor_leaves_no_series_behind() {
        let (mut peers, exposition) = metrics(Arc::new(Tally::default()), 16);
        peers.observe(&report("aaaaaaaa", "10.0.0.2", Some(1.5)));
        peers.observe(&report("bbbbbbbb", "10.0.0.3", Some(3.0)));
        peers.observe(&removed("aaaaaaaa", "10.0.0.2"));
        let text = exposition.encode(Format::OpenMetrics).unwrap();
        assert!(!text.contains("10.0.0.2"), "{text}");
        assert!(text.contains(r#"id="bbbbbbbb""#), "{text}");
        assert!(text.lines().any(|l| l == "sdss_peers 1"), "{text}");
    }

    #[test]
    fn peers_sharing_an_ip_keep_series_of_their_own() {
        let (mut peers, exposition) = metrics(Arc::new(Tally::default()), 16);
        let NodeEvent::Neighbor(mut other) = report("bbbbbbbb", "127.0.0.1", Some(2.0)) else {
            unreachable!()
        };
        other.port = 6759;
        peers.observe(&report("aaaaaaaa", "127.0.0.1", Some(1.0)));
        peers.observe(&NodeEvent::Neighbor(other));
        peers.observe(&removed("aaaaaaaa", "127.0.0.1"));
        let text = exposition.encode(Format::OpenMetrics).unwrap();
        assert!(!text.contains("aaaaaaaa"), "{text}");
        for line in [
            r#"sdss_peer_last_delay_seconds{ip="127.0.0.1",port="6759"} 0.002"#,
            "sdss_peers 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains(r#"port="6758""#), "{text}");
    }

    #[test]
    fn a_peer_back_with_a_new_id_keeps_its_series_and_changes_its_info() {
        let (mut peers, exposition) = metrics(Arc::new(Tally::default()), 16);
        peers.observe(&report("aaaaaaaa", "10.0.0.2", Some(1.5)));
        peers.observe(&report("cccccccc", "10.0.0.2", Some(2.5)));
        // The old ID's removal comes late: the new one's series stay.
        peers.observe(&removed("aaaaaaaa", "10.0.0.2"));
        let text = exposition.encode(Format::OpenMetrics).unwrap();
        assert!(!text.contains("aaaaaaaa"), "{text}");
        for line in [
            r#"sdss_peer_info{ip="10.0.0.2",port="6758",id="cccccccc",dialect="binary_be"} 1"#,
            r#"sdss_peer_delay_seconds_count{ip="10.0.0.2",port="6758"} 2"#,
            // The new table entry counts from zero: the counter still grows.
            r#"sdss_peer_exchanges_total{ip="10.0.0.2",port="6758",result="success"} 2"#,
            "sdss_peers 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn a_peer_without_a_readable_time_has_an_rtt_but_no_delay() {
        let (mut peers, exposition) = metrics(Arc::new(Tally::default()), 16);
        peers.observe(&report("aaaaaaaa", "10.0.0.2", Some(1.5)));
        peers.observe(&report("aaaaaaaa", "10.0.0.2", None));
        let text = exposition.encode(Format::OpenMetrics).unwrap();
        assert!(!text.contains("sdss_peer_last_delay_seconds{"), "{text}");
        assert!(!text.contains("sdss_peer_offset_seconds{"), "{text}");
        assert!(text.contains(r#"sdss_peer_delay_seconds_count{ip="10.0.0.2",port="6758"} 1"#));
        assert!(text.contains(r#"sdss_peer_rtt_seconds_count{ip="10.0.0.2",port="6758"} 2"#));
    }

    #[test]
    fn series_never_outnumber_the_tables_capacity() {
        // Removals lost in a full queue must not let series grow without bound.
        let (mut peers, exposition) = metrics(Arc::new(Tally::default()), 2);
        for ip in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
            peers.observe(&report("aaaaaaaa", ip, Some(1.0)));
        }
        let text = exposition.encode(Format::OpenMetrics).unwrap();
        assert!(
            !text.contains("10.0.0.2"),
            "the stalest goes first:\n{text}"
        );
        assert!(text.lines().any(|l| l == "sdss_peers 2"), "{text}");
    }
}
