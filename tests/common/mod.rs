//! Shared harness for integration tests: real processes, their JSON lines
//! collected as they come, and guards that kill them whatever happens.
#![allow(dead_code)]
#![deny(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Loopback broadcast: reaches every socket bound to the port on this host
/// (or in this test's network namespace) and nothing beyond.
pub const LOOPBACK_BROADCAST: &str = "127.255.255.255";

/// A UDP port no other test of this run uses (the OS picks it), so parallel
/// tests never hear each other.
pub fn unique_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    socket.local_addr().expect("local address").port()
}

/// A child process whose stdout JSON lines are collected; killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Proc {
    /// Starts `command` with stdout captured line by line.
    pub fn spawn(name: &str, mut command: Command) -> Proc {
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => sink.lock().unwrap().push(value),
                    Err(_) => eprintln!("[{label}] non-JSON line: {line}"),
                }
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// Lines whose `event` field is `event`.
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["event"] == event)
            .collect()
    }

    /// Waits until some line satisfies `predicate`; panics with the transcript after `limit`.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        predicate: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.lines().into_iter().find(|line| predicate(line)) {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no {what} within {limit:?}; it printed:\n{}",
                    self.name,
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `started` event's `id`.
    pub fn id(&self) -> String {
        let started = self.wait_for("started event", Duration::from_secs(10), |line| {
            line["event"] == "started"
        });
        started["id"]
            .as_str()
            .expect("started carries an id")
            .to_owned()
    }

    pub fn transcript(&self) -> String {
        self.lines()
            .iter()
            .map(|line| format!("  {line}\n"))
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` and waits for the exit status, failing after `limit`.
    pub fn signal_and_wait(&mut self, signal: i32, limit: Duration) -> std::process::ExitStatus {
        let signal = Signal::try_from(signal).expect("a signal's number");
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for child") {
                std::thread::sleep(Duration::from_millis(50)); // let the reader drain stdout
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not exit within {limit:?} after signal {signal}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The process group we created.
        let _ = kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sdss node` on loopback with short timings, announcing on `port`.
pub fn sdss_node(name: &str, port: u16, extra: &[&str]) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sdss"));
    command.args([
        "node",
        "--json",
        "--destination",
        LOOPBACK_BROADCAST,
        "--broadcast-port",
        &port.to_string(),
        "--interval",
        "200ms",
        "--refresh-every",
        "3",
        "--exchange-timeout",
        "1s",
    ]);
    command.args(extra);
    Proc::spawn(name, command)
}

/// A Python fixture from `tests/interop/` on loopback with short timings.
pub fn python_fixture(script: &str, id: &str, port: u16, duration_secs: u32) -> Proc {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let mut command = Command::new("python3");
    command.arg(path).args([
        "--destination",
        LOOPBACK_BROADCAST,
        "--port",
        &port.to_string(),
        "--interval",
        "0.2",
        "--refresh",
        "3",
        "--duration",
        &duration_secs.to_string(),
        "--timeout",
        "1",
        "--id",
        id,
    ]);
    Proc::spawn(script, command)
}

/// Whether this process may create namespaces and network devices.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether a root-only test may run: `true` as root; otherwise prints why it
/// skips and returns `false`, unless CI demands root tests
/// (`SDSS_REQUIRE_ROOT_TESTS=1`), where a skip would hide a test that did not run.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("SDSS_REQUIRE_ROOT_TESTS").is_none(),
        "{test} needs root and SDSS_REQUIRE_ROOT_TESTS is set"
    );
    eprintln!("SKIPPED {test}: needs root (network namespaces and devices)");
    false
}

/// A TCP port free on loopback now (the OS picks it).
pub fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral TCP port");
    listener.local_addr().expect("local address").port()
}

/// `GET path` of the HTTP server on loopback at `port`, with `headers`
/// (each ending in CRLF): its body when it answers 200, else why not.
/// HTTP/1.0, so that no server answers in chunks.
pub fn http_get(port: u16, path: &str, headers: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {response:?}"))?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(format!("answered {head:?}\n{body}"));
    }
    Ok(body.to_owned())
}
