//! Kernel objects of a lab: namespaces, links, delays, processes, and the
//! state that records each before it is made.

pub mod delay;
pub mod emulator;
pub mod launch;
pub mod links;
pub mod netns;
pub mod state;
