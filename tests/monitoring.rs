//! The repository's dashboards and alerting rules against a real Prometheus
//! server (Debian package `prometheus`): it scrapes a lab's `--metrics` and
//! two loopback nodes' at 1 s, loads `monitoring/prometheus/sdss-alerts.yml`,
//! and every query of `monitoring/grafana/*.json`, then every rule's
//! expression, is asked of its HTTP API until it returns data. The lab is
//! graded against other delays than it injects and loses a node to its
//! timeline, and a node is killed, so that every alert has something to say.

mod common;
mod lab_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_tcp_port, http_get, sdss_node, unique_port};
use lab_support::{run, sandboxed, text, unique, Scratch};
use serde_json::Value;

const PROMETHEUS: &str = "prometheus";

/// Prometheus, killed and its storage removed on drop, whatever happened.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lab, downed on drop.
struct Lab(String);

impl Drop for Lab {
    fn drop(&mut self) {
        let down = run(&["lab", "down", &self.0]);
        if !down.status.success() {
            eprintln!("lab down {}: {}", self.0, text(&down));
        }
    }
}

/// `GET path` of the server at `port`, its body.
fn get(port: u16, path: &str) -> Result<String, String> {
    http_get(port, path, "")
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query's result vector, or why there is none.
fn query(port: u16, expr: &str) -> Result<Vec<Value>, String> {
    let body = get(
        port,
        &format!("/api/v1/query?query={}", percent_encode(expr)),
    )?;
    let answer: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    match answer["data"]["result"].as_array() {
        Some(result) => Ok(result.clone()),
        None => Err(body),
    }
}

/// Asks every query until each returns data; panics naming those that did
/// not within `limit`. Returns each query's first result.
fn until_all_answer(
    port: u16,
    queries: &[String],
    limit: Duration,
    what: &str,
) -> Vec<(String, usize, Value)> {
    let deadline = Instant::now() + limit;
    loop {
        let mut answered = Vec::new();
        let mut silent = Vec::new();
        for expr in queries {
            match query(port, expr) {
                Ok(result) if !result.is_empty() => {
                    answered.push((expr.clone(), result.len(), result[0].clone()))
                }
                Ok(_) => silent.push(format!("{expr}: no data")),
                Err(e) => silent.push(format!("{expr}: {e}")),
            }
        }
        if silent.is_empty() {
            return answered;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {} returned nothing within {limit:?}:\n{}",
            silent.len(),
            queries.len(),
            silent.join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every `expr` of a dashboard's panels (rows' panels too), with Grafana's
/// variables as a dashboard showing everything has them.
fn dashboard_queries(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    assert!(
        text.contains("${DS_PROMETHEUS}"),
        "{}: the datasource is an input",
        path.display()
    );
    let mut queries = Vec::new();
    let mut panels: Vec<Value> = dashboard["panels"].as_array().cloned().unwrap_or_default();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            queries.push(
                expr.replace("$__rate_interval", "15s")
                    .replace("$instance", ".+")
                    .replace("$lab", ".+"),
            );
        }
    }
    assert!(!queries.is_empty(), "{}: no queries", path.display());
    queries
}

#[test]
fn prometheus_answers_every_dashboard_query_and_rule_of_a_lab_and_a_node() {
    if !sandboxed("prometheus_answers_every_dashboard_query_and_rule_of_a_lab_and_a_node") {
        return;
    }
    if Command::new(PROMETHEUS).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SDSS_REQUIRE_ROOT_TESTS").is_none(),
            "prometheus is not installed (Debian package prometheus)"
        );
        eprintln!("SKIPPED: prometheus not found (Debian package prometheus)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = repo.join("monitoring/prometheus/sdss-alerts.yml");
    let scratch = Scratch::new("monitoring");
    let (lab_port, a_port, b_port, prometheus_port) = (
        free_tcp_port(),
        free_tcp_port(),
        free_tcp_port(),
        free_tcp_port(),
    );
    let config = scratch.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n\
             \x20 - job_name: sdss-node\n    static_configs:\n      - targets: ['127.0.0.1:{a_port}', '127.0.0.1:{b_port}']\n\
             \x20 - job_name: sdss-lab\n    static_configs:\n      - targets: ['127.0.0.1:{lab_port}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let log = scratch.0.join("prometheus.log");
    let server = Server {
        child: Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                scratch.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus"),
        port: prometheus_port,
        log,
    };
    let started = Instant::now();

    // Two nodes on loopback, measuring each other.
    let broadcast = unique_port();
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let _a = sdss_node("a", broadcast, &["--metrics", &addr(a_port)]);
    let mut b = sdss_node("b", broadcast, &["--metrics", &addr(b_port)]);

    // A lab graded against delays it does not inject (every pair out of
    // tolerance), whose node c stops at 6 s.
    let lab = unique("mon");
    let told = scratch.lab(
        "told.toml",
        &format!("name = \"{lab}\"\n{LAB}{DELAYS}\"1ms\"\n{EVENT}"),
    );
    let injected = scratch.lab(
        "injected.toml",
        &format!("name = \"{lab}\"\n{LAB}{DELAYS}\"4ms\"\n{EVENT}"),
    );
    let guard = Lab(lab.clone());
    let up = run(&[
        "lab",
        "up",
        told.to_str().unwrap(),
        "--inject-from",
        injected.to_str().unwrap(),
        "--metrics",
        &addr(lab_port),
    ]);
    assert_eq!(
        up.status.code(),
        Some(1),
        "pairs fail as graded: {}",
        text(&up)
    );
    let up_err = String::from_utf8_lossy(&up.stderr);
    assert!(
        up_err.contains(&format!(
            "its metrics at http://127.0.0.1:{lab_port}/metrics"
        )),
        "{up_err}"
    );

    let mut queries = Vec::new();
    for file in ["sdss-node.json", "sdss-lab.json"] {
        queries.extend(dashboard_queries(
            &repo.join("monitoring/grafana").join(file),
        ));
    }
    let answered = until_all_answer(server.port, &queries, Duration::from_secs(20), "dashboards");
    println!(
        "every dashboard query answered ({:.1} s after prometheus started):",
        started.elapsed().as_secs_f64()
    );
    for (expr, count, first) in &answered {
        println!("{expr}\n  {count} series; first: {first}");
    }

    // The rules Prometheus loaded from the file, and their expressions.
    let loaded: Value = serde_json::from_str(&get(server.port, "/api/v1/rules").unwrap()).unwrap();
    let exprs: Vec<String> = loaded["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| r["query"].as_str().unwrap_or_default().to_owned())
        .collect();
    let in_file = std::fs::read_to_string(&rules)
        .unwrap()
        .matches("- alert:")
        .count();
    assert_eq!(
        exprs.len(),
        in_file,
        "prometheus loaded every rule: {loaded}"
    );
    // Node b goes: it is down, and a loses its peer.
    b.kill();
    let fired = until_all_answer(
        server.port,
        &exprs,
        Duration::from_secs(20),
        "alerting rules",
    );
    println!("every rule's expression answered:");
    for (expr, count, first) in &fired {
        println!("{expr}\n  {count} series; first: {first}");
    }
    drop(guard);
    lab_support::assert_clean(&lab, Some(&format!("lab metrics {lab}")));
    let said = std::fs::read_to_string(&server.log).unwrap_or_default();
    assert!(
        !said.contains("level=error"),
        "prometheus logged errors:\n{said}"
    );
}

const LAB: &str =
    "[defaults]\ninterval = \"250ms\"\nrefresh_every = 4\n\n[verify]\nsamples = 3\nwarmup = 1\n\n";
const DELAYS: &str = "[[node]]\nname = \"a\"\ndelay = \"1ms\"\n[[node]]\nname = \"b\"\ndelay = \"2ms\"\n[[node]]\nname = \"c\"\ndelay = ";
const EVENT: &str = "\n[[event]]\nname = \"crash\"\nat = \"8s\"\naction = \"kill\"\nnode = \"c\"\n";
