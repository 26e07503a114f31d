//! Running the real binary as the container runtime would: a clean environment, only the
//! variables a test gives.

use std::path::PathBuf;

/// The binary with an empty environment (no `GITHUB_*`, no `INPUT_*` from the host).
pub fn orchestrator() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("parallel-orchestrator").expect("binary is built");
    cmd.env_clear();
    cmd.current_dir(repo_root());
    cmd
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example(name: &str) -> String {
    format!("examples/{name}")
}

/// stdout, stderr and the exit code of a finished command.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut assert_cmd::Command) -> Ran {
    let out = cmd.output().expect("the binary runs");
    Ran {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// Parses a `$GITHUB_OUTPUT` file the way the runner does.
pub fn outputs(text: &str) -> Vec<(String, String)> {
    parallel_orchestrator::actions::parse_outputs(text)
}

/// The binary as a plain `std::process::Command` (for tests that spawn and kill it).
pub fn orchestrator_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("parallel-orchestrator"));
    cmd.env_clear();
    cmd.current_dir(repo_root());
    cmd
}
