//! One integration test binary: the real `parallel-orchestrator` binary run against fake
//! servers on 127.0.0.1, with a clean environment.

#[path = "../support/mod.rs"]
mod support;

mod aggregate;
mod fake_github_selftest;
mod llm_client;
mod measure;
mod packaging;
mod plan_cli;
mod split;
mod worker;
