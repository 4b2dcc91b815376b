//! Network-namespace labs, as a pipeline whose stages are the folders here:
//!
//! ```text
//! file      the lab file as written, parsed and validated, errors at their position
//!  -> plan      pure: names, addresses, links, expected delays, backend, all settled
//!               before anything is created
//!  -> builder   builds the kernel objects (namespaces, links, delays, processes), each
//!               recorded in the lab's state before it is made; teardown is the exact
//!               inverse (not `build/`: tools take a folder of that name for output)
//!  -> scenario  plays the lab's timeline while the nodes run (kills, the grading probe)
//!  -> judge     pure: observations in, verdicts out (delays, the grading checklist)
//!  -> report    text and JSON
//! ```
//!
//! [`lifecycle`] composes the stages into `up`, `verify`, `down` and `status`;
//! [`hosts`] runs them over several machines, one share per host; [`live`]
//! changes and inspects a running lab (`lab set`, `lab status --nodes`).

pub mod builder;
pub mod class;
mod error;
pub mod file;
pub mod hosts;
pub mod judge;
pub mod lifecycle;
pub mod live;
pub mod logs;
pub mod plan;
pub mod procfs;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod watch;

pub use error::LabError;
