//! A stateful fake of GitHub's REST API on 127.0.0.1, for the integration tests.
//!
//! ```ignore
//! let gh = FakeGitHub::builder().repo("acme", "widgets").default_branch("main").build();
//! let parent = gh.create_issue("Parent", "```json\n{...}\n```", &["parallel-execution"]);
//! gh.inject(Fault::secondary_rate_limit(1).times(2).method("POST").path("/issues"));
//! Command::new(bin).envs(gh.env()).env("INPUT_GITHUB_TOKEN", "t").status();
//! assert_eq!(gh.issues_labeled(&[&format!("parent:{parent}")]).len(), 3);
//! assert_eq!(gh.count("POST", "issues"), 5);
//! ```
//!
//! * One repository (`owner/repo` unless configured) with a default branch holding one commit
//!   (`README.md`). Issues, comments, labels, sub-issues, git data (real git object ids),
//!   branches, merges, pull requests and workflow dispatches behave as on github.com: same
//!   status codes, JSON shapes (every property the OpenAPI schemas require), pagination with
//!   `Link` headers, error bodies and rate-limit headers.
//! * Requests without `Authorization` get 401, without `User-Agent` 403 (as on github.com).
//! * Faults ([`Fault`]) are injected per request: status faults and dropped connections leave
//!   the state untouched; `delay` and `drop_after_apply` do apply the request.
//! * Every exchange is appended to `target/github-recordings/<test>-<pid>-<n>.jsonl` in the
//!   format of shared/github-api/README.md. On drop the recording is checked with the strict
//!   OpenAPI validator (see [`FakeGitHub::assert_openapi_valid`]).
//!
//! The server runs on its own thread and tokio runtime, so the handle is synchronous and
//! works from plain `#[test]`s that run the real binary as well as from `#[tokio::test]`s.

mod api;
mod git;
mod openapi;
mod render;
mod server;
mod state;
mod util;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

pub use openapi::OpenApiReport;
pub use state::{Dispatch, MergeRecord};

use server::Shared;
use state::{RepoConfig, State};

// ------------------------------------------------------------------ faults

/// What an injected fault does to a matching request.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// 403 "You have exceeded a secondary rate limit..." with `retry-after`. No state change.
    SecondaryRateLimit { retry_after: u64 },
    /// 429 with the secondary-rate-limit message and `retry-after`. No state change.
    TooManyRequests { retry_after: u64 },
    /// 502 `{"message":"Server Error"}`. No state change.
    BadGateway,
    /// 503 `{"message":"Service Unavailable",...}`. No state change.
    ServiceUnavailable,
    /// The connection is closed without an answer. No state change.
    DropConnection,
    /// 403 "API rate limit exceeded for ..." with `x-ratelimit-remaining: 0` and
    /// `x-ratelimit-reset: now + reset_in`. No state change.
    PrimaryRateLimit { reset_in: u64 },
    /// The request is applied and answered only after this delay. A client that times out
    /// meanwhile sees an error, but the write happens all the same.
    Delay(Duration),
    /// The request is applied, then the connection is closed without the answer: the
    /// create succeeded but the client saw an error.
    DropAfterApply,
}

impl FaultKind {
    /// The name used in the recording's `fault` field and in [`RequestRecord::fault`].
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::SecondaryRateLimit { .. } => "secondary_rate_limit",
            FaultKind::TooManyRequests { .. } => "too_many_requests",
            FaultKind::BadGateway => "bad_gateway",
            FaultKind::ServiceUnavailable => "service_unavailable",
            FaultKind::DropConnection => "drop_connection",
            FaultKind::PrimaryRateLimit { .. } => "primary_rate_limit",
            FaultKind::Delay(_) => "delay",
            FaultKind::DropAfterApply => "drop_after_apply",
        }
    }
}

/// A fault rule: the next `times` requests matching `method` and `path_contains` (both
/// optional) get `kind`. Rules are tried in the order they were injected.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub times: usize,
    pub method: Option<String>,
    pub path_contains: Option<String>,
}

impl Fault {
    pub fn new(kind: FaultKind) -> Fault {
        Fault {
            kind,
            times: 1,
            method: None,
            path_contains: None,
        }
    }
    pub fn secondary_rate_limit(retry_after: u64) -> Fault {
        Fault::new(FaultKind::SecondaryRateLimit { retry_after })
    }
    pub fn too_many_requests(retry_after: u64) -> Fault {
        Fault::new(FaultKind::TooManyRequests { retry_after })
    }
    pub fn bad_gateway() -> Fault {
        Fault::new(FaultKind::BadGateway)
    }
    pub fn service_unavailable() -> Fault {
        Fault::new(FaultKind::ServiceUnavailable)
    }
    pub fn drop_connection() -> Fault {
        Fault::new(FaultKind::DropConnection)
    }
    pub fn primary_rate_limit(reset_in: u64) -> Fault {
        Fault::new(FaultKind::PrimaryRateLimit { reset_in })
    }
    pub fn delay(d: Duration) -> Fault {
        Fault::new(FaultKind::Delay(d))
    }
    pub fn drop_after_apply() -> Fault {
        Fault::new(FaultKind::DropAfterApply)
    }
    /// How many matching requests get the fault (default 1).
    pub fn times(mut self, n: usize) -> Fault {
        self.times = n;
        self
    }
    /// Only requests with this method ("POST"...).
    pub fn method(mut self, m: &str) -> Fault {
        self.method = Some(m.to_uppercase());
        self
    }
    /// Only requests whose path contains this text (e.g. "/issues", "/git/refs").
    pub fn path(mut self, p: &str) -> Fault {
        self.path_contains = Some(p.to_string());
        self
    }
}

// ------------------------------------------------------------------ snapshots

/// One request the fake received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// path without host or query, as received (may be percent-encoded)
    pub path: String,
    /// raw query string ("" when none)
    pub query: String,
    /// None when the connection was dropped without an answer
    pub status: Option<u16>,
    /// the injected fault, or "unauthenticated", "no_user_agent", "primary_rate_limit"
    pub fault: Option<String>,
    /// when the request arrived, in milliseconds since the fake started
    pub at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IssueSnapshot {
    pub number: u64,
    pub id: u64,
    pub title: String,
    pub body: Option<String>,
    /// label names, sorted as GitHub shows them
    pub labels: Vec<String>,
    /// "open" or "closed"
    pub state: String,
    pub state_reason: Option<String>,
    pub is_pull_request: bool,
    /// parent issue number, when this is a sub-issue
    pub parent: Option<u64>,
    /// sub-issue numbers, in the order they were added
    pub sub_issues: Vec<u64>,
    pub comments: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommentSnapshot {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    pub user: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabelSnapshot {
    pub id: u64,
    pub name: String,
    pub color: String,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PullSnapshot {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    /// "open" or "closed"
    pub state: String,
    pub head: String,
    pub base: String,
    pub draft: bool,
    pub merged: bool,
    pub labels: Vec<String>,
}

// ------------------------------------------------------------------ builder

pub struct Builder {
    owner: String,
    repo: String,
    default_branch: String,
    per_page: usize,
    rate_limit: u64,
    has_issues: bool,
    token: Option<String>,
    html_base: String,
    validate_on_drop: bool,
}

impl Builder {
    pub fn repo(mut self, owner: &str, repo: &str) -> Builder {
        self.owner = owner.into();
        self.repo = repo.into();
        self
    }
    pub fn default_branch(mut self, b: &str) -> Builder {
        self.default_branch = b.into();
        self
    }
    /// Default `per_page` of list endpoints (GitHub: 30).
    pub fn per_page_default(mut self, n: usize) -> Builder {
        self.per_page = n.clamp(1, 100);
        self
    }
    /// Requests allowed before the primary rate limit answers 403 (default 5000).
    pub fn rate_limit(mut self, n: u64) -> Builder {
        self.rate_limit = n;
        self
    }
    /// `false`: the issues endpoints answer 410 "Issues are disabled for this repo".
    pub fn issues_enabled(mut self, yes: bool) -> Builder {
        self.has_issues = yes;
        self
    }
    /// Accept only `Authorization: Bearer|token <t>` (others get 401 "Bad credentials").
    /// Without it any Authorization header is accepted.
    pub fn token(mut self, t: &str) -> Builder {
        self.token = Some(t.into());
        self
    }
    /// Base of `html_url`s (default https://github.com).
    pub fn html_base(mut self, url: &str) -> Builder {
        self.html_base = url.trim_end_matches('/').into();
        self
    }
    /// Skip the OpenAPI check on drop (it still runs on an explicit assert).
    pub fn validate_on_drop(mut self, yes: bool) -> Builder {
        self.validate_on_drop = yes;
        self
    }

    pub fn build(self) -> FakeGitHub {
        FakeGitHub::launch(self)
    }
}

// ------------------------------------------------------------------ the handle

static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// The running fake. Dropping it stops the server and validates the recording.
pub struct FakeGitHub {
    shared: Arc<Shared>,
    url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    validated: AtomicBool,
    validate_on_drop: bool,
}

impl FakeGitHub {
    /// `owner/repo`, default branch `main`, per_page 30.
    pub fn start() -> FakeGitHub {
        FakeGitHub::builder().build()
    }

    pub fn builder() -> Builder {
        Builder {
            owner: "owner".into(),
            repo: "repo".into(),
            default_branch: "main".into(),
            per_page: 30,
            rate_limit: 5000,
            has_issues: true,
            token: None,
            html_base: "https://github.com".into(),
            validate_on_drop: true,
        }
    }

    fn launch(b: Builder) -> FakeGitHub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cfg = RepoConfig {
            owner: b.owner,
            name: b.repo,
            default_branch: b.default_branch,
            id: 700_000_001,
            owner_id: 9_000_001,
            has_issues: b.has_issues,
            html_base: b.html_base,
            required_token: b.token,
        };
        let recording_path = recording_path();
        let file = std::fs::File::create(&recording_path).unwrap_or_else(|e| {
            panic!(
                "fake_github: cannot create {}: {e}",
                recording_path.display()
            )
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(cfg, url.clone(), b.per_page, b.rate_limit)),
            recording: Mutex::new(file),
            recording_path,
            request_counter: AtomicU64::new(0),
            started: std::time::Instant::now(),
            in_flight: Default::default(),
            peak_in_flight: Default::default(),
            writes_in_flight: Default::default(),
            peak_writes_in_flight: Default::default(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-github".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake_github runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = server::serve(listener, server_shared) => {}
                        _ = rx => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .expect("spawn fake_github thread");
        FakeGitHub {
            shared,
            url,
            shutdown: Some(tx),
            thread: Some(thread),
            validated: AtomicBool::new(false),
            validate_on_drop: b.validate_on_drop,
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    // -------------------------------------------------------------- identity

    /// Base URL, e.g. `http://127.0.0.1:41234` (use as GITHUB_API_URL).
    pub fn url(&self) -> String {
        self.url.clone()
    }
    pub fn owner(&self) -> String {
        self.st().cfg.owner.clone()
    }
    pub fn repo(&self) -> String {
        self.st().cfg.name.clone()
    }
    /// `owner/repo` (use as GITHUB_REPOSITORY).
    pub fn full_name(&self) -> String {
        let st = self.st();
        format!("{}/{}", st.cfg.owner, st.cfg.name)
    }
    pub fn default_branch(&self) -> String {
        self.st().cfg.default_branch.clone()
    }
    /// GITHUB_API_URL, GITHUB_REPOSITORY and GITHUB_SERVER_URL for a child process.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("GITHUB_API_URL".into(), self.url()),
            ("GITHUB_REPOSITORY".into(), self.full_name()),
            ("GITHUB_SERVER_URL".into(), self.st().cfg.html_base.clone()),
        ]
    }
    /// Where this instance records its exchanges.
    pub fn recording_path(&self) -> PathBuf {
        self.shared.recording_path.clone()
    }

    // -------------------------------------------------------------- seeding

    /// Creates an issue (unknown labels are created) and returns its number.
    pub fn create_issue(&self, title: &str, body: &str, labels: &[&str]) -> u64 {
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        self.st()
            .create_issue(title, Some(body), &labels, false)
            .expect("seed issue")
    }

    /// The id (not the number) of an issue, as sub-issue calls need it.
    pub fn issue_id(&self, number: u64) -> u64 {
        self.st()
            .issues
            .get(&number)
            .map(|i| i.id)
            .expect("issue exists")
    }

    pub fn create_label(&self, name: &str, color: &str, description: Option<&str>) {
        self.st()
            .create_label(name, Some(color), description)
            .expect("seed label");
    }

    pub fn add_comment(&self, issue: u64, body: &str) -> u64 {
        self.st().add_comment(issue, body).expect("seed comment")
    }

    /// "open" or "closed" (state_reason as GitHub sets it).
    pub fn set_issue_state(&self, issue: u64, state: &str) {
        self.st().set_issue_state(issue, state, None);
    }

    pub fn set_issue_labels(&self, issue: u64, labels: &[&str]) {
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        self.st()
            .set_issue_labels(issue, &labels)
            .expect("issue exists");
    }

    pub fn set_issue_body(&self, issue: u64, body: &str) {
        let mut st = self.st();
        let now = st.tick();
        let i = st.issues.get_mut(&issue).expect("issue exists");
        i.body = Some(body.into());
        i.updated_at = now;
    }

    pub fn add_sub_issue(&self, parent: u64, child: u64) {
        self.st()
            .add_sub_issue(parent, child, false)
            .expect("seed sub-issue");
    }

    /// Commits files onto the default branch; returns the commit sha.
    pub fn seed_files(&self, files: &[(&str, &str)]) -> String {
        let branch = self.default_branch();
        let files: Vec<(&str, Option<&str>)> = files.iter().map(|(p, c)| (*p, Some(*c))).collect();
        self.commit_files(&branch, &files, "Seed files")
    }

    /// Commits onto `branch` (created from the default branch when missing): `Some(content)`
    /// writes a file, `None` deletes it. Returns the commit sha.
    pub fn commit_files(
        &self,
        branch: &str,
        files: &[(&str, Option<&str>)],
        message: &str,
    ) -> String {
        let files: Vec<(String, Option<Vec<u8>>)> = files
            .iter()
            .map(|(p, c)| (p.to_string(), c.map(|c| c.as_bytes().to_vec())))
            .collect();
        self.st().commit_files(branch, &files, message)
    }

    /// Creates branch `name` at the tip of `from`; returns the sha.
    pub fn create_branch(&self, name: &str, from: &str) -> String {
        let mut st = self.st();
        let sha = st.resolve(from).expect("source branch exists");
        st.set_ref(&format!("refs/heads/{name}"), &sha);
        sha
    }

    /// Opens a pull request as a user would; returns its number.
    pub fn create_pull(&self, head: &str, base: &str, title: &str, body: &str) -> u64 {
        let mut st = self.st();
        let req_body = json!({"head": head, "base": base, "title": title, "body": body});
        let path = format!("/repos/{}/{}/pulls", st.cfg.owner, st.cfg.name);
        let reply = api::dispatch(
            &mut st,
            &api::Req {
                method: "POST",
                path: &path,
                query: &[],
                body: &req_body,
            },
        );
        assert_eq!(reply.status, 201, "seed pull request: {:?}", reply.body);
        reply.body.unwrap()["number"].as_u64().unwrap()
    }

    /// Merges a pull request as a maintainer would (a merge commit on the base branch); the
    /// PR becomes closed and merged. Err with the conflicting paths on conflict.
    pub fn merge_pull(&self, number: u64) -> Result<String, Vec<String>> {
        let mut st = self.st();
        let p = st.pulls.get(&number).cloned().expect("pull exists");
        match st.merge(
            &p.base_ref,
            &p.head_ref,
            Some(format!("Merge pull request #{number}")),
        ) {
            Ok(rec) => {
                let sha = match rec.sha {
                    Some(s) => s,
                    None => st.branch_sha(&p.base_ref).unwrap(),
                };
                if !st.pulls[&number].merged {
                    st.mark_pull_merged(number, &sha);
                }
                Ok(sha)
            }
            Err(_) => Err(st
                .merges
                .last()
                .map(|m| m.conflicts.clone())
                .unwrap_or_default()),
        }
    }

    pub fn set_per_page_default(&self, n: usize) {
        self.st().per_page_default = n.clamp(1, 100);
    }

    /// Sets the primary rate limit and how much of it is used.
    pub fn set_rate_limit(&self, limit: u64, used: u64) {
        let mut st = self.st();
        st.rate.limit = limit;
        st.rate.used = used;
    }

    // -------------------------------------------------------------- faults

    /// A fixed delay before every request is handled.
    pub fn set_latency(&self, d: Duration) {
        self.st().latency = d;
    }

    /// GitHub's secondary limit on content creation, scaled down for tests: more than `max`
    /// non-GET requests within `window` answer 403 "secondary rate limit" with `retry-after`,
    /// without being applied (GitHub: 80 a minute, 500 an hour).
    pub fn limit_writes(&self, max: usize, window: Duration, retry_after: u64) {
        let mut st = self.st();
        st.write_limit = Some((max, window, retry_after));
        st.recent_writes.clear();
    }

    pub fn unlimit_writes(&self) {
        self.st().write_limit = None;
    }

    pub fn inject(&self, fault: Fault) {
        self.st().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.st().faults.clear();
    }

    /// Fault uses still pending, over all rules.
    pub fn pending_faults(&self) -> usize {
        self.st().faults.iter().map(|f| f.times).sum()
    }

    // -------------------------------------------------------------- inspection

    fn issue_snapshot(st: &State, i: &state::Issue) -> IssueSnapshot {
        IssueSnapshot {
            number: i.number,
            id: i.id,
            title: i.title.clone(),
            body: i.body.clone(),
            labels: st.issue_label_names(i.number),
            state: if i.open { "open" } else { "closed" }.into(),
            state_reason: i.state_reason.clone(),
            is_pull_request: i.is_pull,
            parent: i.parent,
            sub_issues: i.sub_issues.clone(),
            comments: i.comments as usize,
        }
    }

    /// Every issue and pull request, by number.
    pub fn issues(&self) -> Vec<IssueSnapshot> {
        let st = self.st();
        st.issues
            .values()
            .map(|i| Self::issue_snapshot(&st, i))
            .collect()
    }

    pub fn issue(&self, number: u64) -> Option<IssueSnapshot> {
        let st = self.st();
        st.issues.get(&number).map(|i| Self::issue_snapshot(&st, i))
    }

    /// Issues (not pull requests) carrying every one of these labels (case-insensitive).
    pub fn issues_labeled(&self, labels: &[&str]) -> Vec<IssueSnapshot> {
        self.issues()
            .into_iter()
            .filter(|i| !i.is_pull_request)
            .filter(|i| {
                labels
                    .iter()
                    .all(|l| i.labels.iter().any(|x| x.eq_ignore_ascii_case(l)))
            })
            .collect()
    }

    pub fn sub_issues(&self, parent: u64) -> Vec<u64> {
        self.st()
            .issues
            .get(&parent)
            .map(|i| i.sub_issues.clone())
            .unwrap_or_default()
    }

    pub fn comments(&self, issue: u64) -> Vec<CommentSnapshot> {
        self.st()
            .comments
            .values()
            .filter(|c| c.issue == issue)
            .map(|c| CommentSnapshot {
                id: c.id,
                issue: c.issue,
                body: c.body.clone(),
                user: c.user.clone(),
            })
            .collect()
    }

    pub fn labels(&self) -> Vec<LabelSnapshot> {
        self.st()
            .labels
            .iter()
            .map(|l| LabelSnapshot {
                id: l.id,
                name: l.name.clone(),
                color: l.color.clone(),
                description: l.description.clone(),
            })
            .collect()
    }

    /// Every ref ("refs/heads/main" -> sha).
    pub fn refs(&self) -> BTreeMap<String, String> {
        self.st().refs.clone()
    }

    /// Branch name -> tip sha.
    pub fn branches(&self) -> BTreeMap<String, String> {
        self.st()
            .refs
            .iter()
            .filter_map(|(r, s)| {
                r.strip_prefix("refs/heads/")
                    .map(|b| (b.to_string(), s.clone()))
            })
            .collect()
    }

    /// The files (path -> content, lossy UTF-8) of a branch, tag or commit sha.
    pub fn files(&self, git_ref: &str) -> Option<BTreeMap<String, String>> {
        let st = self.st();
        let sha = st.resolve(git_ref)?;
        Some(
            st.git
                .commit_files(&sha)
                .into_iter()
                .map(|(p, (_, blob))| {
                    (
                        p,
                        String::from_utf8_lossy(&st.git.blobs[&blob]).into_owned(),
                    )
                })
                .collect(),
        )
    }

    pub fn file(&self, git_ref: &str, path: &str) -> Option<String> {
        self.files(git_ref)?.remove(path)
    }

    /// (sha, message, parent shas) of a commit.
    pub fn commit(&self, sha: &str) -> Option<(String, String, Vec<String>)> {
        let st = self.st();
        let sha = st.resolve(sha)?;
        let c = st.git.commits.get(&sha)?;
        Some((sha.clone(), c.message.clone(), c.parents.clone()))
    }

    pub fn pulls(&self) -> Vec<PullSnapshot> {
        let st = self.st();
        st.pulls
            .values()
            .map(|p| {
                let i = &st.issues[&p.number];
                PullSnapshot {
                    number: p.number,
                    title: i.title.clone(),
                    body: i.body.clone(),
                    state: if i.open { "open" } else { "closed" }.into(),
                    head: p.head_ref.clone(),
                    base: p.base_ref.clone(),
                    draft: p.draft,
                    merged: p.merged,
                    labels: st.issue_label_names(p.number),
                }
            })
            .collect()
    }

    /// Merges requested through POST /merges (and [`FakeGitHub::merge_pull`]), in order.
    pub fn merges(&self) -> Vec<MergeRecord> {
        self.st().merges.clone()
    }

    pub fn dispatches(&self) -> Vec<Dispatch> {
        self.st().dispatches.clone()
    }

    /// Every request received, in the order handled.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.st().log.clone()
    }

    /// The most requests the fake was handling at once.
    pub fn peak_concurrency(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// The most non-GET requests the fake was handling at once (GitHub asks for serial writes).
    pub fn peak_concurrent_writes(&self) -> usize {
        self.shared.peak_writes_in_flight.load(Ordering::SeqCst)
    }

    /// Requests that were not GET (faulted ones included).
    pub fn writes(&self) -> usize {
        self.st().log.iter().filter(|r| r.method != "GET").count()
    }

    /// Requests with this method ("*" for any) whose path starts with `path_prefix`. A prefix
    /// not starting with "/repos/" or "/rate_limit" is taken relative to the repository:
    /// `count("POST", "issues")` counts POST /repos/{owner}/{repo}/issues...
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        let st = self.st();
        let prefix = if path_prefix.starts_with("/repos/") || path_prefix.starts_with("/rate_limit")
        {
            path_prefix.to_string()
        } else {
            format!(
                "/repos/{}/{}/{}",
                st.cfg.owner,
                st.cfg.name,
                path_prefix.trim_start_matches('/')
            )
        };
        st.log
            .iter()
            .filter(|r| method == "*" || r.method.eq_ignore_ascii_case(method))
            .filter(|r| r.path.starts_with(&prefix))
            .count()
    }

    /// The whole state as JSON (issues, labels, comments, branches with files, pulls, merges,
    /// dispatches), for snapshots.
    pub fn snapshot(&self) -> Value {
        let branches: BTreeMap<String, Value> = self
            .branches()
            .into_iter()
            .map(|(b, sha)| {
                (
                    b.clone(),
                    json!({"sha": sha, "files": self.files(&sha).unwrap_or_default()}),
                )
            })
            .collect();
        let comments: Vec<CommentSnapshot> = {
            let numbers: Vec<u64> = self.issues().iter().map(|i| i.number).collect();
            numbers.into_iter().flat_map(|n| self.comments(n)).collect()
        };
        json!({
            "repository": self.full_name(),
            "issues": self.issues(),
            "labels": self.labels(),
            "comments": comments,
            "branches": branches,
            "pulls": self.pulls(),
            "merges": self.merges(),
            "dispatches": self.dispatches(),
        })
    }

    // -------------------------------------------------------------- OpenAPI check

    /// Runs the strict validator over this instance's recording so far; known gaps of
    /// GitHub's description are listed apart (see `openapi::is_spec_gap`).
    pub fn openapi_report(&self) -> OpenApiReport {
        validate_recording(&self.recording_path(), true)
    }

    /// Panics with the validator's FAIL lines unless every recorded exchange matches the
    /// OpenAPI description (strict; tolerating only undescribed error statuses and error
    /// bodies, which GitHub sends whatever the description says).
    pub fn assert_openapi_valid(&self) {
        self.validated.store(true, Ordering::SeqCst);
        let r = self.openapi_report();
        if !r.spec_gaps.is_empty() {
            eprintln!(
                "fake_github: {} validator failure(s) tolerated as gaps of the description:\n{}",
                r.spec_gaps.len(),
                r.spec_gaps.join("\n")
            );
        }
        if !r.ok() {
            panic!(
                "fake_github: recorded exchanges do not match the OpenAPI description ({}):\n{}\n(recording: {})",
                r.summary,
                r.failures.join("\n"),
                r.recording.display()
            );
        }
    }

    /// Like [`FakeGitHub::assert_openapi_valid`] but nothing is tolerated.
    pub fn assert_openapi_valid_strict(&self) {
        self.validated.store(true, Ordering::SeqCst);
        let r = openapi::check(&self.recording_path(), false);
        if !r.ok() {
            panic!(
                "fake_github: strict OpenAPI check failed ({}):\n{}",
                r.summary,
                r.failures.join("\n")
            );
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.stop();
        if self.validate_on_drop
            && !self.validated.load(Ordering::SeqCst)
            && !std::thread::panicking()
        {
            self.assert_openapi_valid();
        }
    }
}

/// Removes recordings left by test processes that are no longer running (the file name
/// carries the pid), so the directory does not grow run after run. Linux only.
fn remove_stale_recordings(dir: &std::path::Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".jsonl") else {
            continue;
        };
        let mut parts = stem.rsplitn(3, '-');
        let (_, pid) = (
            parts.next(),
            parts.next().and_then(|p| p.parse::<u32>().ok()),
        );
        if let Some(pid) = pid
            && pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Runs the strict OpenAPI validator over any recording in the shared format. With
/// `tolerate_spec_gaps`, failures GitHub's description cannot avoid (undescribed error
/// statuses and error bodies, dropped connections) are listed apart instead of failing.
pub fn validate_recording(path: &std::path::Path, tolerate_spec_gaps: bool) -> OpenApiReport {
    openapi::check(path, tolerate_spec_gaps)
}

fn recording_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("github-recordings");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("fake_github: cannot create {}: {e}", dir.display()));
    static CLEANUP: std::sync::Once = std::sync::Once::new();
    CLEANUP.call_once(|| remove_stale_recordings(&dir));
    let name: String = std::thread::current()
        .name()
        .unwrap_or("main")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let n = INSTANCES.fetch_add(1, Ordering::SeqCst);
    dir.join(format!("{name}-{}-{n}.jsonl", std::process::id()))
}
