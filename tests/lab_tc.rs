//! `tc` as sdss runs it: the commands of a change in one batch per
//! namespace, the batches at once, and a failure that names its command.
//! The kernel here has htb but not netem: htb stands in for it.

mod lab_support;

use std::process::Command;

use lab_support::*;
use sdss::lab::builder::delay::{Tc, TcCommand, TcError};

/// A namespace for one test, removed on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let made = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(made.is_ok_and(|s| s.success()), "ip netns add {name}");
        Netns(name)
    }

    fn command(&self, line: &str) -> TcCommand {
        TcCommand {
            netns: self.0.clone(),
            args: line.split_whitespace().map(str::to_owned).collect(),
        }
    }

    fn classes(&self) -> String {
        let out = Command::new("tc")
            .args(["-n", &self.0, "class", "show", "dev", "lo"])
            .output()
            .expect("tc class show");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_batch_per_namespace_applies_every_command_in_order_and_names_the_one_that_failed() {
    if !sandboxed(
        "a_batch_per_namespace_applies_every_command_in_order_and_names_the_one_that_failed",
    ) {
        return;
    }
    let (a, b) = (Netns::new(unique("tca")), Netns::new(unique("tcb")));
    let root = "qdisc replace dev lo root handle 1: htb default 1";
    let class = |minor: u32| format!("class add dev lo parent 1: classid 1:{minor} htb rate 1gbit");
    // Interleaved: each namespace's commands keep their order (a class needs its root).
    let mut commands = vec![a.command(root), b.command(root)];
    for minor in 1..=40 {
        commands.push(a.command(&class(minor)));
        commands.push(b.command(&class(minor + 100)));
    }
    Tc.batch(&commands).expect("every command applied");
    for (netns, first) in [(&a, 1), (&b, 101)] {
        let classes = netns.classes();
        let count = classes
            .lines()
            .filter(|l| l.starts_with("class htb"))
            .count();
        assert_eq!(count, 40, "{classes}");
        assert!(
            classes.contains(&format!("class htb 1:{first} ")),
            "{classes}"
        );
    }
    // The same class twice: the batch stops there, and says which command it was.
    let again = [
        b.command(&class(200)),
        b.command(&class(201)),
        b.command(&class(200)),
    ];
    let failed = Tc.batch(&again).expect_err("a class added twice");
    assert!(matches!(failed, TcError::Failed { .. }), "{failed}");
    let said = failed.to_string();
    assert!(
        said.contains(&format!(
            "-n {} class add dev lo parent 1: classid 1:200",
            b.0
        )),
        "{said}"
    );
    assert!(said.contains("File exists"), "{said}");
}
