//! What a host's share of a lab over several injects: per-node links split
//! between the sender's host and the receiver's, per-pair mode whole on the
//! sender's, toward each remote node by its address.

use std::net::Ipv4Addr;

use super::*;

/// Hosts a (n1, n3), b (n2) and c (n4); links 2, 3, 4 and 5 ms.
const SPREAD: &str = r#"name = "spread"
subnet = "10.0.0.0/24"
[[host]]
name = "a"
ssh = "root@10.1.0.1"
underlay = "10.1.0.1"
[[host]]
name = "b"
ssh = "root@10.1.0.2"
underlay = "10.1.0.2"
[[host]]
name = "c"
ssh = "root@10.1.0.3"
underlay = "10.1.0.3"
[[node]]
name = "n1"
host = "a"
delay = "2ms"
[[node]]
name = "n2"
host = "b"
delay = "3ms"
[[node]]
name = "n3"
host = "a"
delay = "4ms"
[[node]]
name = "n4"
host = "c"
delay = "5ms"
"#;

fn ms(n: u64) -> Impairment {
    Impairment {
        delay: Duration::from_millis(n),
        ..Impairment::default()
    }
}

/// Host a's share of `text`.
fn share_a(text: &str) -> Plan {
    Plan::from_text(text).share("a").expect("host a")
}

/// Commands as they would be typed.
fn lines(commands: Vec<TcCommand>) -> Vec<String> {
    commands.iter().map(ToString::to_string).collect()
}

// Host a's emulator: ports n1, n3, then hosts b and c; columns those four,
// then remote nodes n2 and n4.
const HOST_B: usize = 2;
const N2: usize = 4;
const N4: usize = 5;

#[test]
fn per_node_links_are_split_between_the_senders_host_and_the_receivers() {
    let share = share_a(SPREAD);
    let spec = emulator_spec(&share);
    let uplink = spec.uplink.as_ref().expect("an uplink");
    assert_eq!(
        uplink.nodes,
        [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 4)],
        "n2 and n4, by address"
    );
    let matrix = wire_matrix(&share, None);
    assert_eq!(matrix.len(), spec.port_count());
    assert!(matrix.iter().all(|row| row.len() == spec.column_count()));
    // n1 -> n3, both here: n1's link, then n3's (2 + 4 ms).
    assert_eq!(matrix[0][1], Stages::in_series(ms(2), ms(4)));
    assert_eq!(matrix[0][1].then, Some(ms(4)));
    // n1 -> anything on other hosts: n1's link here, the receiver's there.
    for column in [HOST_B, HOST_B + 1, N2, N4] {
        assert_eq!(matrix[0][column], ms(2), "column {column}");
    }
    // From host b: the receiver's link here; never to another host.
    assert_eq!(&matrix[HOST_B][..2], [ms(2), ms(4)]);
    assert!(matrix[HOST_B][2..].iter().all(|cell| *cell == CUT));
    // What the lab writes is what the emulator daemon accepts.
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(EmulatorSpec::from_json(&json).unwrap(), spec);
}

#[test]
fn per_pair_mode_applies_a_cross_host_pair_whole_on_the_senders_host() {
    // Calibration's per-pair mode, on links alone.
    let share = Plan::from_text(SPREAD)
        .calibrated()
        .share("a")
        .expect("host a");
    let matrix = wire_matrix(&share, None);
    assert_eq!(matrix[0][N2], ms(5), "n1 -> n2: 2 + 3 ms");
    assert_eq!(matrix[1][N4], ms(9), "n3 -> n4: 4 + 5 ms");
    // ARP and broadcasts: the sender's own link.
    assert_eq!(matrix[0][HOST_B], ms(2));
    // From the other hosts: nothing more here.
    assert_eq!(&matrix[HOST_B][..2], [Impairment::default(); 2]);
    let commands = lines(netem_commands(&share));
    for expected in [
        // n1's classes: n3 (index 1), n2 (2) and n4 (3), after its own nodes.
        "tc -n sdss-spread-n1 filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.0.0.3/32 flowid 1:11",
        "tc -n sdss-spread-n1 filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.0.0.2/32 flowid 1:12",
        "tc -n sdss-spread-n1 filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.0.0.4/32 flowid 1:13",
        "tc -n sdss-spread-n1 qdisc add dev eth0 parent 1:12 handle 12: netem delay 5000us",
        "tc -n sdss-spread-n3 qdisc add dev eth0 parent 1:13 handle 13: netem delay 9000us",
        "tc -n sdss-spread-n1 qdisc add dev eth0 parent 1:1 handle 2: netem delay 2000us",
    ] {
        assert!(commands.contains(&expected.to_owned()), "{expected}\n{commands:#?}");
    }
    // Nothing on the bridge (nor the VXLAN device): frames from other hosts pass.
    assert!(
        !commands.iter().any(|c| c.contains("sdss-spread ")),
        "{commands:#?}"
    );
}

/// [`SPREAD`] with a pair across hosts and a timeline: n4's link moves
/// (phase 1), a partition whose groups span hosts (2), a heal (3), n1 cut
/// (4) and healed (5).
fn played() -> String {
    format!(
        "{SPREAD}[[pair]]\nfrom = \"n1\"\nto = \"n2\"\ndelay = \"20ms\"\n\
         [[event]]\nat = \"1s\"\naction = \"set\"\nnode = \"n4\"\ndelay = \"9ms\"\n\
         [[event]]\nat = \"2s\"\naction = \"partition\"\ngroups = [[\"n1\", \"n2\"], [\"n3\", \"n4\"]]\n\
         [[event]]\nat = \"3s\"\naction = \"heal\"\n\
         [[event]]\nat = \"4s\"\naction = \"cut\"\nnode = \"n1\"\n\
         [[event]]\nat = \"5s\"\naction = \"heal\"\nnode = \"n1\"\n"
    )
}

/// The change from phase `from` to `from + 1` on `share`.
fn step(share: &Plan, from: usize) -> LinkChange<'_> {
    let phases = &share.timeline.phases;
    LinkChange::Phases {
        plan: share,
        before: &phases[from],
        after: &phases[from + 1],
    }
}

#[test]
fn a_pair_across_hosts_is_built_on_its_senders_host() {
    let share = share_a(&played());
    assert!(share.per_pair);
    let matrix = wire_matrix(&share, None);
    assert_eq!(matrix[0][N2], ms(20), "the [[pair]]");
    assert_eq!(matrix[0][N4], ms(7));
    let commands = lines(netem_commands(&share));
    let leaf = "tc -n sdss-spread-n1 qdisc add dev eth0 parent 1:12 handle 12: netem delay 20000us";
    assert!(commands.contains(&leaf.to_owned()), "{commands:#?}");
    // The reverse direction is n2's host's: 3 + 2 ms, not the pair.
    let b = Plan::from_text(&played()).share("b").expect("host b");
    let names: Vec<&str> = b.destinations().map(|(name, _)| name).collect();
    assert_eq!(names, ["n2", "n1", "n3", "n4"]);
    // Ports n2, hosts a and c; then n1's column.
    assert_eq!(wire_matrix(&b, None)[0][3], ms(5));
}

#[test]
fn a_link_set_on_another_host_moves_the_pairs_toward_it_here() {
    let share = share_a(&played());
    let change = step(&share, 0);
    let matrix = change.matrix();
    assert_eq!(matrix[0][N4], ms(11), "n1 -> n4: 2 + 9 ms");
    assert_eq!(matrix[1][N4], ms(13), "n3 -> n4: 4 + 9 ms");
    assert_eq!(matrix[0][N2], ms(20), "the pair stays");
    let commands = lines(change.netem_commands());
    assert_eq!(
        commands,
        [
            "tc -n sdss-spread-n1 qdisc replace dev eth0 parent 1:13 handle 13: netem delay 11000us",
            "tc -n sdss-spread-n3 qdisc replace dev eth0 parent 1:13 handle 13: netem delay 13000us",
        ]
    );
}

#[test]
fn a_partition_across_hosts_separates_the_pairs_that_cross_it_and_nothing_else() {
    let share = share_a(&played());
    let change = step(&share, 1);
    let matrix = change.matrix();
    assert_eq!(matrix[0][1], CUT, "n1 -> n3, both here");
    assert_eq!(matrix[0][N4], CUT, "n1 -> n4 on c");
    assert_eq!(matrix[1][N2], CUT, "n3 -> n2 on b");
    assert_eq!(matrix[0][N2], ms(20), "n1 and n2 share a group");
    assert_eq!(matrix[1][N4], ms(13), "n3 and n4 share a group");
    // Not cut off: their broadcasts still leave, with their own links.
    assert_eq!(matrix[0][HOST_B], ms(2));
    let mut commands = lines(change.netem_commands());
    commands.sort();
    assert_eq!(
        commands,
        [
            "tc -n sdss-spread-n1 qdisc replace dev eth0 parent 1:11 handle 11: netem loss 100%",
            "tc -n sdss-spread-n1 qdisc replace dev eth0 parent 1:13 handle 13: netem loss 100%",
            "tc -n sdss-spread-n3 qdisc replace dev eth0 parent 1:10 handle 10: netem loss 100%",
            "tc -n sdss-spread-n3 qdisc replace dev eth0 parent 1:12 handle 12: netem loss 100%",
        ]
    );
    // The heal puts back what the partition took.
    let healed = lines(step(&share, 2).netem_commands());
    assert_eq!(healed.len(), 4, "{healed:#?}");
    assert!(healed.contains(
        &"tc -n sdss-spread-n1 qdisc replace dev eth0 parent 1:13 handle 13: netem delay 11000us"
            .to_owned()
    ));
}

#[test]
fn a_cut_node_loses_its_remote_pairs_and_its_broadcasts_until_healed() {
    let share = share_a(&played());
    let cut = step(&share, 3);
    let matrix = cut.matrix();
    assert!(
        matrix[0][1..].iter().all(|cell| *cell == CUT),
        "n1's row, other hosts included: {:?}",
        matrix[0]
    );
    assert_eq!(matrix[1][0], CUT, "n3 -> n1");
    assert_eq!(matrix[1][N2], ms(7), "n3 -> n2 untouched");
    let commands = lines(cut.netem_commands());
    for expected in [
        "tc -n sdss-spread-n1 qdisc replace dev eth0 parent 1:11 handle 11: netem loss 100%",
        "tc -n sdss-spread-n1 qdisc replace dev eth0 parent 1:12 handle 12: netem loss 100%",
        "tc -n sdss-spread-n1 qdisc replace dev eth0 parent 1:13 handle 13: netem loss 100%",
        "tc -n sdss-spread-n3 qdisc replace dev eth0 parent 1:10 handle 10: netem loss 100%",
        // Cut off from every node, here and elsewhere: its broadcasts stop.
        "tc -n sdss-spread-n1 qdisc replace dev eth0 parent 1:1 handle 2: netem loss 100%",
    ] {
        assert!(
            commands.contains(&expected.to_owned()),
            "{expected}\n{commands:#?}"
        );
    }
    assert_eq!(commands.len(), 5, "{commands:#?}");
    let healed = step(&share, 4);
    assert_eq!(healed.matrix()[0][HOST_B], ms(2));
    assert!(lines(healed.netem_commands()).contains(
        &"tc -n sdss-spread-n1 qdisc replace dev eth0 parent 1:1 handle 2: netem delay 2000us"
            .to_owned()
    ));
}

#[test]
fn a_node_separated_only_from_the_nodes_here_is_not_cut_off() {
    // n1 and n3 apart, each with a remote node: both still broadcast.
    let text = format!(
        "{SPREAD}[[event]]\nat = \"1s\"\naction = \"partition\"\ngroups = [[\"n1\", \"n2\"], [\"n3\", \"n4\"]]\n"
    );
    let share = share_a(&text);
    let commands = lines(step(&share, 0).netem_commands());
    assert!(
        !commands.iter().any(|c| c.contains("parent 1:1 ")),
        "{commands:#?}"
    );
}
