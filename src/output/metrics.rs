//! A node's metrics in the OpenMetrics text format (`--metrics`), for
//! Prometheus. Per-peer series are fed from the events the output renders:
//! a `neighbor` event sets them, a `removed` event deletes them, so their
//! number follows the neighbor table's, which is bounded. Counters come from
//! the node's [`Tally`], exact where events are limited or dropped.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

use crate::node::event::{NeighborReport, NodeEvent};
use crate::node::tally::{ExchangeResult, Tally};
use crate::protocol::NodeId;

/// The smallest RTT bucket: a loopback handshake takes tens of microseconds.
const RTT_FIRST_BUCKET: f64 = 50e-6;
/// Buckets double from 50 us; the last is 0.82 s (then `+Inf`).
const RTT_BUCKETS: u16 = 15;

/// Which peer a series is about: its ID and address, nothing else, so that
/// there is one series per neighbor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PeerLabels {
    id: String,
    ip: String,
}

type SecondsGauge = Gauge<f64, AtomicU64>;

/// Creates the metrics of a node whose table holds at most `capacity` peers.
/// The first half goes to the output thread, which feeds it events; the
/// second to the endpoint, which encodes on each scrape.
pub fn metrics(tally: Arc<Tally>, capacity: usize) -> (PeerMetrics, Exposition) {
    let mut registry = Registry::default();
    let delay = Family::<PeerLabels, SecondsGauge>::default();
    let offset = Family::<PeerLabels, SecondsGauge>::default();
    let rtt = Family::<PeerLabels, Histogram>::new_with_constructor(rtt_histogram as fn() -> _);
    let peers = Gauge::<i64>::default();
    registry.register_with_unit(
        "sdss_peer_delay",
        "Last delay measured to a neighbor: its time's arrival minus its time (B -> A)",
        Unit::Seconds,
        delay.clone(),
    );
    registry.register_with_unit(
        "sdss_peer_offset",
        "Estimated offset of a neighbor's clock against ours, assuming a symmetric path",
        Unit::Seconds,
        offset.clone(),
    );
    registry.register_with_unit(
        "sdss_peer_rtt",
        "TCP handshake time of each exchange with a neighbor",
        Unit::Seconds,
        rtt.clone(),
    );
    registry.register(
        "sdss_peers",
        "Neighbors: peers whose last exchange succeeded",
        peers.clone(),
    );
    registry.register_collector(Box::new(Counts(tally)));
    let peer_metrics = PeerMetrics {
        delay,
        offset,
        rtt,
        peers,
        series: HashMap::new(),
        capacity: capacity.max(1),
        next_touch: 0,
    };
    let exposition = Exposition {
        registry: Arc::new(registry),
    };
    (peer_metrics, exposition)
}

fn rtt_histogram() -> Histogram {
    Histogram::new(exponential_buckets(RTT_FIRST_BUCKET, 2.0, RTT_BUCKETS))
}

/// The per-peer series, updated from the node's events.
#[derive(Debug)]
pub struct PeerMetrics {
    delay: Family<PeerLabels, SecondsGauge>,
    offset: Family<PeerLabels, SecondsGauge>,
    rtt: Family<PeerLabels, Histogram, fn() -> Histogram>,
    peers: Gauge<i64>,
    /// The labels of each neighbor's series and when they were last set.
    series: HashMap<NodeId, (PeerLabels, u64)>,
    /// Most neighbors with series: the table's bound.
    capacity: usize,
    next_touch: u64,
}

impl PeerMetrics {
    /// Takes what `event` says about a neighbor.
    pub fn observe(&mut self, event: &NodeEvent) {
        match event {
            NodeEvent::Neighbor(report) => self.measured(report),
            NodeEvent::Removed { id, .. } => self.remove(id),
            _ => return,
        }
        self.peers.set(self.series.len() as i64);
    }

    fn measured(&mut self, report: &NeighborReport) {
        let labels = PeerLabels {
            id: report.id.to_string(),
            ip: report.ip.to_string(),
        };
        match self.series.get(&report.id) {
            Some((known, _)) if *known != labels => self.remove(&report.id),
            Some(_) => {}
            // The table never holds more neighbors than its capacity; only a
            // `removed` event lost in a full queue could make room short here.
            None if self.series.len() >= self.capacity => self.remove_stalest(),
            None => {}
        }
        let seconds = |ms: f64| ms / 1e3;
        set_or_remove(&self.delay, &labels, report.delay_ms.map(seconds));
        set_or_remove(&self.offset, &labels, report.offset_ms.map(seconds));
        self.rtt
            .get_or_create(&labels)
            .observe(seconds(report.rtt_ms));
        self.next_touch += 1;
        self.series
            .insert(report.id.clone(), (labels, self.next_touch));
    }

    fn remove(&mut self, id: &NodeId) {
        if let Some((labels, _)) = self.series.remove(id) {
            self.delay.remove(&labels);
            self.offset.remove(&labels);
            self.rtt.remove(&labels);
        }
    }

    fn remove_stalest(&mut self) {
        let stalest = self
            .series
            .iter()
            .min_by_key(|(_, (_, touched))| *touched)
            .map(|(id, _)| id.clone());
        if let Some(id) = stalest {
            self.remove(&id);
        }
    }
}

/// A peer whose time is unreadable (a 4-byte float) has no delay or offset.
fn set_or_remove(
    family: &Family<PeerLabels, SecondsGauge>,
    labels: &PeerLabels,
    value: Option<f64>,
) {
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
        peers.observe(&report("bbbbbbbb", "10.0.0.3", Some(4.0)));
        tally.datagram(DatagramKind::Heard);
        tally.datagram(DatagramKind::Heard);
        tally.exchange(ExchangeResult::Failed(RemovalCause::NoAnswer));
        tally.warnings(WarningKind::MalformedDatagram, 3);
        let text = exposition.encode(Format::OpenMetrics).unwrap();
        for line in [
            "# TYPE sdss_peer_delay_seconds gauge",
            "# UNIT sdss_peer_delay_seconds seconds",
            r#"sdss_peer_delay_seconds{id="aaaaaaaa",ip="10.0.0.2"} 0.0015"#,
            r#"sdss_peer_delay_seconds{id="bbbbbbbb",ip="10.0.0.3"} 0.004"#,
            r#"sdss_peer_offset_seconds{id="bbbbbbbb",ip="10.0.0.3"} 0.002"#,
            "# TYPE sdss_peer_rtt_seconds histogram",
            r#"sdss_peer_rtt_seconds_bucket{le="0.00005",id="aaaaaaaa",ip="10.0.0.2"} 0"#,
            r#"sdss_peer_rtt_seconds_bucket{le="0.0001",id="aaaaaaaa",ip="10.0.0.2"} 0"#,
            r#"sdss_peer_rtt_seconds_bucket{le="0.0002",id="bbbbbbbb",ip="10.0.0.3"} 2"#,
            r#"sdss_peer_rtt_seconds_count{id="bbbbbbbb",ip="10.0.0.3"} 2"#,
            "sdss_peers 2",
            "# TYPE sdss_datagrams counter",
            r#"sdss_datagrams_total{kind="heard"} 2"#,
            r#"sdss_datagrams_total{kind="malformed"} 0"#,
            r#"sdss_exchanges_total{result="success"} 0"#,
            r#"sdss_exchanges_total{result="no_answer"} 1"#,
            r#"sdss_warnings_total{kind="malformed_datagram"} 3"#,
            r#"sdss_warnings_total{kind="events_dropped"} 0"#,
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
            r#"sdss_peer_delay_seconds{id="aaaaaaaa",ip="10.0.0.2"} 0.0015"#,
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
        assert!(!text.contains("aaaaaaaa"), "{text}");
        assert!(text.contains(r#"id="bbbbbbbb""#), "{text}");
        assert!(text.lines().any(|l| l == "sdss_peers 1"), "{text}");
    }

    #[test]
    fn a_peer_without_a_readable_time_has_an_rtt_but_no_delay() {
        let (mut peers, exposition) = metrics(Arc::new(Tally::default()), 16);
        peers.observe(&report("aaaaaaaa", "10.0.0.2", Some(1.5)));
        peers.observe(&report("aaaaaaaa", "10.0.0.2", None));
        let text = exposition.encode(Format::OpenMetrics).unwrap();
        assert!(!text.contains("sdss_peer_delay_seconds{"), "{text}");
        assert!(!text.contains("sdss_peer_offset_seconds{"), "{text}");
        assert!(text.contains(r#"sdss_peer_rtt_seconds_count{id="aaaaaaaa",ip="10.0.0.2"} 2"#));
    }

    #[test]
    fn series_never_outnumber_the_tables_capacity() {
        // Removals lost in a full queue must not let series grow without bound.
        let (mut peers, exposition) = metrics(Arc::new(Tally::default()), 2);
        for id in ["aaaaaaaa", "bbbbbbbb", "cccccccc"] {
            peers.observe(&report(id, "10.0.0.2", Some(1.0)));
        }
        let text = exposition.encode(Format::OpenMetrics).unwrap();
        assert!(
            !text.contains("aaaaaaaa"),
            "the stalest goes first:\n{text}"
        );
        assert!(text.lines().any(|l| l == "sdss_peers 2"), "{text}");
    }
}
