//! A node's runtime: discovery, timestamp server, timestamp client, neighbor table.

pub mod event;
