//! The link probe: a stream of numbered, timestamped UDP packets for every
//! ordered pair, sent and received by threads inside the node namespaces, so
//! the links are measured themselves and not through the nodes.

pub mod packet;
pub mod record;
