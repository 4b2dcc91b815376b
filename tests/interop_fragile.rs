//! Fragile implementations (`tests/interop/fragile_*.py`): each decodes what
//! arrives with no error handling, so one byte it does not expect kills the
//! thread that read it. Each runs in a lab beside two sdss nodes, on its own
//! address, for at least 20 s: it must raise no traceback, and both
//! directions must be measured wherever its encoding allows.

mod lab_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lab_support::*;
use serde_json::Value;

/// How long each fixture lives beside the sdss nodes, at least.
const AT_LEAST: Duration = Duration::from_secs(20);
/// How long to wait for everything to be measured.
const LIMIT: Duration = Duration::from_secs(60);

/// Takes the lab down however the test ends.
struct Lab(String);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = run(&["lab", "down", &self.0]);
    }
}

fn logs(lab: &str, node: &str, stderr: bool) -> String {
    let mut args = vec!["lab", "logs", lab, node];
    // Its events as written (the lines a terminal shows are for people).
    args.push(if stderr { "--stderr" } else { "--json" });
    String::from_utf8_lossy(&run(&args).stdout).into_owned()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn started_id(lines: &[Value]) -> Option<String> {
    lines
        .iter()
        .find(|l| l["event"] == "started")
        .and_then(|l| l["id"].as_str())
        .map(str::to_owned)
}

/// The fixture's last measurement of `peer`, in ms.
fn fixture_measured(lines: &[Value], peer: &str) -> Option<f64> {
    lines
        .iter()
        .rev()
        .find(|l| l["event"] == "measured" && l["peer"] == peer)
        .and_then(|l| l["delay_ms"].as_f64())
}

/// An sdss node's last report of `peer`.
fn sdss_report<'a>(lines: &'a [Value], peer: &str) -> Option<&'a Value> {
    lines
        .iter()
        .rev()
        .find(|l| l["event"] == "neighbor" && l["id"] == peer)
}

/// Runs `script` beside two sdss nodes; asserts no traceback and both
/// directions measured (sdss's delay only when `readable`: a 4-byte float's
/// time is not). Prints what each side measured.
fn beside_two_sdss_nodes(test: &str, stem: &str, script: &str, readable: bool) {
    if !sandboxed(test) {
        return;
    }
    let scratch = Scratch::new(stem);
    let lab = Lab(unique(stem));
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let file = scratch.lab(
        "lab.toml",
        &format!(
            "name = \"{}\"\n[defaults]\ninterval = \"1s\"\nrefresh_every = 3\n\
             [[node]]\nname = \"s1\"\n[[node]]\nname = \"s2\"\n\
             [[node]]\nname = \"fx\"\ncommand = [\"python3\", \"{}\", \"--destination\", \"{{broadcast}}\", \"--refresh\", \"3\", \"--duration\", \"90\"]\n",
            lab.0,
            fixture.display()
        ),
    );
    let up = run(&[
        "lab",
        "up",
        "--no-verify",
        "--delay-backend",
        "none",
        file.to_str().unwrap(),
    ]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    let began = Instant::now();
    let (mut fx, mut s1, mut s2);
    loop {
        fx = json_lines(&logs(&lab.0, "fx", false));
        s1 = json_lines(&logs(&lab.0, "s1", false));
        s2 = json_lines(&logs(&lab.0, "s2", false));
        let ids = (started_id(&fx), started_id(&s1), started_id(&s2));
        let done = match &ids {
            (Some(f), Some(a), Some(b)) => {
                let sdss_measured = |lines: &[Value]| {
                    sdss_report(lines, f)
                        .is_some_and(|r| !readable || r["delay_ms"].as_f64().is_some())
                };
                fixture_measured(&fx, a).is_some()
                    && fixture_measured(&fx, b).is_some()
                    && sdss_measured(&s1)
                    && sdss_measured(&s2)
            }
            _ => false,
        };
        if done && began.elapsed() >= AT_LEAST {
            break;
        }
        assert!(
            began.elapsed() < LIMIT,
            "{script}: not measured both ways within {LIMIT:?}\nfixture:\n{}\nstderr:\n{}\ns1:\n{}",
            logs(&lab.0, "fx", false),
            logs(&lab.0, "fx", true),
            logs(&lab.0, "s1", false)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let stderr = logs(&lab.0, "fx", true);
    let tracebacks = stderr.matches("Traceback (most recent call last)").count()
        + fx.iter().filter(|l| l["event"] == "traceback").count();
    let id = started_id(&fx).unwrap();
    let (a, b) = (started_id(&s1).unwrap(), started_id(&s2).unwrap());
    let field = |r: Option<&Value>, key: &str| r.map_or(Value::Null, |r| r[key].clone());
    println!(
        "{script}: after {:.0} s, tracebacks {tracebacks}; it measured s1 {:.3} ms, s2 {:.3} ms; \
         s1 measured it {} ms ({}), s2 {} ms ({})",
        began.elapsed().as_secs_f64(),
        fixture_measured(&fx, &a).unwrap(),
        fixture_measured(&fx, &b).unwrap(),
        field(sdss_report(&s1, &id), "delay_ms"),
        field(sdss_report(&s1, &id), "dialect"),
        field(sdss_report(&s2, &id), "delay_ms"),
        field(sdss_report(&s2, &id), "dialect"),
    );
    assert_eq!(tracebacks, 0, "{script} raised:\n{stderr}");
    let down = run(&["lab", "down", &lab.0]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert_clean(&lab.0, Some(script));
}

#[test]
fn a_text_client_first_server_is_never_killed() {
    beside_two_sdss_nodes(
        "a_text_client_first_server_is_never_killed",
        "fra",
        "fragile_text_client_first.py",
        true,
    );
}

#[test]
fn a_float32_client_that_unpacks_four_bytes_gets_four() {
    beside_two_sdss_nodes(
        "a_float32_client_that_unpacks_four_bytes_gets_four",
        "frb",
        "fragile_float32.py",
        false,
    );
}

#[test]
fn a_text_client_is_answered_in_text() {
    beside_two_sdss_nodes(
        "a_text_client_is_answered_in_text",
        "frc",
        "fragile_text.py",
        true,
    );
}

#[test]
fn a_blocking_inline_client_is_answered_and_never_stalled() {
    beside_two_sdss_nodes(
        "a_blocking_inline_client_is_answered_and_never_stalled",
        "frd",
        "fragile_inline.py",
        true,
    );
}
