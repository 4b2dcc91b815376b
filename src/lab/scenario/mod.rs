//! What happens while a lab's nodes run: the grading probe and its timeline.

pub mod grading;
pub mod probe;
