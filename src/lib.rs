//! sdss: the Simple Delay Sync Service.
//!
//! * [`protocol`]: the wire formats, pure functions over bytes.
//! * [`node`]: a node's runtime (discovery, timestamp server and client, neighbor table).
//! * [`output`]: how a node's events are shown to people and to programs.
//! * [`lab`]: network-namespace labs that inject delays and verify what nodes measure.
//! * [`manual`]: shell completions and man pages, generated from the command line.
//! * [`cli`]: the command line, which only wires the above together.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod cli;
pub mod lab;
pub mod manual;
pub mod node;
pub mod output;
pub mod protocol;
/// The crate's only unsafe code, behind safe functions.
#[allow(unsafe_code)]
mod sys;
pub mod table;
pub mod units;
