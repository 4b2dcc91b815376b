//! The `[sandbox]` section: how programs nobody here wrote are confined
//! (see `labs/README.md`, "Confinement").

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{Locator, Topology, TopologyError};

/// A size written as text in the file (`"512MiB"`), in bytes, with its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeValue(pub u64, pub usize);

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Spanned::<String>::deserialize(deserializer)?;
        let at = text.span().start;
        crate::units::parse_size(text.get_ref())
            .map(|bytes| SizeValue(bytes, at))
            .map_err(serde::de::Error::custom)
    }
}

/// `[sandbox]`: each key left out keeps its default (`plan::sandbox`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    /// `false`: programs run as sdss does (root, the machine's view), for
    /// programs one trusts.
    pub enabled: Option<bool>,
    /// The account programs run as, instead of a uid no account uses.
    pub user: Option<Spanned<String>>,
    /// Memory of a program's processes together.
    pub memory: Option<SizeValue>,
    /// Processes and threads at once.
    pub tasks: Option<Spanned<u64>>,
    /// CPU cores' worth of time.
    pub cpu: Option<Spanned<f64>>,
    /// Open files per process.
    pub files: Option<Spanned<u64>>,
    /// Size one written file may reach.
    pub file_size: Option<SizeValue>,
    /// Room in its private `/tmp`, and in its folder beyond the copy.
    pub disk: Option<SizeValue>,
}

/// Least memory a box is given: a Python interpreter needs about 10 MiB.
const MIN_MEMORY: u64 = 16 << 20;

impl Topology {
    pub(super) fn validate_sandbox(&self, at: &Locator<'_>) -> Result<(), TopologyError> {
        let s = &self.sandbox;
        if let Some(user) = &s.user {
            if matches!(user.get_ref().as_str(), "" | "root" | "0") {
                return Err(at.error(
                    Some(user.span()),
                    "[sandbox] user must be an unprivileged account: expected a name such as \"nobody\", or no `user` for a uid no account uses",
                ));
            }
        }
        if let Some(SizeValue(bytes, start)) = s.memory {
            if bytes < MIN_MEMORY {
                return Err(at.error(
                    Some(start..start),
                    format!(
                        "[sandbox] memory {} is too little to start a program: expected at least 16 MiB",
                        crate::units::format_size(bytes)
                    ),
                ));
            }
        }
        for (value, what, least) in [(&s.tasks, "tasks", 1), (&s.files, "files", 16)] {
            if let Some(n) = value {
                if *n.get_ref() < least {
                    return Err(at.error(
                        Some(n.span()),
                        format!("[sandbox] {what} must be at least {least}"),
                    ));
                }
            }
        }
        if let Some(cpu) = &s.cpu {
            let cores = *cpu.get_ref();
            if !(0.01..=1024.0).contains(&cores) {
                return Err(at.error(
                    Some(cpu.span()),
                    format!("[sandbox] cpu {cores} is out of range: expected CPU cores between 0.01 and 1024, e.g. 1.0"),
                ));
            }
        }
        for (value, what) in [(s.file_size, "file_size"), (s.disk, "disk")] {
            if let Some(SizeValue(bytes, start)) = value {
                if bytes < 1 << 20 {
                    return Err(at.error(
                        Some(start..start),
                        format!("[sandbox] {what} must be at least 1 MiB"),
                    ));
                }
            }
        }
        for node in &self.nodes {
            let Some(dir) = &node.dir else { continue };
            if dir.get_ref().is_empty() {
                return Err(at.error(Some(dir.span()), "dir is empty: expected a folder"));
            }
            if node.command.is_none() && !node.grade {
                return Err(at.error(
                    Some(dir.span()),
                    "dir names the folder of a program that runs confined: expected it on a node with a `command` or `grade = true`",
                ));
            }
        }
        Ok(())
    }
}
