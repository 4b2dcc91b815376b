//! `sdss node --metrics`: two real nodes on loopback, scraped over HTTP once
//! they have measured each other; the scrape is checked by `promtool` when it
//! is installed (Debian package `prometheus`).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_tcp_port, http_get, sdss_node, unique_port, Proc};

/// The body of `GET /metrics` at `port`, or why there is none.
fn scrape(port: u16, accept: Option<&str>) -> Result<String, String> {
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    http_get(port, "/metrics", &accept)
}

/// Scrapes until `done` holds for the body; panics with the last one after `limit`.
fn scrape_until(node: &Proc, port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    let limit = Duration::from_secs(10);
    let deadline = Instant::now() + limit;
    loop {
        let last = scrape(port, None);
        if let Ok(body) = &last {
            if done(body) {
                return body.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: no {what} within {limit:?}; last scrape: {last:?}\nit printed:\n{}",
            node.name,
            node.transcript()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the series named exactly `series` (name and labels).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// The labels of the peer `id` at 127.0.0.1 (`ip` and `port`: per-peer
/// series are labelled by address), once its info series is there.
fn peer_labels(body: &str, id: &str) -> Option<String> {
    let tail = format!(r#"",id="{id}",dialect="binary_be"}} 1"#);
    body.lines().find_map(|line| {
        let port = line
            .strip_prefix(r#"sdss_peer_info{ip="127.0.0.1",port=""#)?
            .strip_suffix(&tail)?;
        Some(format!(r#"ip="127.0.0.1",port="{port}""#))
    })
}

/// The peer's last delay, once it has one.
fn last_delay(body: &str, id: &str) -> Option<f64> {
    let labels = peer_labels(body, id)?;
    value(body, &format!("sdss_peer_last_delay_seconds{{{labels}}}"))
}

#[test]
fn two_nodes_expose_their_measurements_and_drop_a_removed_peers_series() {
    let port = unique_port();
    let (metrics_a, metrics_b) = (free_tcp_port(), free_tcp_port());
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let a = sdss_node("a", port, &["--metrics", &addr(metrics_a)]);
    let mut b = sdss_node("b", port, &["--metrics", &addr(metrics_b)]);
    let (id_a, id_b) = (a.id(), b.id());

    let body = scrape_until(&a, metrics_a, "measurement of b", |body| {
        last_delay(body, &id_b).is_some()
    });
    scrape_until(&b, metrics_b, "measurement of a", |body| {
        last_delay(body, &id_a).is_some()
    });
    let labels = peer_labels(&body, &id_b).unwrap();
    let delay = last_delay(&body, &id_b).unwrap();
    assert!((0.0..0.05).contains(&delay), "loopback delay {delay} s");
    for series in [
        format!("sdss_peer_offset_seconds{{{labels}}}"),
        format!("sdss_peer_min_delay_seconds{{{labels}}}"),
        format!("sdss_peer_mean_delay_seconds{{{labels}}}"),
        format!(r#"sdss_peer_delay_seconds_bucket{{{labels},le="5e-05"}}"#),
        format!("sdss_peer_delay_seconds_count{{{labels}}}"),
        format!(r#"sdss_peer_exchanges_total{{{labels},result="success"}}"#),
        format!(r#"sdss_peer_exchanges_total{{{labels},result="failure"}}"#),
        format!(r#"sdss_peer_rtt_seconds_bucket{{{labels},le="5e-05"}}"#),
        format!(r#"sdss_peer_rtt_seconds_bucket{{{labels},le="+Inf"}}"#),
        format!("sdss_peer_rtt_seconds_count{{{labels}}}"),
        r#"sdss_exchanges_total{result="refused"}"#.to_owned(),
        r#"sdss_warnings_total{kind="malformed_datagram"}"#.to_owned(),
        format!(
            r#"sdss_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        ),
        "process_cpu_seconds_total".to_owned(),
        "process_resident_memory_bytes".to_owned(),
        "process_open_fds".to_owned(),
        "process_max_fds".to_owned(),
        "process_start_time_seconds".to_owned(),
    ] {
        assert!(value(&body, &series).is_some(), "no {series} in\n{body}");
    }
    assert_eq!(value(&body, "sdss_peers"), Some(1.0), "{body}");
    for (series, at_least) in [
        (r#"sdss_exchanges_total{result="success"}"#, 1.0),
        (r#"sdss_datagrams_total{kind="heard"}"#, 1.0),
        (r#"sdss_datagrams_total{kind="sent"}"#, 1.0),
        (r#"sdss_datagrams_total{kind="own"}"#, 1.0),
    ] {
        let count = value(&body, series).unwrap_or(0.0);
        assert!(count >= at_least, "{series} is {count}:\n{body}");
    }
    println!("a scrape of node a (text format):\n{body}");

    let open_metrics = scrape(
        metrics_a,
        Some("application/openmetrics-text;version=1.0.0"),
    )
    .expect("an OpenMetrics scrape");
    assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
    assert!(
        open_metrics.contains("# UNIT sdss_peer_delay_seconds seconds\n"),
        "{open_metrics}"
    );

    promtool_check(&body);

    b.kill();
    scrape_until(&a, metrics_a, "removal of b's series", |body| {
        !body.contains(&id_b)
            && !body.contains("127.0.0.1")
            && value(body, "sdss_peers") == Some(0.0)
    });
}

/// `promtool check metrics` on `body`; skips with the reason when promtool is absent.
fn promtool_check(body: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED promtool check: promtool not found (Debian package prometheus)");
            return;
        }
        Err(error) => panic!("cannot run promtool: {error}"),
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(body.as_bytes())
        .expect("write the scrape to promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}): {said}\non:\n{body}",
        output.status
    );
    println!("promtool check metrics: exit 0 {said}");
}

/// `promtool check rules` on the repository's alerting rules (`monitoring/`).
#[test]
fn the_alerting_rules_pass_promtool() {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/monitoring/prometheus/sdss-alerts.yml"
    );
    let output = match Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("SDSS_REQUIRE_ROOT_TESTS").is_none(),
                "promtool is not installed (Debian package prometheus)"
            );
            println!(
                "SKIPPED promtool check rules: promtool not found (Debian package prometheus)"
            );
            return;
        }
        Err(error) => panic!("cannot run promtool: {error}"),
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check rules failed: {said}"
    );
    assert!(said.contains("SUCCESS"), "{said}");
    println!("promtool check rules: {said}");
}
