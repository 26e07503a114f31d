//! Where a run happens: the repository, the API, the token and the event, read from the
//! environment GitHub Actions sets (and that a person can set locally).

use crate::cli::GitHubArgs;
use crate::errors::BadInput;
use crate::secret::Secret;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Context {
    pub api_url: String,
    pub server_url: String,
    pub owner: String,
    pub repo: String,
    pub token: Secret,
    pub dry_run: bool,
    pub event_path: Option<PathBuf>,
    pub run_id: Option<String>,
    pub workflow_ref: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Context {
    pub fn from_env(args: &GitHubArgs) -> Result<Context, BadInput> {
        let repository = var("GITHUB_REPOSITORY").ok_or_else(|| {
            BadInput(
                "GITHUB_REPOSITORY is not set: set it to `owner/repo` (Actions sets it for you)"
                    .into(),
            )
        })?;
        let (owner, repo) = parse_repository(&repository)?;
        let token = args.github_token.clone().or_else(|| var("GITHUB_TOKEN")).ok_or_else(|| {
            BadInput(
                "no GitHub token: set the `github_token` input (the action defaults it to `github.token`) or GITHUB_TOKEN"
                    .into(),
            )
        })?;
        Ok(Context {
            api_url: var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            server_url: var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
            owner,
            repo,
            token: Secret::new(token),
            dry_run: args.dry_run,
            event_path: var("GITHUB_EVENT_PATH").map(PathBuf::from),
            run_id: var("GITHUB_RUN_ID"),
            workflow_ref: var("GITHUB_WORKFLOW_REF"),
        })
    }

    pub fn github_config(&self) -> crate::github::Config {
        crate::github::Config {
            api_url: self.api_url.clone(),
            token: self.token.clone(),
            owner: self.owner.clone(),
            repo: self.repo.clone(),
            retry: Default::default(),
            write_interval: crate::github::DEFAULT_WRITE_INTERVAL,
        }
        .tuned_from_env()
    }

    /// The parent issue: the input, else the event's issue (`issues` / `issue_comment`
    /// events) or its `inputs.parent_issue` (`workflow_dispatch`).
    pub fn parent_issue(&self, input: Option<u64>) -> Result<u64, BadInput> {
        if let Some(n) = input {
            return Ok(n);
        }
        let from_event = self
            .event_path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|event| parent_from_event(&event));
        from_event.ok_or_else(|| {
            BadInput(
                "no parent issue: pass `parent_issue` (--parent-issue), or run on an `issues` event".into(),
            )
        })
    }

    /// `https://github.com/o/r/actions/runs/123`, when known.
    pub fn run_url(&self) -> Option<String> {
        self.run_id.as_ref().map(|id| {
            format!(
                "{}/{}/{}/actions/runs/{id}",
                self.server_url, self.owner, self.repo
            )
        })
    }
}

pub fn parent_from_event(event: &Value) -> Option<u64> {
    event
        .pointer("/issue/number")
        .and_then(Value::as_u64)
        .or_else(|| {
            let v = event.pointer("/inputs/parent_issue")?;
            v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
        })
}

pub fn parse_repository(s: &str) -> Result<(String, String), BadInput> {
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match s.trim().split_once('/') {
        Some((o, r)) if ok(o) && ok(r) => Ok((o.to_string(), r.to_string())),
        _ => Err(BadInput(format!(
            "GITHUB_REPOSITORY `{s}` is not `owner/repo`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parent_comes_from_an_issues_event_or_dispatch_inputs() {
        assert_eq!(
            parent_from_event(&json!({"action": "labeled", "issue": {"number": 12}})),
            Some(12)
        );
        assert_eq!(
            parent_from_event(&json!({"inputs": {"parent_issue": "34"}})),
            Some(34)
        );
        assert_eq!(
            parent_from_event(&json!({"inputs": {"parent_issue": ""}})),
            None
        );
        assert_eq!(parent_from_event(&json!({"push": {}})), None);
    }

    #[test]
    fn repository_must_be_owner_slash_repo() {
        assert_eq!(parse_repository("o/r").unwrap(), ("o".into(), "r".into()));
        for bad in ["", "o", "o/", "/r", "o/r/x", "o r/x"] {
            assert!(parse_repository(bad).is_err(), "{bad}");
        }
    }
}
