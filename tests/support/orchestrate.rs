//! Running a mode of the real binary against the fakes, as a workflow job would: a clean
//! environment, `INPUT_*` (every declared input set, empty when not given), `GITHUB_*`, and
//! temporary `GITHUB_OUTPUT` / `GITHUB_STEP_SUMMARY` files.

use super::cli::{Ran, orchestrator_std, outputs, run};
use super::fake_github::FakeGitHub;
use serde_json::Value;

pub const TOKEN: &str = "test-token";

/// A finished job: what it printed, its exit code, its outputs and summary.
pub struct Job {
    pub ran: Ran,
    pub outputs: Vec<(String, String)>,
    pub summary: String,
}

impl Job {
    pub fn output(&self, name: &str) -> &str {
        self.outputs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "no output {name}: {:?}\nstderr: {}",
                    self.outputs, self.ran.stderr
                )
            })
    }

    pub fn matrix(&self) -> Vec<Value> {
        let m: Value = serde_json::from_str(self.output("matrix")).unwrap();
        m["include"].as_array().unwrap().clone()
    }
}

/// The job's command, not yet run, and the folder holding its runner files.
pub fn command(
    fake: &FakeGitHub,
    mode: &str,
    extra: &[(&str, &str)],
) -> (std::process::Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = orchestrator_std();
    cmd.envs(fake.env())
        .env("INPUT_MODE", mode)
        .env("INPUT_GITHUB_TOKEN", TOKEN);
    for input in [
        "PARENT_ISSUE",
        "PARALLELISM_LEVEL",
        "WORKER_ISSUE",
        "LLM_BASE_URL",
        "LLM_MODEL",
        "LLM_API_KEY",
        "BASE_BRANCH",
        "DRY_RUN",
        "INTEGRATE",
    ] {
        cmd.env(format!("INPUT_{input}"), "");
    }
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", dir.path().join("output"))
        .env("GITHUB_STEP_SUMMARY", dir.path().join("summary"))
        .env("PARALLEL_ORCHESTRATOR_WRITE_INTERVAL_MS", "0")
        .env("PARALLEL_ORCHESTRATOR_WAIT_SCALE", "0.01")
        .env("PARALLEL_ORCHESTRATOR_LLM_WAIT_CAP_MS", "20");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    (cmd, dir)
}

pub fn job(fake: &FakeGitHub, mode: &str, extra: &[(&str, &str)]) -> Job {
    let (cmd, dir) = command(fake, mode, extra);
    let ran = run(&mut assert_cmd::Command::from_std(cmd));
    let outputs = outputs(&std::fs::read_to_string(dir.path().join("output")).unwrap_or_default());
    let summary = std::fs::read_to_string(dir.path().join("summary")).unwrap_or_default();
    Job {
        ran,
        outputs,
        summary,
    }
}
