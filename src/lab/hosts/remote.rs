//! Reaching a host: the remote-exec command that starts `sdss lab agent`
//! there (ssh by default; any command that runs it with stdin and stdout
//! joined to ours will do), and one session of requests and replies with it.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::wire::{self, Reply, Request, WireError};
use crate::lab::plan::hosts::HostPlan;
use crate::lab::report::progress::Printer;

/// The default remote-exec command: `{ssh}` is the host's `ssh` destination.
/// BatchMode: a host that would ask for a password fails at once instead of hanging.
pub const DEFAULT_REMOTE_EXEC: &str = "ssh -o BatchMode=yes {ssh} sdss lab agent";

/// How many of an agent's last stderr lines are kept to explain its failure.
const LAST_WORDS: usize = 5;

/// How long `close` waits for an agent to exit after its stdin closed.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// How long a single question (`down`, `status`) waits for its answer:
/// taking down a hundred nodes takes seconds.
const ASK_WAIT: Duration = Duration::from_secs(60);

/// How long an agent may take to build its share of a lab: seconds for a
/// hundred nodes, minutes under software emulation.
pub const BUILD_WAIT: Duration = Duration::from_secs(180);

/// How long an agent may take to measure the underlay to every other host.
pub const MEASURE_WAIT: Duration = Duration::from_secs(60);

/// Why a host could not be worked with.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The remote-exec template cannot name a host.
    #[error("remote-exec command {0:?} has no {{ssh}}: expected e.g. {DEFAULT_REMOTE_EXEC:?}")]
    Template(String),
    /// The remote-exec command did not start.
    #[error("host {host}: cannot run {program:?}: {source}")]
    Spawn {
        /// The host.
        host: String,
        /// The program.
        program: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The agent ended (or the connection broke) before answering.
    #[error("host {host}: unreachable: the agent ended without answering{}", said(.last_words))]
    Unreachable {
        /// The host.
        host: String,
        /// Its last lines on stderr (ssh's own errors land there).
        last_words: Vec<String>,
    },
    /// The agent answered that it failed.
    #[error("host {host}: {message}")]
    Failed {
        /// The host.
        host: String,
        /// The agent's message.
        message: String,
    },
    /// The agent's stream was not the protocol.
    #[error("host {host}: {source}")]
    Wire {
        /// The host.
        host: String,
        /// What was wrong.
        #[source]
        source: WireError,
    },
    /// The agent answered something out of turn.
    #[error("host {host}: unexpected reply {reply}")]
    Unexpected {
        /// The host.
        host: String,
        /// The reply, abridged.
        reply: String,
    },
    /// The agent neither answered nor ended in time.
    #[error("host {host}: no answer to {what} within {}", crate::units::format_duration(*.waited))]
    Silent {
        /// The host.
        host: String,
        /// What it was asked.
        what: &'static str,
        /// How long it was given.
        waited: Duration,
    },
}

fn said(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join(" / "))
    }
}

/// The remote-exec command, split into words (no shell is involved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteExec {
    words: Vec<String>,
}

impl RemoteExec {
    /// Parses a template such as [`DEFAULT_REMOTE_EXEC`].
    pub fn parse(template: &str) -> Result<RemoteExec, HostError> {
        let words: Vec<String> = template.split_whitespace().map(str::to_owned).collect();
        if !words.iter().any(|w| w.contains("{ssh}")) {
            return Err(HostError::Template(template.to_owned()));
        }
        Ok(RemoteExec { words })
    }

    /// The argv that reaches `host`.
    pub fn argv(&self, host: &HostPlan) -> Vec<String> {
        self.words
            .iter()
            .map(|w| w.replace("{ssh}", &host.ssh))
            .collect()
    }
}

/// One agent, started on its host, and the conversation with it.
pub struct Session {
    /// The host.
    pub host: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    line: Vec<u8>,
    last_words: Arc<Mutex<VecDeque<String>>>,
}

impl Session {
    /// Starts the agent on `host`; its stderr is shown through `printer`.
    pub fn open(
        exec: &RemoteExec,
        host: &HostPlan,
        printer: Printer,
    ) -> Result<Session, HostError> {
        let argv = exec.argv(host);
        let program = argv.first().cloned().unwrap_or_default();
        let mut child = Command::new(&program)
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HostError::Spawn {
                host: host.name.clone(),
                program,
                source,
            })?;
        let unreachable = || HostError::Unreachable {
            host: host.name.clone(),
            last_words: Vec::new(),
        };
        let stdin = child.stdin.take().ok_or_else(unreachable)?;
        let stdout = child.stdout.take().ok_or_else(unreachable)?;
        let stderr = child.stderr.take().ok_or_else(unreachable)?;
        let last_words = Arc::new(Mutex::new(VecDeque::new()));
        let kept = last_words.clone();
        let name = host.name.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // The agent's progress says `sdss lab LAB: ...`: the lab is ours already.
                let text = line
                    .split_once(": ")
                    .map_or(line.as_str(), |(_, rest)| rest);
                printer.line(&format!("host {name}: {text}"));
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                if kept.len() == LAST_WORDS {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        Ok(Session {
            host: host.name.clone(),
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            line: Vec::new(),
            last_words,
        })
    }

    /// Sends one request.
    pub async fn send(&mut self, request: &Request) -> Result<(), HostError> {
        let bytes = wire::line(request);
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(&bytes).await.and(stdin.flush().await),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        match written {
            Ok(()) => Ok(()),
            Err(_) => Err(self.unreachable().await),
        }
    }

    /// The next reply; `Failed` becomes an error, the end of the stream too.
    pub async fn recv(&mut self) -> Result<Reply, HostError> {
        match wire::read::<Reply, _>(&mut self.stdout, &mut self.line).await {
            Ok(Some(Reply::Failed { message })) => Err(HostError::Failed {
                host: self.host.clone(),
                message,
            }),
            Ok(Some(reply)) => Ok(reply),
            Ok(None) | Err(WireError::Io(_)) => Err(self.unreachable().await),
            Err(source) => Err(HostError::Wire {
                host: self.host.clone(),
                source,
            }),
        }
    }

    /// The agent's next reply, if it comes within `limit`: an agent that hangs
    /// (a stuck host, a lost connection ssh does not notice) must not hang
    /// the lab with it.
    pub async fn recv_within(
        &mut self,
        what: &'static str,
        limit: Duration,
    ) -> Result<Reply, HostError> {
        tokio::time::timeout(limit, self.recv())
            .await
            .unwrap_or_else(|_| {
                Err(HostError::Silent {
                    host: self.host.clone(),
                    what,
                    waited: limit,
                })
            })
    }

    /// One request, its one reply, and the agent told to finish: a session
    /// of a single question (`down`, `status`).
    pub async fn ask(&mut self, request: &Request) -> Result<Reply, HostError> {
        self.send(request).await?;
        let reply = self.recv_within(request.name(), ASK_WAIT).await;
        self.stdin = None;
        if tokio::time::timeout(EXIT_WAIT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        reply
    }

    /// An answer out of turn, as an error.
    pub fn unexpected(&self, reply: &Reply) -> HostError {
        let mut text = format!("{reply:?}");
        text.truncate(120);
        HostError::Unexpected {
            host: self.host.clone(),
            reply: text,
        }
    }

    /// Closes the agent's stdin (its cue to finish) and waits for it to exit.
    pub async fn close(mut self) {
        self.finish().await;
    }

    async fn finish(&mut self) {
        self.stdin = None;
        if tokio::time::timeout(EXIT_WAIT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// The agent is gone: its exit and last words say why.
    async fn unreachable(&mut self) -> HostError {
        // Its stderr may still be draining into the kept lines.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let last_words = self
            .last_words
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        HostError::Unreachable {
            host: self.host.clone(),
            last_words,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostPlan {
        HostPlan {
            name: "b".into(),
            ssh: "root@10.0.0.2".into(),
            underlay: "10.0.0.2".parse().expect("ip"),
            backend: None,
        }
    }

    #[test]
    fn the_template_names_the_host_in_every_word_that_asks() {
        let exec = RemoteExec::parse(DEFAULT_REMOTE_EXEC).expect("default");
        assert_eq!(
            exec.argv(&host()),
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "root@10.0.0.2",
                "sdss",
                "lab",
                "agent"
            ]
        );
        let exec = RemoteExec::parse("nsenter --target={ssh} -n -m sdss lab agent").expect("ok");
        assert_eq!(exec.argv(&host())[1], "--target=root@10.0.0.2");
    }

    #[tokio::test]
    async fn an_agent_that_neither_answers_nor_ends_is_given_up_on() {
        // `cat` waits for our stdin, which says nothing: it neither answers nor ends.
        let exec = RemoteExec::parse("sh -c cat {ssh}").expect("template");
        let printer = crate::lab::report::progress::Console::new("t", true).printer();
        let mut session = Session::open(&exec, &host(), printer).expect("spawned");
        let limit = Duration::from_millis(200);
        let error = session.recv_within("up", limit).await.unwrap_err();
        assert!(
            matches!(error, HostError::Silent { what: "up", waited, .. } if waited == limit),
            "{error}"
        );
        assert_eq!(error.to_string(), "host b: no answer to up within 200ms");
        session.close().await;
    }

    #[test]
    fn a_template_without_the_host_is_refused() {
        let error = RemoteExec::parse("ssh sdss lab agent").expect_err("no {ssh}");
        assert!(error.to_string().contains("has no {ssh}"), "{error}");
    }

    #[tokio::test]
    async fn an_agent_that_dies_is_unreachable_with_its_last_words() {
        // Built by hand: the template splits on whitespace, and `sh -c` wants one word.
        let exec = RemoteExec {
            words: vec![
                "sh".into(),
                "-c".into(),
                "echo gone {ssh} >&2; exit 3".into(),
            ],
        };
        let progress = crate::lab::report::progress::Console::new("t", true);
        let mut session = Session::open(&exec, &host(), progress.printer()).expect("spawn");
        let error = session.recv().await.expect_err("no reply");
        match error {
            HostError::Unreachable { host, last_words } => {
                assert_eq!(host, "b");
                assert_eq!(last_words, ["gone root@10.0.0.2"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
