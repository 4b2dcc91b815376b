//! Interop with implementations written from the assignment, one per wire
//! dialect (`tests/interop/*.py`), in both directions: sdss measures each of
//! them, and each of them measures sdss.

mod common;

use std::time::Duration;

use common::{python_fixture, sdss_node, unique_port, Proc};

const SDSS_ID: &str = "5d55feed";

/// Runs sdss beside one fixture until both have measured each other; returns
/// (sdss's report of the fixture, the fixture's measurement of sdss).
fn measure_both_ways(
    script: &str,
    fixture_id: &str,
) -> (serde_json::Value, serde_json::Value, Proc) {
    let port = unique_port();
    let sdss = sdss_node("sdss", port, &["--id", SDSS_ID, "--verbose"]);
    let fixture = python_fixture(script, fixture_id, port, 12);
    let sdss_view = sdss.wait_for(
        &format!("a report of {fixture_id}"),
        Duration::from_secs(10),
        |line| line["event"] == "neighbor" && line["id"] == fixture_id,
    );
    let fixture_view = fixture.wait_for("a measurement of sdss", Duration::from_secs(10), |line| {
        line["event"] == "measured" && line["peer"] == SDSS_ID
    });
    println!(
        "interop {script:<32} sdss measured it: delay {} ms ({}); it measured sdss: {} ms",
        sdss_view["delay_ms"], sdss_view["dialect"], fixture_view["delay_ms"]
    );
    (sdss_view, fixture_view, sdss)
}

/// A time read in the wrong encoding, or in local time, is off by seconds to
/// years; a right one on loopback by what the reader's wake-up adds, which on
/// a loaded machine reaches tens of milliseconds for a Python peer (12.8 ms
/// with a CPU hog beside the tests).
fn assert_loopback_delay(value: &serde_json::Value, what: &str) {
    let delay = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no delay in {value}"));
    assert!(
        (-1.0..250.0).contains(&delay),
        "{what}: {delay} ms is not a loopback delay"
    );
}

#[test]
fn binary_big_endian_server_first_both_ways() {
    let (sdss_view, fixture_view, _) = measure_both_ways("dialect_binary.py", "pybinary");
    assert_eq!(sdss_view["dialect"], "binary_be");
    assert_loopback_delay(&sdss_view["delay_ms"], "sdss -> binary");
    assert_loopback_delay(&fixture_view["delay_ms"], "binary -> sdss");
}

#[test]
fn ascii_server_first_both_ways() {
    let (sdss_view, fixture_view, _) = measure_both_ways("dialect_ascii.py", "pyascii0");
    assert_eq!(sdss_view["dialect"], "ascii");
    assert_loopback_delay(&sdss_view["delay_ms"], "sdss -> ascii");
    assert_loopback_delay(&fixture_view["delay_ms"], "ascii -> sdss");
}

#[test]
fn ascii_client_first_both_ways() {
    let (sdss_view, fixture_view, _) =
        measure_both_ways("dialect_ascii_client_first.py", "pyclient");
    assert_eq!(sdss_view["dialect"], "ascii");
    assert_loopback_delay(&sdss_view["delay_ms"], "sdss -> ascii client-first");
    assert_loopback_delay(&fixture_view["delay_ms"], "ascii client-first -> sdss");
}

#[test]
fn little_endian_double_both_ways() {
    let (sdss_view, fixture_view, _) = measure_both_ways("dialect_little_endian.py", "pylittle");
    assert_eq!(sdss_view["dialect"], "binary_le");
    assert_loopback_delay(&sdss_view["delay_ms"], "sdss -> little-endian");
    assert_loopback_delay(&fixture_view["delay_ms"], "little-endian -> sdss");
}

#[test]
fn float32_is_rejected_with_a_warning_naming_the_peer_but_its_rtt_is_kept() {
    let (sdss_view, fixture_view, sdss) = measure_both_ways("dialect_float32.py", "pyfloat3");
    assert_eq!(sdss_view["dialect"], "float32");
    assert!(
        sdss_view["delay_ms"].is_null(),
        "no delay from a 4-byte float: {sdss_view}"
    );
    assert!(sdss_view["rtt_ms"].as_f64().unwrap() > 0.0);
    let warning = sdss.wait_for("a float32 warning", Duration::from_secs(2), |line| {
        line["event"] == "warning" && line["kind"] == "float32_timestamp"
    });
    assert_eq!(warning["peer"], "pyfloat3");
    let message = warning["message"].as_str().unwrap();
    assert!(
        message.contains("pyfloat3") && message.contains("resolution"),
        "{message}"
    );
    // sdss answers it in its own dialect, so it measures sdss (as coarsely as it measures anyone).
    assert!(
        fixture_view["delay_ms"].as_f64().unwrap().abs() < 300_000.0,
        "{fixture_view}"
    );
}
