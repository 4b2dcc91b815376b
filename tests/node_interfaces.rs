//! Default destinations: with no `--destination`, a node announces by limited
//! broadcast out of each up, broadcast-capable interface, which works where
//! there is no default route (a lab namespace). Runs in a network namespace of
//! its own with a veth pair, so needs root.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{root_or_skip, unique_port, Proc};

#[test]
fn nodes_announce_on_each_interface_without_a_default_route() {
    if !root_or_skip("nodes_announce_on_each_interface_without_a_default_route") {
        return;
    }
    let port = unique_port().to_string();
    let sdss = env!("CARGO_BIN_EXE_sdss");
    // Two nodes, each bound to one end of a veth pair, in a namespace that dies with them.
    let script = r#"
        set -e
        ip link set lo up
        ip link add sdss-t-a type veth peer name sdss-t-b
        ip addr add 10.77.0.1/24 brd + dev sdss-t-a
        ip addr add 10.77.0.2/24 brd + dev sdss-t-b
        ip link set sdss-t-a up
        ip link set sdss-t-b up
        timeout -s INT 6 "$0" node --json --interface sdss-t-a --id aaaaaaaa --broadcast-port "$1" --interval 200ms &
        timeout -s INT 6 "$0" node --json --interface sdss-t-b --id bbbbbbbb --broadcast-port "$1" --interval 200ms &
        wait
    "#;
    let mut command = Command::new("unshare");
    command.args(["--net", "--", "sh", "-c", script, sdss, &port]);
    let nodes = Proc::spawn("veth pair", command);
    let started = nodes.wait_for("node a started", Duration::from_secs(5), |line| {
        line["event"] == "started" && line["id"] == "aaaaaaaa"
    });
    assert_eq!(
        started["destinations"][0],
        format!("sdss-t-a -> 255.255.255.255:{port}")
    );
    for (observer, peer) in [("aaaaaaaa", "bbbbbbbb"), ("bbbbbbbb", "aaaaaaaa")] {
        // Both nodes print to one stream: the observer is told apart by the peer it measures.
        let line = nodes.wait_for(
            &format!("{observer} measuring {peer}"),
            Duration::from_secs(5),
            |line| line["event"] == "neighbor" && line["id"] == peer,
        );
        assert!(
            line["ip"].as_str().unwrap().starts_with("10.77.0."),
            "{line}"
        );
    }
    assert!(
        nodes
            .events("warning")
            .iter()
            .all(|w| w["kind"] != "send_failed"),
        "{}",
        nodes.transcript()
    );
}
