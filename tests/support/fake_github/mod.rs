//! A stateful fake GitHub REST server (being built).
