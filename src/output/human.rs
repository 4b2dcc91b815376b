//! Event lines and the neighbor table for a terminal.

use std::collections::BTreeMap;

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};

use crate::node::event::{NeighborReport, NodeEvent};
use crate::protocol::NodeId;
use crate::table::{Align, Table};

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const RED: Style = AnsiColor::Red.on_default();
const GREEN: Style = AnsiColor::Green.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const BLUE: Style = AnsiColor::Blue.on_default();
const CYAN: Style = AnsiColor::Cyan.on_default();

/// Renders events for people; keeps the latest report per neighbor for the table.
#[derive(Debug)]
pub struct Human {
    color: bool,
    verbose: bool,
    neighbors: BTreeMap<NodeId, NeighborReport>,
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

impl Human {
    /// A renderer; `color` adds ANSI colours, `verbose` shows heard and served lines.
    pub fn new(color: bool, verbose: bool) -> Self {
        Human {
            color,
            verbose,
            neighbors: BTreeMap::new(),
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    /// The line for `event` (empty when the event is not shown), ending in a newline.
    pub fn event(&mut self, event: &NodeEvent, now: DateTime<Utc>) -> String {
        let body = match event {
            NodeEvent::Started {
                id,
                tcp_port,
                broadcast_port,
                destinations,
                interval_ms,
                refresh_every,
            } => format!(
                "{} node {} serving timestamps on TCP {tcp_port}; announcing every {interval_ms} ms on UDP {broadcast_port} to {}; refresh every {refresh_every} broadcasts",
                self.paint(BOLD, "started"),
                self.paint(BOLD, id.as_str()),
                if destinations.is_empty() { "nothing yet".to_owned() } else { destinations.join(", ") },
            ),
            NodeEvent::Heard { id, ip, port } if self.verbose => {
                self.paint(DIM, &format!("heard {id} from {ip} (TCP {port})"))
            }
            NodeEvent::Served { peer, dialect, client_dialect } if self.verbose => self.paint(
                DIM,
                &format!(
                    "served {peer} in {dialect}{}",
                    client_dialect.map(|d| format!(" (it spoke {d})")).unwrap_or_default()
                ),
            ),
            NodeEvent::Heard { .. } | NodeEvent::Served { .. } => return String::new(),
            NodeEvent::Discovered { id, ip, port } => {
                format!("{} {id} at {ip}:{port}", self.paint(CYAN, "discovered"))
            }
            NodeEvent::Neighbor(report) => {
                let line = format!(
                    "{} {} delay {} ms  rtt {:.3} ms  offset {} ms  ({} samples, {})",
                    self.paint(GREEN, "measured"),
                    report.id,
                    ms(report.delay_ms),
                    report.rtt_ms,
                    ms(report.offset_ms),
                    report.samples,
                    report.dialect
                );
                self.neighbors.insert(report.id.clone(), report.clone());
                line
            }
            NodeEvent::Removed { id, ip, reason, .. } => {
                self.neighbors.remove(id);
                format!("{} {id} ({ip}): {reason}", self.paint(RED, "removed"))
            }
            NodeEvent::Warning { message, .. } => format!("{} {message}", self.paint(YELLOW, "warning")),
            NodeEvent::Stopped => self.paint(BOLD, "stopped"),
        };
        format!(
            "{} {body}\n",
            self.paint(BLUE, &now.format("%H:%M:%S%.3f").to_string())
        )
    }

    /// The neighbor table, or nothing when there are no neighbors.
    pub fn table(&self) -> String {
        if self.neighbors.is_empty() {
            return String::new();
        }
        // Fixed minimum widths: the tables printed one after another line up.
        let mut table = Table::new(&[
            ("NEIGHBOR", Align::Left, 10),
            ("TIMESTAMP SERVER", Align::Left, 21),
            ("DELAY ms", Align::Right, 9),
            ("MIN", Align::Right, 9),
            ("MEAN", Align::Right, 9),
            ("JITTER", Align::Right, 8),
            ("RTT ms", Align::Right, 9),
            ("SAMPLES", Align::Right, 7),
            ("DIALECT", Align::Left, 0),
        ])
        .indent("  ")
        .gap(" ");
        for report in self.neighbors.values() {
            table.row(vec![
                report.id.as_str().to_owned(),
                format!("{}:{}", report.ip, report.port),
                ms(report.delay_ms),
                ms(report.min_ms),
                ms(report.mean_ms),
                ms(report.jitter_ms),
                format!("{:.3}", report.rtt_ms),
                report.samples.to_string(),
                report.dialect.to_string(),
            ]);
        }
        format!("{}\n{}", self.paint(BOLD, &table.header()), table.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Dialect;

    fn report(id: &str, delay_ms: f64) -> NeighborReport {
        NeighborReport {
            id: id.parse().unwrap(),
            ip: "10.0.0.2".parse().unwrap(),
            port: 6758,
            delay_ms: Some(delay_ms),
            rtt_ms: 2.0 * delay_ms,
            offset_ms: Some(0.0),
            min_ms: Some(delay_ms),
            mean_ms: Some(delay_ms),
            jitter_ms: None,
            samples: 1,
            successes: 1,
            failures: 0,
            dialect: Dialect::BinaryBe,
        }
    }

    #[test]
    fn the_table_follows_measurements_and_removals() {
        let mut human = Human::new(false, false);
        let now = Utc::now();
        assert_eq!(human.table(), "");
        human.event(&NodeEvent::Neighbor(report("aaaaaaaa", 1.5)), now);
        human.event(&NodeEvent::Neighbor(report("bbbbbbbb", 2.5)), now);
        let table = human.table();
        assert!(
            table.contains("aaaaaaaa") && table.contains("bbbbbbbb"),
            "{table}"
        );
        assert!(table.contains("1.500"), "{table}");
        human.event(&removed(), now);
        assert!(!human.table().contains("aaaaaaaa"));
    }

    fn removed() -> NodeEvent {
        NodeEvent::Removed {
            id: "aaaaaaaa".parse().unwrap(),
            ip: "10.0.0.2".parse().unwrap(),
            cause: crate::node::event::RemovalCause::Refused,
            reason: "refresh failed: connection refused".into(),
        }
    }

    #[test]
    fn heard_lines_only_when_verbose_and_no_colour_codes_when_off() {
        let heard = NodeEvent::Heard {
            id: "aaaaaaaa".parse().unwrap(),
            ip: "10.0.0.2".parse().unwrap(),
            port: 1,
        };
        assert_eq!(Human::new(false, false).event(&heard, Utc::now()), "");
        let line = Human::new(false, true).event(&heard, Utc::now());
        assert!(
            line.contains("heard aaaaaaaa from 10.0.0.2") && !line.contains('\x1b'),
            "{line}"
        );
        let line = Human::new(true, true).event(&heard, Utc::now());
        assert!(line.contains('\x1b'));
        // Plain SGR codes that every terminal reads, each word reset after.
        let line = Human::new(true, false).event(&NodeEvent::Stopped, Utc::now());
        assert!(line.contains("\x1b[1mstopped\x1b[0m"), "{line:?}");
        let line = Human::new(true, false).event(&removed(), Utc::now());
        assert!(line.contains("\x1b[31mremoved\x1b[0m"), "{line:?}");
    }
}
