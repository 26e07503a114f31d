//! Test support shared by the integration tests: fake GitHub and fake LLM servers.
#![allow(dead_code)]

pub mod cli;
pub mod fake_github;
pub mod fake_llm;
pub mod orchestrate;
