//! Runs shared/github-api/validate.py (strict: no --lenient-required) over a recording.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What the validator said about a recording.
#[derive(Clone, Debug, Default)]
pub struct OpenApiReport {
    /// the recording that was checked
    pub recording: PathBuf,
    /// the validator's whole output
    pub output: String,
    /// its last line, `N passed, M failed`
    pub summary: String,
    /// FAIL lines that count as failures
    pub failures: Vec<String>,
    /// FAIL lines tolerated as known gaps of the description (see [`is_spec_gap`])
    pub spec_gaps: Vec<String>,
}

impl OpenApiReport {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

pub fn validator_path() -> PathBuf {
    match std::env::var_os("GITHUB_OPENAPI_VALIDATOR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/github-api/validate.py"),
    }
}

const INSTALL_HINT: &str = "pip install -r ../shared/github-api/requirements.txt";

/// A failure GitHub's published description cannot describe, tolerated unless strict:
/// * a dropped connection (no status at all: an injected fault);
/// * an error status (>= 400) the operation does not list: GitHub answers 401/403/404/429/5xx
///   on any endpoint, the description lists them only here and there;
/// * a JSON body on an error status the description lists without a body (POST /merges 404
///   and 409, DELETE /git/refs 422): GitHub does send `{"message": ...}` there.
///
/// Everything else (request parameters and bodies, every 2xx body, the body of a described
/// error status) stays strict.
pub fn is_spec_gap(status: Option<u64>, problem: &str) -> bool {
    match status {
        None => problem.contains("status not described"),
        Some(s) if s >= 400 => {
            problem.contains("status not described")
                || problem.contains("no response body described, but one was returned")
        }
        _ => false,
    }
}

pub fn check(recording: &Path, tolerate_spec_gaps: bool) -> OpenApiReport {
    let validator = validator_path();
    if !validator.is_file() {
        panic!(
            "fake_github: the OpenAPI validator is missing at {} (set GITHUB_OPENAPI_VALIDATOR to its path)",
            validator.display()
        );
    }
    let deps = Command::new("python3")
        .args(["-c", "import jsonschema, referencing"])
        .output();
    match deps {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "fake_github: python3 lacks the validator's modules ({}). Install them: {INSTALL_HINT}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "fake_github: python3 is not available ({e}). Install python3, then: {INSTALL_HINT}"
        ),
    }
    let mut report = OpenApiReport {
        recording: recording.to_path_buf(),
        ..Default::default()
    };
    let text = std::fs::read_to_string(recording).unwrap_or_default();
    if text.trim().is_empty() {
        report.summary = "0 passed, 0 failed".into();
        return report;
    }
    let lines: Vec<&str> = text.lines().collect();
    let out = Command::new("python3")
        .arg(&validator)
        .arg(recording)
        .output()
        .unwrap_or_else(|e| panic!("fake_github: could not run {}: {e}", validator.display()));
    report.output = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code();
    if code != Some(0) && code != Some(1) {
        panic!(
            "fake_github: the validator failed to run (exit {code:?}):\n{}{}",
            report.output,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    report.summary = report.output.lines().last().unwrap_or("").to_string();
    for l in report
        .output
        .lines()
        .filter(|l| l.starts_with("FAIL line "))
    {
        let n: usize = l["FAIL line ".len()..]
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let status = lines
            .get(n.wrapping_sub(1))
            .and_then(|x| serde_json::from_str::<Value>(x).ok())
            .and_then(|v| v.get("status").and_then(Value::as_u64));
        if tolerate_spec_gaps && is_spec_gap(status, l) {
            report.spec_gaps.push(l.to_string());
        } else {
            report.failures.push(l.to_string());
        }
    }
    report
}
