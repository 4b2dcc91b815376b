//! Labs over several hosts: a coordinator where the user types, an agent on
//! each host ([`agent`], `sdss lab agent`), the remote-exec command between
//! them ([`remote`]), and what they say ([`wire`]). Each host builds its share
//! with the same pipeline as a lab on one machine; the segment between the
//! hosts is VXLAN (see [`crate::lab::plan::hosts`]).

pub mod agent;
pub mod coordinator;
pub mod remote;
pub mod underlay;
pub mod wire;

pub use remote::{HostError, RemoteExec, DEFAULT_REMOTE_EXEC};
