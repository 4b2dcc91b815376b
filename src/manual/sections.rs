//! What clap does not know about a command, for its man page: EXIT STATUS,
//! ENVIRONMENT (its options' variables, found on the command, and those read
//! elsewhere), FILES and EXAMPLES.

use std::fmt::Write;

/// Variables read outside the options: name, the pages that concern them
/// (a page and its subcommands' pages), what they do.
const OTHER_ENV: &[(&str, &[&str], &str)] = &[
    (
        "NO_COLOR",
        &["sdss-node", "sdss-lab-up", "sdss-lab-run", "sdss-lab-verify", "sdss-lab-grade"],
        "When set (to anything), no colour: the node's human output and a lab's report stay plain on a terminal too.",
    ),
    (
        "SDSS_STATE_DIR",
        &["sdss-lab"],
        "Where labs keep their state and logs instead of /run/sdss/labs.",
    ),
];

const LAB_FILES: &str = ".TP\n/run/sdss/labs/\\fILAB\\fR/\nA lab's state (mode 0700): \\fBstate.json\\fR records every namespace \
and process before it exists (what \\fBsdss lab down\\fR removes, even after an \\fBup\\fR killed with \\-9), \
\\fBplan.json\\fR the plan, \\fINODE\\fR\\fB.out\\fR and \\fINODE\\fR\\fB.err\\fR each node's output. \
\\fBSDSS_STATE_DIR\\fR moves the root.\n\
.TP\n/run/netns/sdss\\-\\fILAB\\fR, /run/netns/sdss\\-\\fILAB\\fR\\-\\fINODE\\fR\n\
The lab's switch namespace and one namespace per node; nothing is created in the host's own.\n\
.TP\nlabs/*.toml\nExample lab files; their format is sdss\\-lab\\-file(5).\n";

/// One exit status and what it means.
type Status = (&'static str, &'static str);

fn exit_statuses(page: &str) -> &'static [Status] {
    const VERDICT: &[Status] = &[
        ("0", "Every pair passed (and every expectation of the timeline held)."),
        ("1", "A pair failed, or an expectation did not hold."),
        ("2", "An error: a bad option or lab file, or a lab that could not be built; nothing is left behind."),
        ("130, 143", "Interrupted by SIGINT or SIGTERM (128 + the signal); everything the lab created was removed."),
    ];
    match page {
        "sdss" => &[
            ("0", "Success."),
            ("1", "sdss lab up, run, verify, grade: a pair failed, or an expectation did not hold."),
            ("2", "An error: a bad option, an unreadable lab file, a failure; said in one line on stderr."),
            ("126, 127", "sdss lab exec: the command could not run, or was not found."),
            ("130, 143", "Interrupted by SIGINT or SIGTERM (128 + the signal)."),
        ],
        "sdss-node" => &[
            ("0", "Stopped by SIGINT or SIGTERM, or the reader of its output went away."),
            ("2", "A bad option, or the node could not start (a port in use, no interface)."),
        ],
        "sdss-lab-up" | "sdss-lab-run" | "sdss-lab-verify" | "sdss-lab-grade" => VERDICT,
        "sdss-lab-exec" => &[
            ("N", "The command's own exit status (128 + N when killed by signal N)."),
            ("126", "The command was found but could not run (not an executable)."),
            ("127", "The command was not found."),
            ("2", "No such lab or node, or its namespace is gone."),
        ],
        _ => &[("0", "Success."), ("2", "An error, said in one line on stderr.")],
    }
}

fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "sdss" => &[
            ("sdss node", "Run a node on every broadcast-capable interface."),
            ("sdss lab run labs/five-nodes.toml", "Build a lab, verify the delays its nodes measure, take it down."),
            ("sdss man \\-\\-dir /usr/local/share/man/man1", "Install the man pages (this one's section 5 page goes to man5 beside it)."),
        ],
        "sdss-node" => &[
            ("sdss node \\-i eth0", "Announce and measure on eth0 only."),
            ("sdss node \\-\\-interval 200ms \\-\\-json | jq .", "Every event as a JSON line."),
            ("sdss node \\-\\-metrics 127.0.0.1:9498", "Serve Prometheus metrics beside the human output."),
        ],
        "sdss-lab" => &[
            ("sdss lab run labs/two-nodes.toml", "Up, verify, down: the exit status is the verdict."),
            ("sdss lab up labs/partition.toml; sdss lab watch split", "Leave a lab running and watch its matrix."),
            ("sdss lab down split", "Remove everything the lab created."),
        ],
        "sdss-lab-up" => &[
            ("sdss lab up \\-\\-dry\\-run labs/five-nodes.toml", "Print the plan and the expected delay matrix; touch nothing."),
            ("sdss lab up labs/five-nodes.toml \\-\\-html report.html", "Build, verify, write the report as a page, leave the lab running."),
        ],
        "sdss-lab-run" => &[
            ("sdss lab run labs/delay-step.toml \\-\\-json > report.json", "The report as one JSON document."),
            ("sdss lab run labs/five-nodes.toml \\-\\-tolerance 50us \\-\\-tolerance\\-percent 0", "Judge every pair with exactly 50 us."),
        ],
        "sdss-lab-status" => &[("sdss lab status \\-\\-format json", "The labs that are up, for scripts.")],
        "sdss-lab-verify" => &[("sdss lab verify five \\-\\-html report.html", "Grade a running lab again, now.")],
        "sdss-lab-exec" => &[
            ("sdss lab exec five a \\-\\- ip addr", "A command in node a's namespace."),
            ("sdss lab exec five a \\-\\- sh \\-c 'echo $SDSS_ADDRESS'", "The node's address, as its programs see it."),
        ],
        "sdss-lab-logs" => &[("sdss lab logs five a \\-\\-stderr", "What node a wrote on stderr.")],
        "sdss-lab-down" => &[("sdss lab down five", "Remove lab five, also after an up killed with \\-9.")],
        "sdss-lab-grade" => &[("sdss lab grade \\-\\- python3 node.py", "Grade a program in the built-in lab.")],
        "sdss-lab-watch" => &[("sdss lab watch five", "The live matrix of a running lab; q quits.")],
        "sdss-lab-graph" => &[("sdss lab graph five | dot \\-Tsvg > five.svg", "The lab's topology as a picture.")],
        "sdss-lab-probe" => &[("sdss lab probe five \\-\\-duration 5s", "Probe the links themselves: loss, reorders, delay quantiles.")],
        "sdss-completions" => &[("sdss completions bash > /etc/bash_completion.d/sdss", "Completion for bash.")],
        "sdss-man" => &[
            ("sdss man | man \\-l \\-", "Read this page."),
            ("sdss man \\-\\-dir /usr/local/share/man/man1", "Write every page (section 5 into man5 beside it)."),
        ],
        _ => &[],
    }
}

/// The environment variables of `command`'s options, at every depth.
fn option_env(command: &clap::Command, found: &mut Vec<(String, String)>) {
    for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(name) = arg.get_env() {
            let name = name.to_string_lossy().into_owned();
            if !found.iter().any(|(n, _)| *n == name) {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                found.push((
                    name,
                    format!(
                        "As \\-\\-{}: {}",
                        escape(arg.get_long().unwrap_or(arg.get_id().as_str())),
                        escape(&help)
                    ),
                ));
            }
        }
    }
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        option_env(sub, found);
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// The sections of `page` (`sdss-lab-run`) clap does not write, as roff.
pub fn render(page: &str, command: &clap::Command) -> String {
    let mut out = String::from(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in exit_statuses(page) {
        let _ = write!(out, ".TP\n\\fB{code}\\fR\n{meaning}\n");
    }
    let mut env = Vec::new();
    option_env(command, &mut env);
    for (name, pages, meaning) in OTHER_ENV {
        let concerned = page == "sdss"
            || pages
                .iter()
                .any(|p| page == *p || page.starts_with(&format!("{p}-")));
        if concerned {
            env.push(((*name).to_owned(), (*meaning).to_owned()));
        }
    }
    if !env.is_empty() {
        out.push_str(".SH ENVIRONMENT\n");
        for (name, meaning) in env {
            let _ = write!(out, ".TP\n\\fB{name}\\fR\n{meaning}\n");
        }
    }
    if page == "sdss" || page.starts_with("sdss-lab") {
        out.push_str(".SH FILES\n");
        out.push_str(LAB_FILES);
    }
    let examples = examples(page);
    if !examples.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        for (command, what) in examples {
            let _ = write!(out, ".TP\n\\fB{command}\\fR\n{what}\n");
        }
    }
    if page == "sdss" || page.starts_with("sdss-lab") {
        out.push_str(".SH \"SEE ALSO\"\nsdss\\-lab\\-file(5)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_its_exit_statuses_environment_and_examples() {
        let command = clap::Command::new("exec").arg(
            clap::Arg::new("backend")
                .long("backend")
                .env("SDSS_X")
                .help("The backend"),
        );
        let roff = render("sdss-lab-exec", &command);
        for part in [
            ".SH \"EXIT STATUS\"\n",
            "\\fB127\\fR\nThe command was not found.",
            ".SH ENVIRONMENT\n.TP\n\\fBSDSS_X\\fR\nAs \\-\\-backend: The backend\n",
            "\\fBSDSS_STATE_DIR\\fR",
            ".SH FILES\n",
            ".SH EXAMPLES\n",
        ] {
            assert!(roff.contains(part), "no {part:?} in {roff}");
        }
    }
}
