//! What `lab status` prints: one line per lab, as a table for people
//! (`table`, the default) or for programs as JSON or CSV with the same fields.

use std::borrow::Cow;
use std::path::PathBuf;

use crate::lab::plan::backend::BackendKind;
use crate::table::{Align, Table};

/// One line per lab with state. Its field names are the JSON keys and the CSV
/// header ([`STATUS_FIELDS`]): a contract for scripts, kept stable.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabStatus {
    /// The lab.
    pub lab: String,
    /// Where it is in its life.
    pub phase: LabPhase,
    /// Nodes whose process runs.
    pub nodes_running: usize,
    /// Nodes in the plan.
    pub nodes: usize,
    /// Delay backend.
    pub backend: Option<BackendKind>,
    /// The lab file.
    pub source: PathBuf,
    /// When `up` began (RFC 3339, UTC).
    pub created_at: String,
}

/// Where a lab is in its life, as `lab status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabPhase {
    /// `up` is building it.
    Creating,
    /// Built, its nodes started.
    Running,
    /// `down` is removing it.
    Removing,
    /// Its `up` or `down` died half-way: `lab down` removes what is left.
    Interrupted,
    /// Its state cannot be read.
    Unreadable,
    /// Over several hosts, a host whose share is not running.
    Degraded,
    /// Not up (on a host asked about its share).
    Down,
}

impl LabPhase {
    /// The word the table, CSV and JSON show.
    pub fn as_str(self) -> &'static str {
        match self {
            LabPhase::Creating => "creating",
            LabPhase::Running => "running",
            LabPhase::Removing => "removing",
            LabPhase::Interrupted => "interrupted",
            LabPhase::Unreadable => "unreadable",
            LabPhase::Degraded => "degraded",
            LabPhase::Down => "down",
        }
    }
}

impl std::fmt::Display for LabPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of a [`LabStatus`], in order: JSON keys and CSV header.
pub const STATUS_FIELDS: [&str; 7] = [
    "lab",
    "phase",
    "nodes_running",
    "nodes",
    "backend",
    "source",
    "created_at",
];

/// How `lab status` prints the labs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StatusFormat {
    /// Aligned columns for people; the time in the reader's time zone.
    #[default]
    Table,
    /// One JSON array of objects (fields as in the CSV header).
    Json,
    /// A header line, then one line per lab (RFC 4180 quoting).
    Csv,
}

/// The labs in `format`, ending with a newline.
pub fn render_status(labs: &[LabStatus], format: StatusFormat) -> serde_json::Result<String> {
    Ok(match format {
        StatusFormat::Table => status_table(labs),
        StatusFormat::Json => serde_json::to_string_pretty(labs)? + "\n",
        StatusFormat::Csv => status_csv(labs),
    })
}

fn status_table(labs: &[LabStatus]) -> String {
    if labs.is_empty() {
        return "no lab is up\n".to_owned();
    }
    let mut table = Table::new(&[
        ("LAB", Align::Left, 20),
        ("PHASE", Align::Left, 12),
        ("NODES", Align::Right, 7),
        ("BACKEND", Align::Left, 8),
        ("SINCE", Align::Left, 19),
        ("FILE", Align::Left, 0),
    ]);
    for s in labs {
        table.row(vec![
            s.lab.clone(),
            s.phase.to_string(),
            format!("{}/{}", s.nodes_running, s.nodes),
            s.backend.map_or("-".to_owned(), |b| b.to_string()),
            since(&s.created_at),
            // `lab grade`'s lab has no file (its source is empty in JSON and CSV).
            if s.source.as_os_str().is_empty() {
                "(built in: sdss lab grade)".to_owned()
            } else {
                s.source.display().to_string()
            },
        ]);
    }
    table.render()
}

fn status_csv(labs: &[LabStatus]) -> String {
    let mut out = STATUS_FIELDS.join(",") + "\n";
    for s in labs {
        let row = [
            Cow::Borrowed(s.lab.as_str()),
            Cow::Borrowed(s.phase.as_str()),
            Cow::Owned(s.nodes_running.to_string()),
            Cow::Owned(s.nodes.to_string()),
            s.backend
                .map_or(Cow::Borrowed(""), |b| Cow::Owned(b.to_string())),
            s.source.to_string_lossy(),
            Cow::Borrowed(s.created_at.as_str()),
        ];
        let row: Vec<Cow<str>> = row.iter().map(|field| csv_field(field)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// A CSV field, quoted when it holds a comma, a quote, a line break or edge
/// spaces; quotes inside are doubled (RFC 4180).
pub(super) fn csv_field(field: &str) -> Cow<'_, str> {
    let plain = !field.contains([',', '"', '\n', '\r']) && field.trim() == field;
    if plain {
        Cow::Borrowed(field)
    } else {
        Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    }
}

/// A lab's creation time (RFC 3339, UTC) to the second, in the local time zone
/// of whoever reads the table; unchanged when it does not parse.
fn since(created_at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(created_at).map_or_else(
        |_| created_at.to_owned(),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labs() -> Vec<LabStatus> {
        vec![
            LabStatus {
                lab: "five".to_owned(),
                phase: LabPhase::Running,
                nodes_running: 4,
                nodes: 5,
                backend: Some(BackendKind::Emulator),
                source: PathBuf::from("labs/five-nodes.toml"),
                created_at: "not a time".to_owned(),
            },
            LabStatus {
                lab: "odd".to_owned(),
                phase: LabPhase::Interrupted,
                nodes_running: 0,
                nodes: 0,
                backend: None,
                source: PathBuf::from("/tmp/a,b \"c\".toml"),
                created_at: "2026-11-29T21:44:37Z".to_owned(),
            },
        ]
    }

    fn render(format: StatusFormat) -> String {
        render_status(&labs(), format).unwrap()
    }

    #[test]
    fn the_table_is_the_human_listing() {
        let table = render(StatusFormat::Table);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(
            lines[0].starts_with("LAB ") && lines[0].ends_with("  FILE"),
            "{table}"
        );
        assert_eq!(
            lines[1],
            "five                  running           4/5  emulator  not a time           labs/five-nodes.toml"
        );
        assert!(lines[2].starts_with("odd                   interrupted       0/0  -         "));
        assert!(lines[2].ends_with("  /tmp/a,b \"c\".toml"), "{table}");
        assert_eq!(
            render_status(&[], StatusFormat::Table).unwrap(),
            "no lab is up\n"
        );
    }

    #[test]
    fn a_lab_without_a_file_says_so_not_a_path() {
        let mut labs = labs();
        labs[0].source = PathBuf::new();
        let table = render_status(&labs, StatusFormat::Table).unwrap();
        assert!(
            table
                .lines()
                .nth(1)
                .unwrap()
                .ends_with("  (built in: sdss lab grade)"),
            "{table}"
        );
    }

    #[test]
    fn a_long_lab_name_widens_its_column_and_the_rest_stay_aligned() {
        let mut labs = labs();
        labs[0].lab = "a-lab-name-of-thirty-characters".to_owned();
        let table = render_status(&labs, StatusFormat::Table).unwrap();
        let column = |line: &str, word: &str| line.find(word).unwrap_or(usize::MAX);
        let lines: Vec<&str> = table.lines().collect();
        let phase = column(lines[0], "PHASE");
        assert_eq!(phase, 31 + 2, "{table}");
        assert_eq!(column(lines[1], "running"), phase, "{table}");
        assert_eq!(column(lines[2], "interrupted"), phase, "{table}");
        assert_eq!(
            column(lines[1], "labs/"),
            column(lines[0], "FILE"),
            "{table}"
        );
    }

    #[test]
    fn json_has_the_stable_fields_and_types() {
        let json: serde_json::Value = serde_json::from_str(&render(StatusFormat::Json)).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        for row in rows {
            let keys: Vec<&str> = row
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut expected = STATUS_FIELDS.to_vec();
            expected.sort_unstable();
            let mut keys = keys;
            keys.sort_unstable();
            assert_eq!(keys, expected);
        }
        assert_eq!(
            rows[0],
            serde_json::json!({
                "lab": "five", "phase": "running", "nodes_running": 4, "nodes": 5,
                "backend": "emulator", "source": "labs/five-nodes.toml",
                "created_at": "not a time"
            })
        );
        assert_eq!(rows[1]["backend"], serde_json::Value::Null);
        assert_eq!(render_status(&[], StatusFormat::Json).unwrap(), "[]\n");
    }

    #[test]
    fn csv_is_a_header_and_quoted_rows() {
        assert_eq!(
            render(StatusFormat::Csv),
            "lab,phase,nodes_running,nodes,backend,source,created_at\n\
             five,running,4,5,emulator,labs/five-nodes.toml,not a time\n\
             odd,interrupted,0,0,,\"/tmp/a,b \"\"c\"\".toml\",2026-11-29T21:44:37Z\n"
        );
        assert_eq!(
            render_status(&[], StatusFormat::Csv).unwrap(),
            "lab,phase,nodes_running,nodes,backend,source,created_at\n"
        );
    }

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
        assert_eq!(csv_field(" edge"), "\" edge\"");
    }
}
