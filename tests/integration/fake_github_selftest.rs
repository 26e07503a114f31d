//! Self-tests of the fake GitHub server (being built).
