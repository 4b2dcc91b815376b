//! How a node's events are shown: coloured lines for people, JSON lines for programs.
