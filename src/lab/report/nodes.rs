//! What `lab status LAB --nodes` prints: one row per node (its process, its
//! address, whether it runs, its neighbours and its last sample, read from
//! its own events), as a table, or as JSON or CSV with the same fields.

use std::borrow::Cow;

use super::status::{csv_field, StatusFormat};
use crate::table::{Align, Table};

/// One node of a running lab. Its field names are the JSON keys and the
/// CSV header ([`NODE_FIELDS`]): a contract for scripts, kept stable.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeStatus {
    /// The lab.
    pub lab: String,
    /// The node.
    pub node: String,
    /// Its process (also its process group), when one was started.
    pub pid: Option<i32>,
    /// Its address on the lab's link.
    pub address: String,
    /// `running`, `exited`, or `not started`.
    pub state: NodeState,
    /// How it ended: `stopped` when its events end with a clean stop, else
    /// `killed or crashed`. Its exit code was its parent's to collect, and
    /// that `up` is gone.
    pub ended: Option<String>,
    /// Peers in its table after its last event (an sdss node's events only).
    pub neighbours: Option<usize>,
    /// The node its last sample measured.
    pub last_peer: Option<String>,
    /// That sample's delay.
    pub last_delay_ms: Option<f64>,
    /// How long ago it was taken, in seconds.
    pub last_age_s: Option<f64>,
}

/// Whether a node's process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// It runs.
    Running,
    /// It ran and exited (or was killed).
    Exited,
    /// No process was recorded for it.
    NotStarted,
}

impl NodeState {
    /// The word the table, CSV and JSON show.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Running => "running",
            NodeState::Exited => "exited",
            NodeState::NotStarted => "not_started",
        }
    }
}

/// The fields of a [`NodeStatus`], in order: JSON keys and CSV header.
pub const NODE_FIELDS: [&str; 10] = [
    "lab",
    "node",
    "pid",
    "address",
    "state",
    "ended",
    "neighbours",
    "last_peer",
    "last_delay_ms",
    "last_age_s",
];

/// The nodes in `format`, ending with a newline.
pub fn render_nodes(nodes: &[NodeStatus], format: StatusFormat) -> serde_json::Result<String> {
    Ok(match format {
        StatusFormat::Table => nodes_table(nodes),
        StatusFormat::Json => serde_json::to_string_pretty(nodes)? + "\n",
        StatusFormat::Csv => nodes_csv(nodes),
    })
}

fn nodes_table(nodes: &[NodeStatus]) -> String {
    let mut table = Table::new(&[
        ("NODE", Align::Left, 8),
        ("PID", Align::Right, 7),
        ("ADDRESS", Align::Left, 15),
        ("STATE", Align::Left, 8),
        ("NEIGHBOURS", Align::Right, 10),
        ("LAST SAMPLE", Align::Left, 0),
    ]);
    for n in nodes {
        let state = match &n.ended {
            Some(how) => format!("{} ({how})", n.state.as_str()),
            None => n.state.as_str().to_owned(),
        };
        let last = match (&n.last_peer, n.last_delay_ms, n.last_age_s) {
            (Some(peer), Some(ms), Some(age)) => {
                format!("{ms:.3} ms from {peer}, {} ago", age_text(age))
            }
            _ => "-".to_owned(),
        };
        table.row(vec![
            n.node.clone(),
            n.pid.map_or("-".to_owned(), |p| p.to_string()),
            n.address.clone(),
            state,
            n.neighbours.map_or("-".to_owned(), |c| c.to_string()),
            last,
        ]);
    }
    table.render()
}

/// An age for people: tenths of a second below a minute, then minutes.
fn age_text(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{:.1} s", seconds.max(0.0))
    } else {
        format!(
            "{} min {} s",
            (seconds / 60.0) as u64,
            (seconds % 60.0) as u64
        )
    }
}

fn nodes_csv(nodes: &[NodeStatus]) -> String {
    let mut out = NODE_FIELDS.join(",") + "\n";
    let opt = |v: Option<String>| v.map_or(Cow::Borrowed(""), Cow::Owned);
    for n in nodes {
        let row = [
            Cow::Borrowed(n.lab.as_str()),
            Cow::Borrowed(n.node.as_str()),
            opt(n.pid.map(|p| p.to_string())),
            Cow::Borrowed(n.address.as_str()),
            Cow::Borrowed(n.state.as_str()),
            opt(n.ended.clone()),
            opt(n.neighbours.map(|c| c.to_string())),
            opt(n.last_peer.clone()),
            opt(n.last_delay_ms.map(|v| format!("{v:.3}"))),
            opt(n.last_age_s.map(|v| format!("{v:.1}"))),
        ];
        let row: Vec<Cow<str>> = row.iter().map(|field| csv_field(field)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeStatus> {
        vec![
            NodeStatus {
                lab: "five".to_owned(),
                node: "a".to_owned(),
                pid: Some(4242),
                address: "198.18.5.1".to_owned(),
                state: NodeState::Running,
                ended: None,
                neighbours: Some(4),
                last_peer: Some("e".to_owned()),
                last_delay_ms: Some(41.0234),
                last_age_s: Some(0.43),
            },
            NodeStatus {
                lab: "five".to_owned(),
                node: "b".to_owned(),
                pid: Some(4243),
                address: "198.18.5.2".to_owned(),
                state: NodeState::Exited,
                ended: Some("stopped".to_owned()),
                neighbours: Some(0),
                last_peer: None,
                last_delay_ms: None,
                last_age_s: None,
            },
        ]
    }

    #[test]
    fn the_table_has_a_row_per_node() {
        let table = render_nodes(&nodes(), StatusFormat::Table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("NODE ") && lines[0].ends_with("LAST SAMPLE"));
        assert!(lines[1].starts_with("a ") && lines[1].contains(" 4242  198.18.5.1 "));
        assert!(lines[1].ends_with("41.023 ms from e, 0.4 s ago"), "{table}");
        assert!(lines[2].contains("exited (stopped)") && lines[2].ends_with(" -"));
        assert_eq!(age_text(125.0), "2 min 5 s");
    }

    #[test]
    fn json_and_csv_have_the_same_fields() {
        let json: serde_json::Value =
            serde_json::from_str(&render_nodes(&nodes(), StatusFormat::Json).unwrap()).unwrap();
        let mut keys: Vec<&str> = json[0].as_object().unwrap().keys().map(|k| &**k).collect();
        keys.sort_unstable();
        let mut fields = NODE_FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys, fields);
        assert_eq!(json[1]["state"], "exited");
        assert_eq!(json[1]["last_delay_ms"], serde_json::Value::Null);
        assert_eq!(
            render_nodes(&nodes(), StatusFormat::Csv).unwrap(),
            "lab,node,pid,address,state,ended,neighbours,last_peer,last_delay_ms,last_age_s\n\
             five,a,4242,198.18.5.1,running,,4,e,41.023,0.4\n\
             five,b,4243,198.18.5.2,exited,stopped,0,,,\n"
        );
    }
}
