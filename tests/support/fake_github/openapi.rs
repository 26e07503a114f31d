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

/// `GITHUB_OPENAPI_VALIDATOR`, else the workplace's `../shared/github-api/validate.py`, else the
/// copy vendored in `tests/github-api/` (for plain clones of the repository).
pub fn validator_path() -> PathBuf {
    if let Some(p) = std::env::var_os("GITHUB_OPENAPI_VALIDATOR").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/github-api/validate.py");
    if shared.is_file() {
        shared
    } else {
        root.join("tests/github-api/validate.py")
    }
}

const INSTALL_HINT: &str = "pip install -r tests/github-api/requirements.txt";

/// A failure tolerated unless strict, and only these:
/// * an exchange the test injected as a fault (tagged `fault` in the recording: a secondary
///   rate limit, a 502, a dropped connection…): GitHub sends them on any endpoint, but its
///   description lists 429 and 5xx almost nowhere, and a dropped connection has no status;
/// * what real GitHub answers where its description says otherwise: the `{"message": …}` body
///   of POST /merges 404 and 409 and of DELETE /git/refs 422 (listed without a body), and the
///   422 of a workflow dispatch (not listed at all).
///
/// Everything else the fake answers, errors included, must match the description exactly.
pub fn is_spec_gap(exchange: &Value, problem: &str) -> bool {
    if exchange.get("fault").is_some_and(|f| !f.is_null()) {
        return true;
    }
    let method = exchange
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_uppercase();
    let path = exchange
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let status = exchange.get("status").and_then(Value::as_u64);
    let body_gap = problem.contains("no response body described, but one was returned");
    let status_gap = problem.contains("status not described");
    match (method.as_str(), status) {
        ("POST", Some(404 | 409)) if path.ends_with("/merges") => body_gap,
        ("DELETE", Some(422)) if path.contains("/git/refs/") => body_gap,
        // "Workflow does not have 'workflow_dispatch' trigger", "Unexpected inputs provided".
        ("POST", Some(422)) if path.ends_with("/dispatches") => status_gap,
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
        let exchange = lines
            .get(n.wrapping_sub(1))
            .and_then(|x| serde_json::from_str::<Value>(x).ok())
            .unwrap_or(Value::Null);
        if tolerate_spec_gaps && is_spec_gap(&exchange, l) {
            report.spec_gaps.push(l.to_string());
        } else {
            report.failures.push(l.to_string());
        }
    }
    report
}
