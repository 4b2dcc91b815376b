//! Confinement of the programs nobody here wrote (see `plan::sandbox`).

pub mod spec;
