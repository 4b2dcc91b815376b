//! The delay backend a user asks for, on the command line or in a host's
//! section: a word of the file's, which the plan settles into a kind.

use serde::{Deserialize, Serialize};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// none if the lab has no delays; otherwise netem where the kernel has it, else the emulator.
    Auto,
    /// Kernel netem; an error where the kernel lacks it.
    Netem,
    /// The userspace link emulator (TAP devices and a switch process).
    Emulator,
    /// Inject nothing and expect zero delay everywhere (the file's delays are ignored).
    None,
}
