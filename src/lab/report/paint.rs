//! Verdict words in colour for a terminal: the report is rendered as plain
//! text (pipes, files, tests read that), and painted after, so no column
//! width ever counts an escape sequence.

use anstyle::{AnsiColor, Style};

const PASS: Style = AnsiColor::Green.on_default().bold();
const FAIL: Style = AnsiColor::Red.on_default().bold();

/// Whether the report goes to a person: stdout a terminal, `NO_COLOR` unset.
pub fn wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` with its verdict words coloured: a line's leading `PASS`/`FAIL`
/// (the last line, an expectation), and a table row's verdict cell (`pass`
/// or `FAIL` after the column gap, ending the line or before its reason).
pub fn paint(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        out.push_str(&paint_line(line));
    }
    out
}

fn paint_line(line: &str) -> String {
    let body = line.trim_end_matches('\n');
    let indent = body.len() - body.trim_start().len();
    let cell = |at: usize, word: &str| {
        let rest = &body[at + word.len()..];
        rest.is_empty() || rest.starts_with(':') || rest.starts_with(' ')
    };
    for word in ["PASS", "FAIL", "pass"] {
        // A line that begins with its verdict: the summary, an expectation.
        if body[indent..].starts_with(word) && cell(indent, word) {
            return wrap(line, indent, word);
        }
    }
    for word in ["pass", "FAIL"] {
        // The verdict cell, after a column gap.
        let gap = format!("  {word}");
        if let Some(at) = body.rfind(&gap).map(|at| at + 2) {
            if cell(at, word) {
                return wrap(line, at, word);
            }
        }
    }
    line.to_owned()
}

fn wrap(line: &str, at: usize, word: &str) -> String {
    let style = if word == "pass" || word == "PASS" {
        PASS
    } else {
        FAIL
    };
    format!(
        "{}{style}{word}{style:#}{}",
        &line[..at],
        &line[at + word.len()..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_words_are_coloured_and_nothing_else() {
        let text = "FROM  TO  EXPECTED  RESULT\n\
                    a     b      5.000  pass\n\
                    b     a      5.000  FAIL: too few samples\n\
                    lab two: delay backend emulator; pass it on\n\
                    \x20 pass expect separated\n\
                    PASS: 2 pairs, 2 pass, 0 fail\n";
        let painted = paint(text);
        let green = format!("{PASS}pass{PASS:#}");
        let red = format!("{FAIL}FAIL{FAIL:#}");
        let lines: Vec<&str> = painted.lines().collect();
        assert_eq!(lines[0], "FROM  TO  EXPECTED  RESULT");
        assert_eq!(lines[1], format!("a     b      5.000  {green}"));
        assert_eq!(
            lines[2],
            format!("b     a      5.000  {red}: too few samples")
        );
        assert_eq!(lines[3], "lab two: delay backend emulator; pass it on");
        assert_eq!(lines[4], format!("  {green} expect separated"));
        assert!(lines[5].starts_with(&format!("{PASS}PASS{PASS:#}: 2 pairs")));
        assert!(painted.ends_with('\n'));
        // Without escapes it is the text as it was.
        assert_eq!(
            paint("a\n").as_str(),
            "a\n",
            "a line without a verdict is left alone"
        );
    }
}
