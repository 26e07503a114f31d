//! The fake's state: one repository with issues, labels, comments, a git object store,
//! refs, pull requests, merges and workflow dispatches; plus the fault switches and the
//! request log. Core operations live here so that the HTTP handlers and the seeding
//! helpers of the test handle share them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::git::{Commit, FlatTree, GitStore, MODE_FILE, Signature};
use super::render::ApiError;
use super::util::now_secs;
use super::{Fault, RequestRecord};

pub const ACTOR_LOGIN: &str = "github-actions[bot]";
pub const ACTOR_ID: u64 = 41898282;
pub const ACTOR_EMAIL: &str = "41898282+github-actions[bot]@users.noreply.github.com";
pub const MAX_SUB_ISSUES: usize = 100;
pub const MAX_BODY_CHARS: usize = 65536;
pub const MAX_TITLE_CHARS: usize = 256;

#[derive(Clone, Debug)]
pub struct RepoConfig {
    pub owner: String,
    pub name: String,
    pub default_branch: String,
    pub id: u64,
    pub owner_id: u64,
    pub has_issues: bool,
    pub html_base: String,
    pub required_token: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Label {
    pub id: u64,
    pub name: String,
    pub color: String,
    pub description: Option<String>,
    pub default: bool,
}

#[derive(Clone, Debug)]
pub struct Issue {
    pub number: u64,
    pub id: u64,
    pub title: String,
    pub body: Option<String>,
    pub label_ids: Vec<u64>,
    pub open: bool,
    pub state_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub closed_by: Option<String>,
    pub user: String,
    pub comments: u32,
    pub parent: Option<u64>,
    pub sub_issues: Vec<u64>,
    pub is_pull: bool,
    pub assignees: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    pub user: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug)]
pub struct Pull {
    pub number: u64,
    pub id: u64,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub draft: bool,
    pub merged: bool,
    pub merged_at: Option<i64>,
    pub merge_commit_sha: Option<String>,
}

/// A merge the fake was asked for, with its outcome.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MergeRecord {
    pub base: String,
    pub head: String,
    /// "merged" (201), "noop" (204) or "conflict" (409)
    pub outcome: String,
    /// the merge commit when merged
    pub sha: Option<String>,
    pub conflicts: Vec<String>,
}

/// A `workflow_dispatch` the fake received.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Dispatch {
    /// the workflow id or file name as given in the path
    pub workflow: String,
    pub git_ref: String,
    pub inputs: Value,
}

pub struct RateLimit {
    pub limit: u64,
    pub used: u64,
    pub reset: i64,
}

pub struct State {
    pub cfg: RepoConfig,
    pub base_url: String,
    pub clock: i64,
    pub issues: BTreeMap<u64, Issue>,
    pub next_number: u64,
    pub labels: Vec<Label>,
    pub next_label_id: u64,
    pub comments: BTreeMap<u64, Comment>,
    pub next_comment_id: u64,
    pub git: GitStore,
    /// full ref name ("refs/heads/main") -> commit sha
    pub refs: BTreeMap<String, String>,
    pub pulls: BTreeMap<u64, Pull>,
    pub merges: Vec<MergeRecord>,
    pub dispatches: Vec<Dispatch>,
    pub log: Vec<RequestRecord>,
    pub faults: Vec<Fault>,
    pub latency: Duration,
    pub per_page_default: usize,
    pub rate: RateLimit,
    pub created_at: i64,
    /// (max writes, window, retry-after seconds): GitHub's secondary limit on content creation
    pub write_limit: Option<(usize, Duration, u64)>,
    /// arrival times of the writes counted against `write_limit`
    pub recent_writes: std::collections::VecDeque<std::time::Instant>,
}

pub fn issue_id_for(number: u64) -> u64 {
    // Ids are deliberately unlike numbers, so code mixing them up fails.
    2_000_000_000 + number * 1_009
}

impl State {
    pub fn new(
        cfg: RepoConfig,
        base_url: String,
        per_page_default: usize,
        rate_limit: u64,
    ) -> State {
        let now = now_secs();
        let mut st = State {
            cfg,
            base_url,
            clock: now,
            issues: BTreeMap::new(),
            next_number: 1,
            labels: Vec::new(),
            next_label_id: 6_000_000_001,
            comments: BTreeMap::new(),
            next_comment_id: 3_000_000_001,
            git: GitStore::default(),
            refs: BTreeMap::new(),
            pulls: BTreeMap::new(),
            merges: Vec::new(),
            dispatches: Vec::new(),
            log: Vec::new(),
            faults: Vec::new(),
            latency: Duration::ZERO,
            per_page_default,
            rate: RateLimit {
                limit: rate_limit,
                used: 0,
                reset: now + 3600,
            },
            created_at: now - 86400,
            write_limit: None,
            recent_writes: Default::default(),
        };
        let readme = format!("# {}\n", st.cfg.name);
        let mut files = FlatTree::new();
        files.insert(
            "README.md".into(),
            (MODE_FILE.into(), st.git.put_blob(readme.as_bytes())),
        );
        let tree = st.git.build_tree(&files);
        let sha = st.new_commit(tree, vec![], "Initial commit".into(), None);
        let branch = st.cfg.default_branch.clone();
        st.refs.insert(format!("refs/heads/{branch}"), sha);
        st
    }

    /// A non-decreasing clock (seconds) for timestamps.
    pub fn tick(&mut self) -> i64 {
        self.clock = self.clock.max(now_secs());
        self.clock
    }

    pub fn actor_signature(&mut self) -> Signature {
        let date = self.tick();
        Signature {
            name: ACTOR_LOGIN.into(),
            email: ACTOR_EMAIL.into(),
            date,
        }
    }

    pub fn new_commit(
        &mut self,
        tree: String,
        parents: Vec<String>,
        message: String,
        author: Option<Signature>,
    ) -> String {
        let author = author.unwrap_or_else(|| self.actor_signature());
        let committer = self.actor_signature();
        self.git.put_commit(Commit {
            tree,
            parents,
            message,
            author,
            committer,
        })
    }

    // ------------------------------------------------------------ refs and branches

    pub fn branch_sha(&self, branch: &str) -> Option<String> {
        self.refs.get(&format!("refs/heads/{branch}")).cloned()
    }

    /// Resolves a branch name, a full ref, a tag or a commit sha to a commit sha.
    pub fn resolve(&self, name: &str) -> Option<String> {
        if let Some(s) = self.refs.get(name) {
            return Some(s.clone());
        }
        for prefix in ["refs/heads/", "refs/tags/"] {
            if let Some(s) = self.refs.get(&format!("{prefix}{name}")) {
                return Some(s.clone());
            }
        }
        if self.git.commits.contains_key(name) {
            return Some(name.to_string());
        }
        if name.len() >= 7 {
            let hits: Vec<&String> = self
                .git
                .commits
                .keys()
                .filter(|k| k.starts_with(name))
                .collect();
            if hits.len() == 1 {
                return Some(hits[0].clone());
            }
        }
        None
    }

    /// Moves (or creates) a ref, then marks open pull requests merged whose head became
    /// reachable from their base, as GitHub does when a branch is pushed.
    pub fn set_ref(&mut self, full_ref: &str, sha: &str) {
        self.refs.insert(full_ref.to_string(), sha.to_string());
        if let Some(branch) = full_ref.strip_prefix("refs/heads/") {
            let branch = branch.to_string();
            let numbers: Vec<u64> = self.pulls.keys().copied().collect();
            for n in numbers {
                let pull = self.pulls[&n].clone();
                let open = self.issues.get(&n).is_some_and(|i| i.open);
                if pull.head_ref == branch && open {
                    self.pulls.get_mut(&n).unwrap().head_sha = sha.to_string();
                }
                if pull.base_ref == branch && open {
                    let head = self
                        .branch_sha(&pull.head_ref)
                        .unwrap_or(pull.head_sha.clone());
                    if self.git.is_ancestor(&head, sha)
                        && !self.git.is_ancestor(&head, &pull.base_sha)
                    {
                        self.mark_pull_merged(n, sha);
                    }
                }
            }
        }
    }

    pub fn mark_pull_merged(&mut self, number: u64, merge_sha: &str) {
        let now = self.tick();
        if let Some(p) = self.pulls.get_mut(&number) {
            p.merged = true;
            p.merged_at = Some(now);
            p.merge_commit_sha = Some(merge_sha.to_string());
        }
        if let Some(i) = self.issues.get_mut(&number) {
            i.open = false;
            i.closed_at = Some(now);
            i.updated_at = now;
            i.closed_by = Some(ACTOR_LOGIN.into());
        }
    }

    /// Commits `files` (path -> Some(content) to write, None to delete) on top of `branch`,
    /// creating the branch from the default branch when missing. Returns the commit sha.
    pub fn commit_files(
        &mut self,
        branch: &str,
        files: &[(String, Option<Vec<u8>>)],
        message: &str,
    ) -> String {
        let parent = self
            .branch_sha(branch)
            .or_else(|| self.branch_sha(&self.cfg.default_branch.clone()))
            .expect("default branch exists");
        let mut map = self.git.commit_files(&parent);
        for (path, content) in files {
            match content {
                Some(c) => {
                    let sha = self.git.put_blob(c);
                    map.insert(path.clone(), (MODE_FILE.into(), sha));
                }
                None => {
                    map.remove(path);
                }
            }
        }
        let tree = self.git.build_tree(&map);
        let sha = self.new_commit(tree, vec![parent], message.to_string(), None);
        self.set_ref(&format!("refs/heads/{branch}"), &sha);
        sha
    }

    /// Merges `head` (a branch or sha) into branch `base` as POST /merges does.
    pub fn merge(
        &mut self,
        base: &str,
        head: &str,
        message: Option<String>,
    ) -> Result<MergeRecord, ApiError> {
        let Some(base_sha) = self.branch_sha(base) else {
            return Err(ApiError::message(404, "Base does not exist"));
        };
        let Some(head_sha) = self.resolve(head) else {
            return Err(ApiError::message(404, "Head does not exist"));
        };
        let mut record = MergeRecord {
            base: base.to_string(),
            head: head.to_string(),
            outcome: String::new(),
            sha: None,
            conflicts: vec![],
        };
        if self.git.is_ancestor(&head_sha, &base_sha) {
            record.outcome = "noop".into();
            self.merges.push(record.clone());
            return Ok(record);
        }
        let mb = self.git.merge_base(&base_sha, &head_sha);
        let base_files = mb
            .as_deref()
            .map(|m| self.git.commit_files(m))
            .unwrap_or_default();
        let ours = self.git.commit_files(&base_sha);
        let theirs = self.git.commit_files(&head_sha);
        match GitStore::merge_trees(&base_files, &ours, &theirs) {
            Err(conflicts) => {
                record.outcome = "conflict".into();
                record.conflicts = conflicts;
                self.merges.push(record.clone());
                Err(ApiError::message(409, "Merge conflict"))
            }
            Ok(files) => {
                let tree = self.git.build_tree(&files);
                let msg = message.unwrap_or_else(|| format!("Merge {head} into {base}"));
                let sha = self.new_commit(tree, vec![base_sha, head_sha], msg, None);
                self.set_ref(&format!("refs/heads/{base}"), &sha);
                record.outcome = "merged".into();
                record.sha = Some(sha);
                self.merges.push(record.clone());
                Ok(record)
            }
        }
    }

    // ------------------------------------------------------------ labels

    pub fn label_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.labels
            .iter()
            .position(|l| l.name.to_lowercase() == lower)
    }

    pub fn label_by_id(&self, id: u64) -> Option<&Label> {
        self.labels.iter().find(|l| l.id == id)
    }

    pub fn create_label(
        &mut self,
        name: &str,
        color: Option<&str>,
        description: Option<&str>,
    ) -> Result<u64, ApiError> {
        if name.trim().is_empty() {
            return Err(ApiError::validation("Label", "missing_field", "name"));
        }
        if self.label_index(name).is_some() {
            return Err(ApiError::validation("Label", "already_exists", "name"));
        }
        let color = color.unwrap_or("ededed");
        if color.len() != 6 || !color.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::validation("Label", "invalid", "color"));
        }
        let id = self.next_label_id;
        self.next_label_id += 1;
        self.labels.push(Label {
            id,
            name: name.to_string(),
            color: color.to_lowercase(),
            description: description.map(str::to_string),
            default: false,
        });
        Ok(id)
    }

    /// The label's id, creating it (color ededed) when no label has that name.
    pub fn ensure_label(&mut self, name: &str) -> Result<u64, ApiError> {
        match self.label_index(name) {
            Some(i) => Ok(self.labels[i].id),
            None => self.create_label(name, None, None),
        }
    }

    pub fn sort_issue_labels(&mut self, number: u64) {
        let mut ids = self.issues[&number].label_ids.clone();
        ids.sort_by_key(|id| {
            self.label_by_id(*id)
                .map(|l| l.name.to_lowercase())
                .unwrap_or_default()
        });
        ids.dedup();
        self.issues.get_mut(&number).unwrap().label_ids = ids;
    }

    pub fn add_issue_labels(&mut self, number: u64, names: &[String]) -> Result<(), ApiError> {
        let mut ids = Vec::new();
        for n in names {
            ids.push(self.ensure_label(n)?);
        }
        let now = self.tick();
        let issue = self
            .issues
            .get_mut(&number)
            .ok_or_else(ApiError::not_found)?;
        for id in ids {
            if !issue.label_ids.contains(&id) {
                issue.label_ids.push(id);
            }
        }
        issue.updated_at = now;
        self.sort_issue_labels(number);
        Ok(())
    }

    pub fn set_issue_labels(&mut self, number: u64, names: &[String]) -> Result<(), ApiError> {
        if !self.issues.contains_key(&number) {
            return Err(ApiError::not_found());
        }
        let mut ids = Vec::new();
        for n in names {
            ids.push(self.ensure_label(n)?);
        }
        let now = self.tick();
        let issue = self.issues.get_mut(&number).unwrap();
        issue.label_ids = ids;
        issue.updated_at = now;
        self.sort_issue_labels(number);
        Ok(())
    }

    pub fn issue_label_names(&self, number: u64) -> Vec<String> {
        self.issues
            .get(&number)
            .map(|i| {
                i.label_ids
                    .iter()
                    .filter_map(|id| self.label_by_id(*id))
                    .map(|l| l.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    // ------------------------------------------------------------ issues

    pub fn check_text(
        resource: &str,
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<(), ApiError> {
        if let Some(t) = title {
            if t.trim().is_empty() {
                return Err(ApiError::validation(resource, "missing_field", "title"));
            }
            if t.chars().count() > MAX_TITLE_CHARS {
                return Err(ApiError::validation_custom(
                    resource,
                    "title",
                    &format!("title is too long (maximum is {MAX_TITLE_CHARS} characters)"),
                ));
            }
        }
        if let Some(b) = body
            && b.chars().count() > MAX_BODY_CHARS
        {
            return Err(ApiError::validation_custom(
                resource,
                "body",
                &format!("body is too long (maximum is {MAX_BODY_CHARS} characters)"),
            ));
        }
        Ok(())
    }

    pub fn create_issue(
        &mut self,
        title: &str,
        body: Option<&str>,
        labels: &[String],
        is_pull: bool,
    ) -> Result<u64, ApiError> {
        Self::check_text(
            if is_pull { "PullRequest" } else { "Issue" },
            Some(title),
            body,
        )?;
        let mut label_ids = Vec::new();
        for l in labels {
            label_ids.push(self.ensure_label(l)?);
        }
        let now = self.tick();
        let number = self.next_number;
        self.next_number += 1;
        self.issues.insert(
            number,
            Issue {
                number,
                id: issue_id_for(number),
                title: title.to_string(),
                body: body.map(str::to_string),
                label_ids,
                open: true,
                state_reason: None,
                created_at: now,
                updated_at: now,
                closed_at: None,
                closed_by: None,
                user: ACTOR_LOGIN.into(),
                comments: 0,
                parent: None,
                sub_issues: vec![],
                is_pull,
                assignees: vec![],
            },
        );
        self.sort_issue_labels(number);
        Ok(number)
    }

    pub fn issue_by_id(&self, id: u64) -> Option<u64> {
        self.issues.values().find(|i| i.id == id).map(|i| i.number)
    }

    /// Sets state "open"/"closed" with GitHub's state_reason rules.
    pub fn set_issue_state(&mut self, number: u64, state: &str, reason: Option<&str>) {
        let now = self.tick();
        let issue = self.issues.get_mut(&number).unwrap();
        match state {
            "closed" => {
                if issue.open {
                    issue.closed_at = Some(now);
                    issue.closed_by = Some(ACTOR_LOGIN.into());
                }
                issue.open = false;
                issue.state_reason = Some(reason.unwrap_or("completed").to_string());
            }
            _ => {
                if !issue.open {
                    issue.state_reason = Some("reopened".into());
                    issue.closed_at = None;
                    issue.closed_by = None;
                }
                if let Some(r) = reason {
                    issue.state_reason = Some(r.to_string());
                }
                issue.open = true;
            }
        }
        issue.updated_at = now;
    }

    pub fn add_sub_issue(
        &mut self,
        parent: u64,
        child: u64,
        replace_parent: bool,
    ) -> Result<(), ApiError> {
        if parent == child {
            return Err(ApiError::validation_custom(
                "Issue",
                "sub_issue_id",
                "Sub issue cannot be its own parent",
            ));
        }
        let current = self.issues[&child].parent;
        if let Some(p) = current
            && (!replace_parent || p == parent)
        {
            return Err(ApiError::validation_custom(
                "Issue",
                "sub_issue_id",
                "Sub issue may only have one parent",
            ));
        }
        if self.issues[&parent].sub_issues.len() >= MAX_SUB_ISSUES {
            return Err(ApiError::validation_custom(
                "Issue",
                "sub_issue_id",
                &format!("Parent issue cannot have more than {MAX_SUB_ISSUES} sub-issues"),
            ));
        }
        if let Some(p) = current {
            self.issues
                .get_mut(&p)
                .unwrap()
                .sub_issues
                .retain(|n| *n != child);
        }
        let now = self.tick();
        let pi = self.issues.get_mut(&parent).unwrap();
        pi.sub_issues.push(child);
        pi.updated_at = now;
        let ci = self.issues.get_mut(&child).unwrap();
        ci.parent = Some(parent);
        ci.updated_at = now;
        Ok(())
    }

    pub fn add_comment(&mut self, number: u64, body: &str) -> Result<u64, ApiError> {
        if !self.issues.contains_key(&number) {
            return Err(ApiError::not_found());
        }
        if body.trim().is_empty() {
            return Err(ApiError::validation(
                "IssueComment",
                "missing_field",
                "body",
            ));
        }
        Self::check_text("IssueComment", None, Some(body))?;
        let now = self.tick();
        let id = self.next_comment_id;
        self.next_comment_id += 1;
        self.comments.insert(
            id,
            Comment {
                id,
                issue: number,
                body: body.to_string(),
                user: ACTOR_LOGIN.into(),
                created_at: now,
                updated_at: now,
            },
        );
        let issue = self.issues.get_mut(&number).unwrap();
        issue.comments += 1;
        issue.updated_at = now;
        Ok(id)
    }
}
