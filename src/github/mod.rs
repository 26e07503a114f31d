//! The GitHub REST layer: octocrab for transport (base URL, auth, TLS, timeouts), and around
//! it what real GitHub needs under load — rate-limit waits, bounded retries, pacing of writes,
//! `Link` pagination, request counting, one readable log line per wait.
//!
//! REST only, so it works on GitHub Enterprise Server and with a job's `GITHUB_TOKEN`.

pub mod models;
pub mod retry;

use crate::secret::Secret;
use http::{HeaderMap, Method};
use models::*;
use retry::{Answer, Attempts, Outcome, RetryPolicy};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, warn};

/// 60 s / 80: GitHub allows 80 content-creating requests a minute per token.
pub const DEFAULT_WRITE_INTERVAL: Duration = Duration::from_millis(750);

#[derive(Debug, Clone)]
pub struct Config {
    /// `GITHUB_API_URL`: `https://api.github.com`, or `https://HOST/api/v3` on GHES.
    pub api_url: String,
    pub token: Secret,
    pub owner: String,
    pub repo: String,
    pub retry: RetryPolicy,
    /// Least time between two writes.
    pub write_interval: Duration,
}

impl Config {
    /// Tuning from the environment, for GHES instances with other limits (and for tests):
    /// `PARALLEL_ORCHESTRATOR_WRITE_INTERVAL_MS` and `PARALLEL_ORCHESTRATOR_WAIT_SCALE`
    /// (a factor on every retry wait).
    pub fn tuned_from_env(mut self) -> Self {
        if let Some(ms) = std::env::var("PARALLEL_ORCHESTRATOR_WRITE_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            self.write_interval = Duration::from_millis(ms);
        }
        if let Some(f) = std::env::var("PARALLEL_ORCHESTRATOR_WAIT_SCALE")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|f| *f >= 0.0)
        {
            self.retry = self.retry.clone().scaled(f);
        }
        self
    }
}

/// Why a request failed, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    /// 422: GitHub's validation failed (often: it exists already).
    Validation,
    Conflict,
    Unauthorized,
    Forbidden,
    RateLimited,
    Unavailable,
    /// A non-idempotent write may or may not have been applied.
    Ambiguous,
    Gone,
    Decode,
    Other,
}

#[derive(Debug, Clone)]
pub struct GitHubError {
    pub kind: ErrorKind,
    pub method: Method,
    pub path: String,
    pub status: Option<u16>,
    pub message: String,
    /// The `errors` array of a 422, as GitHub sent it.
    pub errors: Vec<Value>,
}

impl GitHubError {
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }

    /// Whether a 422's details mention `needle` (e.g. `already_exists`, `already exists`).
    pub fn mentions(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.message.to_ascii_lowercase().contains(&needle)
            || self
                .errors
                .iter()
                .any(|e| e.to_string().to_ascii_lowercase().contains(&needle))
    }

    fn hint(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::Unauthorized => Some(
                "the token was refused: check `github_token` (or GITHUB_TOKEN) and that it has not expired",
            ),
            ErrorKind::Forbidden => Some(
                "the token lacks a permission: give the job `permissions:` issues: write, pull-requests: write, contents: write (and actions: write for aggregate)",
            ),
            ErrorKind::Gone => Some("issues may be disabled in this repository's settings"),
            _ => None,
        }
    }
}

impl fmt::Display for GitHubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.method, self.path)?;
        if let Some(s) = self.status {
            write!(f, "GitHub answered {s}: ")?;
        }
        f.write_str(&self.message)?;
        if !self.errors.is_empty() {
            let details: Vec<String> = self.errors.iter().map(Value::to_string).collect();
            write!(f, " ({})", details.join("; "))?;
        }
        if let Some(h) = self.hint() {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GitHubError {}

pub type Result<T, E = GitHubError> = std::result::Result<T, E>;

/// Requests made so far, for the budget and the notes.
#[derive(Debug, Default)]
pub struct Counters {
    pub reads: AtomicUsize,
    pub writes: AtomicUsize,
}

impl Counters {
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }
}

/// A raw answer.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

pub struct GitHub {
    octo: octocrab::Octocrab,
    owner: String,
    repo: String,
    retry: RetryPolicy,
    write_interval: Duration,
    last_write: Mutex<Option<Instant>>,
    pub counters: Counters,
}

impl GitHub {
    pub fn new(config: Config) -> anyhow::Result<GitHub> {
        use anyhow::Context;
        let base = config.api_url.trim_end_matches('/').to_string();
        let octo = octocrab::OctocrabBuilder::new()
            .base_uri(base.as_str())
            .with_context(|| format!("GITHUB_API_URL `{base}` is not a URL"))?
            .personal_token(config.token.expose().to_string())
            // Retries are decided in `retry` (see there why not octocrab's middleware).
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(15)))
            .set_read_timeout(Some(Duration::from_secs(60)))
            .add_header(
                http::header::ACCEPT,
                "application/vnd.github+json".to_string(),
            )
            .add_header(
                http::HeaderName::from_static("x-github-api-version"),
                "2022-11-28".to_string(),
            )
            .build()
            .context("cannot build the GitHub client")?;
        Ok(GitHub {
            octo,
            owner: config.owner,
            repo: config.repo,
            retry: config.retry,
            write_interval: config.write_interval,
            last_write: Mutex::new(None),
            counters: Counters::default(),
        })
    }

    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    /// The least time between two writes.
    pub fn write_interval(&self) -> Duration {
        self.write_interval
    }

    /// The back-off before trying again after an ambiguous write (the `n`th time).
    pub async fn pause_after_failure(&self, n: u32) {
        let wait = self
            .retry
            .server_backoff
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)));
        tokio::time::sleep(wait).await;
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    /// Keeps writes at least `write_interval` apart (GitHub: make writes serially, with a pause).
    async fn pace(&self) {
        let mut last = self.last_write.lock().await;
        if let Some(t) = *last {
            let due = t + self.write_interval;
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        *last = Some(Instant::now());
    }

    /// Sends one request with retries; returns the final answer or a typed error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Reply> {
        let mut attempts = Attempts::default();
        let write = method != Method::GET;
        loop {
            if write {
                self.pace().await;
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.reads.fetch_add(1, Ordering::Relaxed);
            }
            debug!("{method} {path}");
            let result = self.transport(&method, path, body).await;
            let (reply, answer_message) = match &result {
                Ok(r) => (Some(r), message_of(&r.body)),
                Err(_) => (None, None),
            };
            let header = |name: &str| {
                reply
                    .and_then(|r| r.headers.get(name))
                    .and_then(|v| v.to_str().ok())
            };
            let answer = Answer {
                status: reply.map(|r| r.status),
                retry_after: header("retry-after"),
                ratelimit_remaining: header("x-ratelimit-remaining"),
                ratelimit_reset: header("x-ratelimit-reset"),
                message: answer_message.as_deref(),
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let outcome = retry::decide(&answer, idempotent, attempts, &self.retry, now);
            let fail = |kind: ErrorKind, message: String| GitHubError {
                kind,
                method: method.clone(),
                path: path.to_string(),
                status: answer.status,
                message,
                errors: Vec::new(),
            };
            match outcome {
                Outcome::Final => {
                    return match result {
                        Ok(reply) => check_status(&method, path, reply),
                        Err(e) => Err(fail(ErrorKind::Unavailable, e)),
                    };
                }
                Outcome::Retry { after, reason } => {
                    warn!(
                        "{reason} on {method} {path}: waiting {}, then retrying",
                        human_duration(after)
                    );
                    if matches!(answer.status, Some(403 | 429)) {
                        attempts.secondary_hits += 1;
                    } else {
                        attempts.server_failures += 1;
                    }
                    attempts.waited += after;
                    tokio::time::sleep(after).await;
                }
                Outcome::GiveUpRateLimited { reason } => {
                    return Err(fail(ErrorKind::RateLimited, reason));
                }
                Outcome::GiveUpUnavailable { reason } => {
                    return Err(fail(ErrorKind::Unavailable, reason));
                }
                Outcome::Ambiguous { reason } => {
                    let message = match answer.status {
                        // The status is printed with the error already.
                        Some(_) => "the write may or may not have been applied".to_string(),
                        None => format!("{reason}; the write may or may not have been applied"),
                    };
                    return Err(fail(ErrorKind::Ambiguous, message));
                }
            }
        }
    }

    /// One HTTP exchange through octocrab. `Err` only when no answer came at all.
    async fn transport(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Reply, String> {
        let response = match *method {
            Method::GET => self.octo._get(path).await,
            Method::POST => self.octo._post(path, body).await,
            Method::PATCH => self.octo._patch(path, body).await,
            Method::PUT => self.octo._put(path, body).await,
            Method::DELETE => self.octo._delete(path, body).await,
            _ => unreachable!("only the methods above are used"),
        }
        .map_err(|e| transport_error_text(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = self
            .octo
            .body_to_string(response)
            .await
            .map_err(|e| format!("the answer was cut off: {}", transport_error_text(&e)))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let reply = self.send(Method::GET, path, None, true).await?;
        decode(&Method::GET, path, &reply.body)
    }

    async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
        idempotent: bool,
    ) -> Result<T> {
        let body = serde_json::to_value(body).expect("request bodies serialize");
        let reply = self
            .send(method.clone(), path, Some(&body), idempotent)
            .await?;
        if reply.body.trim().is_empty() {
            return decode(&method, path, "null");
        }
        decode(&method, path, &reply.body)
    }

    /// Every item of a list, following `Link: rel="next"` (100 a page).
    async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        self.list_while(path, |_| true).await
    }

    /// Like [`GitHub::list`], but stops after the first page for which `more` says no.
    async fn list_while<T: DeserializeOwned>(
        &self,
        path: &str,
        more: impl Fn(&[T]) -> bool,
    ) -> Result<Vec<T>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next = Some(format!("{path}{sep}per_page=100"));
        let mut all = Vec::new();
        while let Some(url) = next.take() {
            let reply = self.send(Method::GET, &url, None, true).await?;
            let page: Vec<T> = decode(&Method::GET, &url, &reply.body)?;
            if more(&page) {
                next = reply
                    .headers
                    .get(http::header::LINK)
                    .and_then(|v| v.to_str().ok())
                    .and_then(next_link);
            }
            all.extend(page);
        }
        Ok(all)
    }

    // ---- repository --------------------------------------------------------------------

    pub async fn repository(&self) -> Result<Repository> {
        self.get(&self.repo_path("")).await
    }

    // ---- issues ------------------------------------------------------------------------

    pub async fn issue(&self, number: u64) -> Result<Issue> {
        self.get(&self.repo_path(&format!("/issues/{number}")))
            .await
    }

    /// Issues (not pull requests) carrying every label of `labels`, open and closed.
    pub async fn issues_with_labels(&self, labels: &[&str]) -> Result<Vec<Issue>> {
        let labels = labels
            .iter()
            .map(|l| encode_query(l))
            .collect::<Vec<_>>()
            .join(",");
        let items: Vec<Issue> = self
            .list(&self.repo_path(&format!("/issues?state=all&labels={labels}")))
            .await?;
        Ok(items
            .into_iter()
            .filter(|i| i.pull_request.is_none())
            .collect())
    }

    /// Creates an issue with its labels in the same call. Not idempotent: a failure without a
    /// clear answer comes back as [`ErrorKind::Ambiguous`] for the caller to check.
    pub async fn create_issue(&self, title: &str, body: &str, labels: &[String]) -> Result<Issue> {
        let req = json!({"title": title, "body": body, "labels": labels});
        self.write(Method::POST, &self.repo_path("/issues"), &req, false)
            .await
    }

    pub async fn update_issue_body(&self, number: u64, body: &str) -> Result<Issue> {
        let req = json!({"body": body});
        self.write(
            Method::PATCH,
            &self.repo_path(&format!("/issues/{number}")),
            &req,
            true,
        )
        .await
    }

    /// Replaces all labels of an issue in one call.
    pub async fn set_labels(&self, number: u64, labels: &[String]) -> Result<Vec<Label>> {
        let req = json!({"labels": labels});
        self.write(
            Method::PUT,
            &self.repo_path(&format!("/issues/{number}/labels")),
            &req,
            true,
        )
        .await
    }

    // ---- comments ----------------------------------------------------------------------

    pub async fn comments(&self, number: u64) -> Result<Vec<Comment>> {
        self.list(&self.repo_path(&format!("/issues/{number}/comments")))
            .await
    }

    pub async fn create_comment(&self, number: u64, body: &str) -> Result<Comment> {
        let req = json!({"body": body});
        self.write(
            Method::POST,
            &self.repo_path(&format!("/issues/{number}/comments")),
            &req,
            false,
        )
        .await
    }

    pub async fn update_comment(&self, id: u64, body: &str) -> Result<Comment> {
        let req = json!({"body": body});
        self.write(
            Method::PATCH,
            &self.repo_path(&format!("/issues/comments/{id}")),
            &req,
            true,
        )
        .await
    }

    // ---- labels ------------------------------------------------------------------------

    pub async fn labels(&self) -> Result<Vec<Label>> {
        self.list(&self.repo_path("/labels")).await
    }

    /// Creates a label; one that exists already (422 `already_exists`) is fine.
    pub async fn ensure_label(&self, name: &str, color: &str, description: &str) -> Result<()> {
        let req = json!({"name": name, "color": color, "description": description});
        match self
            .write::<Value>(Method::POST, &self.repo_path("/labels"), &req, true)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is(ErrorKind::Validation) && e.mentions("already_exists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    // ---- sub-issues --------------------------------------------------------------------

    pub async fn sub_issues(&self, parent: u64) -> Result<Vec<Issue>> {
        self.list(&self.repo_path(&format!("/issues/{parent}/sub_issues")))
            .await
    }

    /// Links `child_id` (the issue's id, not its number) under `parent`.
    pub async fn add_sub_issue(&self, parent: u64, child_id: u64) -> Result<()> {
        let req = json!({"sub_issue_id": child_id});
        self.write::<Value>(
            Method::POST,
            &self.repo_path(&format!("/issues/{parent}/sub_issues")),
            &req,
            true,
        )
        .await
        .map(|_| ())
    }
}

impl GitHub {
    // ---- git data ----------------------------------------------------------------------

    /// The commit a branch points at.
    pub async fn branch_head(&self, branch: &str) -> Result<String> {
        let r: GitRef = self
            .get(&self.repo_path(&format!("/git/ref/heads/{}", encode_path(branch))))
            .await?;
        Ok(r.object.sha)
    }

    /// Every path of a tree (recursive). `truncated` is true for very large repositories.
    pub async fn tree(&self, sha: &str) -> Result<GitTree> {
        self.get(&self.repo_path(&format!("/git/trees/{sha}?recursive=1")))
            .await
    }

    /// A text file's content on `git_ref`, `None` when it does not exist.
    pub async fn file_text(&self, path: &str, git_ref: &str) -> Result<Option<String>> {
        let url = self.repo_path(&format!(
            "/contents/{}?ref={}",
            encode_path(path),
            encode_query(git_ref)
        ));
        match self.get::<Content>(&url).await {
            Ok(c) => Ok(c.text()),
            Err(e) if e.is(ErrorKind::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One tree with every file's content inline (GitHub writes the blobs), on `base_tree`.
    pub async fn create_tree(&self, base_tree: &str, files: &[(String, String)]) -> Result<String> {
        let tree: Vec<Value> = files
            .iter()
            .map(|(path, content)| json!({"path": path, "mode": "100644", "type": "blob", "content": content}))
            .collect();
        let req = json!({"base_tree": base_tree, "tree": tree});
        // Content-addressed: sending it twice makes the same tree.
        let t: GitTree = self
            .write(Method::POST, &self.repo_path("/git/trees"), &req, true)
            .await?;
        Ok(t.sha)
    }

    pub async fn create_commit(
        &self,
        message: &str,
        tree: &str,
        parents: &[String],
    ) -> Result<String> {
        let req = json!({"message": message, "tree": tree, "parents": parents});
        let c: GitCommit = self
            .write(Method::POST, &self.repo_path("/git/commits"), &req, true)
            .await?;
        Ok(c.sha)
    }

    /// Points `branch` at `sha`: creates the branch, or moves it (forced) when it exists.
    pub async fn set_branch(&self, branch: &str, sha: &str) -> Result<()> {
        let req = json!({"ref": format!("refs/heads/{branch}"), "sha": sha});
        match self
            .write::<Value>(Method::POST, &self.repo_path("/git/refs"), &req, true)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is(ErrorKind::Validation) && e.mentions("already exists") => {
                let req = json!({"sha": sha, "force": true});
                self.write::<Value>(
                    Method::PATCH,
                    &self.repo_path(&format!("/git/refs/heads/{}", encode_path(branch))),
                    &req,
                    true,
                )
                .await
                .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    // ---- pull requests -----------------------------------------------------------------

    /// Pull requests from `branch` of this repository (any state).
    pub async fn pulls_from(&self, branch: &str) -> Result<Vec<PullRequest>> {
        let head = encode_query(&format!("{}:{branch}", self.owner));
        self.list(&self.repo_path(&format!("/pulls?state=all&head={head}")))
            .await
    }

    /// Pull requests (any state) created at or after `since` (RFC 3339), newest first: pages
    /// are read only until they reach older ones, so a busy repository costs one or two pages.
    pub async fn pulls_created_since(&self, since: &str) -> Result<Vec<PullRequest>> {
        let older = |p: &PullRequest| p.created_at.as_deref().is_some_and(|c| c < since);
        let pulls: Vec<PullRequest> = self
            .list_while(
                &self.repo_path("/pulls?state=all&sort=created&direction=desc"),
                |page: &[PullRequest]| !page.iter().any(older),
            )
            .await?;
        Ok(pulls.into_iter().filter(|p| !older(p)).collect())
    }

    /// Opens a pull request; when one is open for the same head and base already (422), that
    /// one is returned, so a re-run never opens a second.
    pub async fn open_pull(
        &self,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<PullRequest> {
        let req = json!({"title": title, "head": head, "base": base, "body": body});
        match self
            .write::<PullRequest>(Method::POST, &self.repo_path("/pulls"), &req, true)
            .await
        {
            Ok(pr) => Ok(pr),
            Err(e) if e.is(ErrorKind::Validation) && e.mentions("already exists") => {
                let existing = self.pulls_from(head).await?;
                match existing
                    .into_iter()
                    .find(|p| p.state == "open" && p.base.r#ref == base)
                {
                    Some(pr) => self.update_pull(pr.number, title, body).await,
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn update_pull(&self, number: u64, title: &str, body: &str) -> Result<PullRequest> {
        let req = json!({"title": title, "body": body});
        self.write(
            Method::PATCH,
            &self.repo_path(&format!("/pulls/{number}")),
            &req,
            true,
        )
        .await
    }

    /// Merges `head` into the branch `base`: `Merged`, `Nothing` to merge, or `Conflict`.
    pub async fn merge(&self, base: &str, head: &str, message: &str) -> Result<MergeOutcome> {
        let req = json!({"base": base, "head": head, "commit_message": message});
        let path = self.repo_path("/merges");
        let reply = self.send(Method::POST, &path, Some(&req), true).await;
        match reply {
            Ok(r) if r.status == 204 => Ok(MergeOutcome::Nothing),
            Ok(r) => {
                let c: GitCommitRef = decode(&Method::POST, &path, &r.body)?;
                Ok(MergeOutcome::Merged(c.sha))
            }
            Err(e) if e.is(ErrorKind::Conflict) => Ok(MergeOutcome::Conflict),
            Err(e) => Err(e),
        }
    }

    // ---- actions -----------------------------------------------------------------------

    /// Starts a workflow run (`workflow` is the file name, e.g. `parallel.yml`, or its id).
    /// Not idempotent: a lost answer is reported as ambiguous, never sent twice.
    pub async fn dispatch_workflow(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &Value,
    ) -> Result<()> {
        let req = json!({"ref": git_ref, "inputs": inputs});
        self.send(
            Method::POST,
            &self.repo_path(&format!(
                "/actions/workflows/{}/dispatches",
                encode_path(workflow)
            )),
            Some(&req),
            false,
        )
        .await
        .map(|_| ())
    }
}

/// What `POST /merges` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    Merged(String),
    Nothing,
    Conflict,
}

/// Percent-encodes each segment of a path, keeping the `/` between them.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_query)
        .collect::<Vec<_>>()
        .join("/")
}

fn check_status(method: &Method, path: &str, reply: Reply) -> Result<Reply> {
    if (200..300).contains(&reply.status) {
        return Ok(reply);
    }
    let parsed: Option<Value> = serde_json::from_str(&reply.body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {}", reply.status));
    let errors = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kind = match reply.status {
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        410 => ErrorKind::Gone,
        422 => ErrorKind::Validation,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    };
    Err(GitHubError {
        kind,
        method: method.clone(),
        path: path.to_string(),
        status: Some(reply.status),
        message,
        errors,
    })
}

fn decode<T: DeserializeOwned>(method: &Method, path: &str, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|e| GitHubError {
        kind: ErrorKind::Decode,
        method: method.clone(),
        path: path.to_string(),
        status: None,
        message: format!("unexpected answer from GitHub ({e})"),
        errors: Vec::new(),
    })
}

fn message_of(body: &str) -> Option<String> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("message")?
        .as_str()
        .map(str::to_string)
}

fn transport_error_text(e: &octocrab::Error) -> String {
    // octocrab's Display of transport errors is terse; the source chain says what happened.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// Percent-encodes a query value (labels hold `:` and may hold spaces).
pub fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_finds_rel_next_among_others() {
        let h = r#"<https://api.github.com/repositories/1/issues?page=2&per_page=100>; rel="next", <https://api.github.com/repositories/1/issues?page=5&per_page=100>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2&per_page=100")
        );
        assert_eq!(
            next_link(r#"<https://x/y?page=1>; rel="prev", <https://x/y?page=1>; rel="first""#),
            None
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query("parent:12"), "parent%3A12");
        assert_eq!(encode_query("good first issue"), "good%20first%20issue");
    }

    #[test]
    fn errors_name_the_request_and_give_a_hint() {
        let e = check_status(
            &Method::POST,
            "/repos/o/r/issues",
            Reply {
                status: 403,
                headers: HeaderMap::new(),
                body: r#"{"message":"Resource not accessible by integration"}"#.into(),
            },
        )
        .err()
        .unwrap();
        assert_eq!(e.kind, ErrorKind::Forbidden);
        let text = e.to_string();
        assert!(text.starts_with("POST /repos/o/r/issues: GitHub answered 403: Resource not accessible by integration"), "{text}");
        assert!(text.contains("permissions:"), "{text}");
    }

    #[test]
    fn validation_errors_keep_their_details() {
        let e = check_status(
            &Method::POST,
            "/repos/o/r/labels",
            Reply {
                status: 422,
                headers: HeaderMap::new(),
                body: r#"{"message":"Validation Failed","errors":[{"resource":"Label","code":"already_exists","field":"name"}]}"#.into(),
            },
        )
        .err()
        .unwrap();
        assert!(e.is(ErrorKind::Validation));
        assert!(e.mentions("already_exists"));
        assert!(!e.mentions("missing_field"));
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_paced() {
        let gh = GitHub::new(Config {
            api_url: "http://127.0.0.1:9".into(),
            token: Secret::new("t"),
            owner: "o".into(),
            repo: "r".into(),
            retry: RetryPolicy::default(),
            write_interval: Duration::from_millis(750),
        })
        .unwrap();
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            gh.pace().await;
        }
        // Paused time: exactly four intervals passed, whatever the machine is doing.
        assert_eq!(start.elapsed(), Duration::from_millis(3000));
    }
}
