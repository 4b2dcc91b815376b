//! A `set` given on the command line (`sdss lab set`): written out as the
//! `[[event]]` a lab file would hold and read by the same parser and checks,
//! so a live change accepts exactly what a timeline's `set` accepts and
//! fails with the same words.

use std::path::Path;

use thiserror::Error;

use super::timeline::check_event;
use super::{EventSection, Locator, TopologyError};

/// Which links a live `set` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetTarget {
    /// A node's link.
    Node(String),
    /// An ordered pair, and its reverse with `symmetric`.
    Pair {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// Both directions.
        symmetric: bool,
    },
}

/// A live `set` the file's rules refuse.
#[derive(Debug, Error)]
#[error("{given}: {message}")]
pub struct SetError {
    /// What was given: the key at fault and its value, or `lab set`.
    pub given: String,
    /// What is wrong and what is expected instead (the file's words).
    pub message: String,
}

/// Reads a live `set` of `target` with `keys` (shape keys and their values
/// as typed: `("delay", "40ms")`, `("loss", "0.01")`) against a lab of
/// `nodes`, as the file's `[[event]]` with `action = "set"` is read.
pub fn parse_set(
    nodes: &[&str],
    target: &SetTarget,
    keys: &[(String, String)],
) -> Result<EventSection, SetError> {
    let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let mut text = String::from("at = \"0s\"\naction = \"set\"\n");
    match target {
        SetTarget::Node(node) => text.push_str(&format!("node = {}\n", quoted(node))),
        SetTarget::Pair {
            from,
            to,
            symmetric,
        } => text.push_str(&format!(
            "from = {}\nto = {}\nsymmetric = {symmetric}\n",
            quoted(from),
            quoted(to)
        )),
    }
    // Line of the text -> the option it came from (the header lines: none).
    let header = text.lines().count();
    for (key, value) in keys {
        let bare = key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !key.is_empty();
        let key_text = if bare { key.clone() } else { quoted(key) };
        // A value TOML reads as it stands (0.01, true, { gemodel = [...] })
        // goes in as typed; anything else (40ms, 10mbit) as a string.
        let raw = format!("{key_text} = {value}");
        let line = if toml::from_str::<toml::Table>(&raw).is_ok() && !value.contains('\n') {
            raw
        } else {
            format!("{key_text} = {}", quoted(value))
        };
        text.push_str(&line);
        text.push('\n');
    }
    let blame = |line: usize, message: String| {
        let given = match line.checked_sub(header + 1).and_then(|i| keys.get(i)) {
            Some((key, value)) => format!("{key} = {value}"),
            None => "lab set".to_owned(),
        };
        SetError { given, message }
    };
    let at = Locator::new(Path::new("lab set"), &text);
    let section: EventSection = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| at.line_column(s.start).0);
        let message = match e.message() {
            "duplicate key" => "given twice: expected each key once".to_owned(),
            message => message.to_owned(),
        };
        blame(line, message)
    })?;
    check_event(&section, nodes, &at).map_err(|e| match e {
        TopologyError::Invalid { line, message, .. } => blame(line, message),
        other => blame(0, other.to_string()),
    })?;
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: [&str; 2] = ["a", "b"];

    fn keys(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn node(name: &str) -> SetTarget {
        SetTarget::Node(name.to_owned())
    }

    #[test]
    fn a_node_and_its_shape_read_as_the_files_event() {
        let section = parse_set(
            &NODES,
            &node("a"),
            &keys(&[("delay", "40ms"), ("jitter", "2ms"), ("loss", "0.01")]),
        )
        .unwrap();
        let shape = section.shape();
        assert_eq!(shape.delay.unwrap().0, std::time::Duration::from_millis(40));
        assert_eq!(*shape.loss.unwrap().get_ref(), 0.01);
        let model = parse_set(
            &NODES,
            &node("b"),
            &keys(&[("loss_model", "{ gemodel = [0.01] }"), ("rate", "10mbit")]),
        )
        .unwrap();
        assert!(model.shape().loss_model.is_some() && model.shape().rate.is_some());
    }

    #[test]
    fn each_mistake_names_its_option_with_the_files_words() {
        let error = parse_set(&NODES, &node("a"), &keys(&[("loss", "1.5")])).unwrap_err();
        assert_eq!(error.given, "loss = 1.5");
        assert!(
            error.message.contains("loss 1.5 is out of range"),
            "{error}"
        );
        let error = parse_set(
            &NODES,
            &node("a"),
            &keys(&[("delay", "1ms"), ("jitter", "soon")]),
        )
        .unwrap_err();
        assert_eq!(error.given, "jitter = soon");
        let error = parse_set(&NODES, &node("a"), &keys(&[("dealy", "1ms")])).unwrap_err();
        assert!(error.message.contains("unknown field `dealy`"), "{error}");
        let error = parse_set(&NODES, &node("z"), &keys(&[("delay", "1ms")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "lab set: no node is named \"z\": expected one of a, b"
        );
        let error = parse_set(&NODES, &node("a"), &[]).unwrap_err();
        assert!(
            error.message.contains("needs at least one of `delay`"),
            "{error}"
        );
        let error = parse_set(
            &NODES,
            &node("a"),
            &keys(&[("delay", "1ms"), ("loss_correlation", "0.5")]),
        )
        .unwrap_err();
        assert!(error.message.contains("needs `loss` beside it"), "{error}");
    }

    #[test]
    fn a_pair_names_both_ends() {
        let pair = SetTarget::Pair {
            from: "a".to_owned(),
            to: "b".to_owned(),
            symmetric: true,
        };
        let section = parse_set(&NODES, &pair, &keys(&[("delay", "9ms")])).unwrap();
        assert!(section.symmetric && section.node.is_none());
        let same = SetTarget::Pair {
            from: "a".to_owned(),
            to: "q".to_owned(),
            symmetric: false,
        };
        let error = parse_set(&NODES, &same, &keys(&[("delay", "9ms")])).unwrap_err();
        assert!(error.message.contains("no node is named \"q\""), "{error}");
    }
}
