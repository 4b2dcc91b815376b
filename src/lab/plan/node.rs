//! What runs in a node's namespace: its command line and environment.

use std::path::Path;

use super::{NodePlan, Plan, Program, NODE_IFNAME};

impl NodePlan {
    /// The command line that runs in the node's namespace. `sdss` is the path of
    /// the sdss executable. Placeholders in a custom command: `{lab}`, `{node}`,
    /// `{netns}`, `{address}`, `{prefix}`, `{subnet}`, `{broadcast}`, `{ifname}`, `{sdss}`.
    pub fn argv(&self, plan: &Plan, sdss: &Path) -> Vec<String> {
        match &self.program {
            Program::Sdss { args } => {
                let settings = &plan.node_settings;
                // A graded sdss node runs with the assignment's cadence, which it is graded on.
                let (interval, refresh_every) = if self.grade {
                    (
                        crate::protocol::ANNOUNCE_INTERVAL,
                        crate::protocol::REFRESH_EVERY,
                    )
                } else {
                    (settings.interval, settings.refresh_every)
                };
                let mut argv = vec![
                    sdss.display().to_string(),
                    "node".to_owned(),
                    "--json".to_owned(),
                    "--interval".to_owned(),
                    crate::units::format_duration(interval),
                    "--refresh-every".to_owned(),
                    refresh_every.to_string(),
                ];
                if let Some(timeout) = &settings.exchange_timeout {
                    argv.push("--exchange-timeout".to_owned());
                    argv.push(timeout.clone());
                }
                argv.extend(settings.args.iter().cloned());
                argv.extend(args.iter().cloned());
                argv
            }
            Program::Command { argv } => argv.iter().map(|a| self.expand(a, plan, sdss)).collect(),
            Program::Probe => Vec::new(),
        }
    }

    /// Environment variables every node process gets, so a third-party
    /// implementation can find its namespace and address without placeholders.
    pub fn env(&self, plan: &Plan, sdss: &Path) -> Vec<(String, String)> {
        vec![
            ("SDSS_LAB".to_owned(), plan.lab.clone()),
            ("SDSS_NODE".to_owned(), self.name.clone()),
            ("SDSS_NETNS".to_owned(), self.netns.clone()),
            ("SDSS_ADDRESS".to_owned(), self.address.to_string()),
            (
                "SDSS_PREFIX".to_owned(),
                plan.subnet.prefix_len().to_string(),
            ),
            (
                "SDSS_BROADCAST".to_owned(),
                plan.subnet.broadcast().to_string(),
            ),
            ("SDSS_IFNAME".to_owned(), NODE_IFNAME.to_owned()),
            ("SDSS_EXE".to_owned(), sdss.display().to_string()),
        ]
    }

    fn expand(&self, arg: &str, plan: &Plan, sdss: &Path) -> String {
        arg.replace("{lab}", &plan.lab)
            .replace("{node}", &self.name)
            .replace("{netns}", &self.netns)
            .replace("{address}", &self.address.to_string())
            .replace("{prefix}", &plan.subnet.prefix_len().to_string())
            .replace("{subnet}", &plan.subnet.to_string())
            .replace("{broadcast}", &plan.subnet.broadcast().to_string())
            .replace("{ifname}", NODE_IFNAME)
            .replace("{sdss}", &sdss.display().to_string())
    }
}
