//! Network-namespace labs: topology files, kernel objects, delay emulation,
//! verification of what the nodes measure against what was injected.

pub mod delay;
pub mod emulator;
pub mod grade;
pub mod impairment;
pub mod launch;
pub mod lifecycle;
pub mod links;
pub mod netns;
pub mod plan;
pub mod progress;
pub mod report;
pub mod state;
pub mod topology;
pub mod verify;
