//! The lab file's page, `sdss-lab-file(5)`, made from labs/README.md (from
//! its "Format" section on), so the manual says what the README says: a
//! small Markdown-to-roff pass for what that file uses (headings,
//! paragraphs, lists, fenced blocks, tables, inline code).

/// The page's roff: a title, NAME, then the README's sections.
pub fn lab_file_page(readme: &str, source: &str) -> String {
    let mut out = format!(
        ".TH sdss\\-lab\\-file 5 \"\" \"{}\" \"File Formats\"\n\
         .SH NAME\n\
         sdss\\-lab\\-file \\- the lab file of sdss\\-lab(1): nodes, links, grading, timelines\n\
         .SH SYNOPSIS\n\
         \\fBsdss lab up\\fR \\fIFILE\\fR, \\fBsdss lab run\\fR \\fIFILE\\fR\n",
        escape(source)
    );
    let body = readme
        .find("\n## Format")
        .map_or(readme, |at| &readme[at + 1..]);
    out.push_str(&to_roff(body));
    out.push_str(".SH SEE ALSO\nsdss(1), sdss\\-lab(1), sdss\\-lab\\-run(1), tc\\-netem(8)\n");
    out
}

/// Markdown as roff: `##` is a section, `###` a subsection, a fenced block
/// or a table stays as written, a `*`/`-` item is an indented paragraph.
pub fn to_roff(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    let mut table = false;
    let mut paragraph = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            out.push_str(if fenced {
                ".fi\n.RE\n.PP\n"
            } else {
                ".RS 2\n.nf\n"
            });
            fenced = !fenced;
            paragraph = false;
            continue;
        }
        if fenced {
            out.push_str(&literal(line));
            continue;
        }
        let is_row = line.starts_with('|');
        if is_row != table {
            out.push_str(if is_row {
                ".RS 2\n.nf\n"
            } else {
                ".fi\n.RE\n.PP\n"
            });
            table = is_row;
        }
        if is_row {
            if !line.trim_start_matches(['|', '-', ' ']).is_empty() {
                out.push_str(&literal(line));
            }
            continue;
        }
        if let Some(title) = line.strip_prefix("## ") {
            out.push_str(&format!(".SH \"{}\"\n", escape(&title.to_uppercase())));
            paragraph = false;
        } else if let Some(title) = line.strip_prefix("### ") {
            out.push_str(&format!(".SS \"{}\"\n", escape(title)));
            paragraph = false;
        } else if line.trim().is_empty() {
            if paragraph {
                out.push_str(".PP\n");
            }
            paragraph = false;
        } else if let Some(item) = line.strip_prefix("* ").or_else(|| line.strip_prefix("- ")) {
            out.push_str(".IP \\(bu 2\n");
            out.push_str(&text(item));
            paragraph = true;
        } else {
            out.push_str(&text(line.trim_start()));
            paragraph = true;
        }
    }
    if fenced || table {
        out.push_str(".fi\n.RE\n");
    }
    out
}

/// A line of running text: `code` and **strong** in bold, links as their text.
fn text(line: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with('`') || rest.starts_with("**") {
            out.push_str(if bold { "\\fR" } else { "\\fB" });
            bold = !bold;
            rest = &rest[if rest.starts_with('`') { 1 } else { 2 }..];
            continue;
        }
        out.push_str(&escape(&c.to_string()));
        rest = &rest[c.len_utf8()..];
    }
    if bold {
        out.push_str("\\fR");
    }
    guard(&out)
}

/// A line shown as written (a fenced block, a table row).
fn literal(line: &str) -> String {
    guard(&escape(line))
}

/// Escapes what roff would read as its own: backslashes, hyphens.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// A line that begins with `.` or `'` would be a request: `\&` keeps it text.
fn guard(line: &str) -> String {
    if line.starts_with('.') || line.starts_with('\'') {
        format!("\\&{line}\n")
    } else {
        format!("{line}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_paragraphs_blocks_and_tables_become_roff() {
        let roff = to_roff(
            "## Format\n\nTOML, read `strictly`:\n\n```toml\n.x = \"a-b\"\n```\n\
             | a | b |\n|---|---|\n| 1 | 2 |\n\n* an item\n### Shapes\n",
        );
        assert_eq!(
            roff,
            ".SH \"FORMAT\"\nTOML, read \\fBstrictly\\fR:\n.PP\n.RS 2\n.nf\n\\&.x = \"a\\-b\"\n.fi\n.RE\n.PP\n\
             .RS 2\n.nf\n| a | b |\n| 1 | 2 |\n.fi\n.RE\n.PP\n.IP \\(bu 2\nan item\n.SS \"Shapes\"\n"
        );
    }

    #[test]
    fn the_lab_file_page_starts_at_the_format_section() {
        let page = lab_file_page("# Lab files\nintro\n## Format\nTOML.\n", "sdss 1.0");
        assert!(page.starts_with(".TH sdss\\-lab\\-file 5"), "{page}");
        assert!(page.contains(".SH \"FORMAT\"\nTOML.\n"), "{page}");
        assert!(!page.contains("intro"), "{page}");
    }
}
