//! sdss: the Simple Delay Sync Service.
#![warn(missing_docs)]

pub mod protocol;
