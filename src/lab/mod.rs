//! Network-namespace labs: topology files, kernel objects, delay emulation,
//! verification of what the nodes measure against what was injected.

pub mod emulator;
pub mod impairment;
