//! `worker`: one task end to end — ask the model for the task's files, check them against the
//! output policy, commit them in one commit on `parallel/<parent>/<task-slug>` and open (or
//! update) the pull request that closes the worker issue.
//!
//! Writes per worker: `status:running`, one tree (contents inline), one commit, one ref, one
//! pull request, `status:completed`. No comment on success: the PR's `Closes #N` already shows
//! in the issue's timeline, and 100 workers share GitHub's content-creation limits.

use crate::actions::{Level as AnnotationLevel, Position, Runtime};
use crate::cli::WorkerArgs;
use crate::context::Context;
use crate::errors::BadInput;
use crate::github::models::{Issue, PullRequest};
use crate::github::{ErrorKind, GitHub};
use crate::labels;
use crate::llm::{Generation, LlmClient, LlmConfig, LlmError};
use crate::markers::{TaskMarker, defuse, fenced};
use crate::plan::{State, Task};
use crate::policy::{OutputPolicy, SafeFile};
use crate::prompt::{self, DEFAULT_REPO_BUDGET, MIN_REPO_BUDGET, PromptInput};
use crate::secret::Secret;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub const REPORT_PREFIX: &str = "<!-- parallel-orchestrator:worker ";

/// Workers redraw the parent's dashboard at most this often (aggregate always does).
pub const DASHBOARD_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// What a worker records in its pull request for aggregate: how long it took, what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub issue: u64,
    pub task: String,
    pub duration_secs: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub model: String,
    pub files: usize,
    /// The paths written, so aggregate can tell which workers touched the same files.
    #[serde(default)]
    pub paths: Vec<String>,
}

impl WorkerReport {
    pub fn encode(&self) -> String {
        let json = serde_json::to_string(self).expect("reports serialize");
        format!(
            "{REPORT_PREFIX}{} -->",
            json.replace('<', "\\u003c").replace('>', "\\u003e")
        )
    }

    pub fn decode(body: &str) -> Option<WorkerReport> {
        let start = body.find(REPORT_PREFIX)? + REPORT_PREFIX.len();
        let end = start + body[start..].find("-->")?;
        serde_json::from_str(body[start..end].trim()).ok()
    }
}

/// The branch of a task: `parallel/<parent>/<task-slug>`.
pub fn branch_of(parent: u64, task: &Task) -> String {
    format!("parallel/{parent}/{}", task.slug())
}

pub async fn run(args: &WorkerArgs, rt: &Runtime) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env(&args.github)?;
    rt.mask(ctx.token.expose());
    let number = args.worker_issue.ok_or_else(|| {
        BadInput(
            "no worker issue: pass `worker_issue` (--worker-issue), normally `${{ matrix.issue }}`"
                .into(),
        )
    })?;
    let api_key = args
        .llm_api_key
        .clone()
        .map(Secret::new)
        .unwrap_or_else(|| ctx.token.clone());
    if args.llm_api_key.is_some() {
        rt.mask(api_key.expose());
    }
    let gh = GitHub::new(ctx.github_config())?;
    let mut llm = LlmConfig::new(&args.llm_base_url, &args.llm_model, api_key);
    if let Some(cap) = std::env::var("PARALLEL_ORCHESTRATOR_LLM_WAIT_CAP_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        llm.wait_cap = Some(Duration::from_millis(cap));
    }
    let worker = Worker {
        gh: &gh,
        ctx: &ctx,
        number,
        base_branch: args.base.base_branch.clone(),
        llm,
    };
    worker.run(rt).await
}

struct Worker<'a> {
    gh: &'a GitHub,
    ctx: &'a Context,
    number: u64,
    base_branch: Option<String>,
    llm: LlmConfig,
}

/// Why a task failed, in words safe to post on its issue (never the model's files).
struct Failure(String);

impl Worker<'_> {
    async fn run(&self, rt: &Runtime) -> anyhow::Result<ExitCode> {
        let issue = match self.gh.issue(self.number).await {
            Ok(i) => i,
            Err(e) if e.is(ErrorKind::NotFound) => {
                return Err(BadInput(format!(
                    "worker issue #{} not found in {}",
                    self.number,
                    self.gh.full_name()
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        let marker = issue
            .body
            .as_deref()
            .and_then(TaskMarker::decode)
            .filter(|_| issue.has_label(labels::WORKER))
            .ok_or_else(|| {
                BadInput(format!(
                    "#{} is not a worker issue (it lacks the `{}` label or its task marker)",
                    self.number,
                    labels::WORKER
                ))
            })?;
        let (parent, task) = (marker.parent, &marker.task);
        let branch = branch_of(parent, task);
        info!(
            "worker: #{} task {} of #{parent}, branch {branch}",
            self.number, task.id
        );

        if labels::state_of(&issue.label_names()) == Some(State::Completed) {
            let pr = self.open_pull_of(&branch).await?;
            info!("#{} is completed already: nothing to do", self.number);
            self.outputs(rt, State::Completed, pr.as_ref())?;
            return Ok(ExitCode::SUCCESS);
        }

        if self.ctx.dry_run {
            println!("would label #{} status:running", self.number);
            println!(
                "would ask {} ({}) for the files of {}",
                self.llm.model,
                self.llm.endpoint(),
                task.id
            );
            println!(
                "would commit them to {branch} and open a pull request closing #{}",
                self.number
            );
            return Ok(ExitCode::SUCCESS);
        }

        let started = Instant::now();
        self.set_state(&issue, parent, State::Running).await?;
        match self
            .work(&issue, parent, task, &marker.siblings, &branch, started)
            .await
        {
            Ok(pr) => {
                self.set_state(&issue, parent, State::Completed).await?;
                info!(
                    "done: {} in {}",
                    pr.html_url,
                    crate::dashboard::format_duration(started.elapsed())
                );
                self.outputs(rt, State::Completed, Some(&pr))?;
                rt.append_summary(&format!(
                    "## worker #{}: `{}`\n\n✅ completed: {}\n",
                    self.number, task.id, pr.html_url
                ))?;
                self.refresh_dashboard(parent).await;
                Ok(ExitCode::SUCCESS)
            }
            Err(Failure(reason)) => {
                rt.annotate(
                    AnnotationLevel::Error,
                    &format!("task {} failed: {reason}", task.id),
                    &Position {
                        title: Some(format!("worker #{}", self.number)),
                        ..Default::default()
                    },
                );
                let comment = format!(
                    "### ❌ Task `{}` failed\n\n{}\n\nNothing from the model was sent to GitHub. \
                     To try again, set this issue's label back to `status:queued` and run the workflow, \
                     or re-run the failed job.{}\n",
                    task.id,
                    fenced("text", &defuse(&reason)),
                    self.ctx
                        .run_url()
                        .map(|u| format!(" ([this run]({u}))"))
                        .unwrap_or_default()
                );
                // Report as much as GitHub lets us; the exit code says it failed either way.
                if let Err(e) = self.set_state(&issue, parent, State::Failed).await {
                    warn!("could not label #{} failed: {e}", self.number);
                }
                if let Err(e) = self.gh.create_comment(self.number, &comment).await {
                    warn!("could not comment on #{}: {e}", self.number);
                }
                self.outputs(rt, State::Failed, None)?;
                rt.append_summary(&format!(
                    "## worker #{}: `{}`\n\n❌ failed: {reason}\n",
                    self.number, task.id
                ))?;
                Ok(ExitCode::from(1))
            }
        }
    }

    /// Redraws the parent's dashboard unless it was drawn very recently (best effort: the
    /// task's own result is already on GitHub).
    async fn refresh_dashboard(&self, parent: u64) {
        let interval = std::env::var("PARALLEL_ORCHESTRATOR_DASHBOARD_INTERVAL_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(DASHBOARD_REFRESH_INTERVAL, Duration::from_secs);
        let by = format!("worker #{}", self.number);
        match crate::commands::aggregate::refresh(self.gh, parent, by, self.ctx.run_url(), interval)
            .await
        {
            Ok(true) => info!("refreshed the dashboard on #{parent}"),
            Ok(false) => {}
            Err(e) => warn!("could not refresh the dashboard on #{parent}: {e:#}"),
        }
    }

    async fn set_state(&self, issue: &Issue, parent: u64, state: State) -> anyhow::Result<()> {
        let wanted = labels::with_state(&issue.label_names(), parent, state);
        self.gh
            .set_labels(self.number, &wanted)
            .await
            .with_context(|| format!("cannot label #{} {}", self.number, labels::status(state)))?;
        Ok(())
    }

    fn outputs(&self, rt: &Runtime, state: State, pr: Option<&PullRequest>) -> anyhow::Result<()> {
        rt.set_outputs(&[
            ("status", state.to_string()),
            ("pr_url", pr.map(|p| p.html_url.clone()).unwrap_or_default()),
        ])
        .context("cannot write the step outputs")
    }

    async fn open_pull_of(&self, branch: &str) -> anyhow::Result<Option<PullRequest>> {
        let pulls = self.gh.pulls_from(branch).await?;
        Ok(pulls.into_iter().find(|p| p.state == "open"))
    }

    /// Everything between `status:running` and `status:completed`.
    async fn work(
        &self,
        issue: &Issue,
        parent: u64,
        task: &Task,
        siblings: &[crate::markers::Sibling],
        branch: &str,
        started: Instant,
    ) -> Result<PullRequest, Failure> {
        let github = |e: crate::github::GitHubError| Failure(format!("GitHub: {e}"));
        let parent_issue = self.gh.issue(parent).await.map_err(github)?;
        let siblings: Vec<(String, String)> = siblings
            .iter()
            .map(|s| (s.id.clone(), s.title.clone()))
            .collect();
        let base = match &self.base_branch {
            Some(b) => b.clone(),
            None => self.gh.repository().await.map_err(github)?.default_branch,
        };
        let head = self.gh.branch_head(&base).await.map_err(github)?;
        // A commit sha names its tree too: one request for the tree's sha and its paths.
        let tree = self.gh.tree(&head).await.map_err(github)?;
        let base_tree = tree.sha.clone();
        let files: Vec<String> = tree
            .tree
            .into_iter()
            .filter(|e| e.kind == "blob")
            .map(|e| e.path)
            .collect();
        let readme = if files.iter().any(|f| f == "README.md") {
            self.gh
                .file_text("README.md", &base)
                .await
                .map_err(github)?
        } else {
            None
        };

        let input = PromptInput {
            parent_number: parent,
            parent_title: &parent_issue.title,
            parent_body: parent_issue.body.as_deref().unwrap_or_default(),
            task: Some(task),
            siblings,
            files,
            readme,
        };
        let generation = self.generate(&input, task).await?;
        let policy = OutputPolicy::new()
            .with_allowed(&task.allowed_paths)
            .map_err(|e| Failure(e.to_string()))?;
        let safe = policy
            .check_answer(&generation.answer.files)
            .map_err(|v| Failure(format!("the model's answer was refused:\n{v}")))?;
        if safe.is_empty() {
            return Err(Failure("the model answered with no files".into()));
        }
        info!(
            "the model wrote {} file(s), {} tokens ({} requests)",
            safe.len(),
            generation.usage.total_tokens,
            generation.requests
        );

        // One tree with every file inline, one commit on the base's head, one ref.
        let contents: Vec<(String, String)> = safe
            .iter()
            .map(|f| (f.path.clone(), f.content.clone()))
            .collect();
        let message = format!(
            "{}: {}\n\nTask {} of #{parent}, closes #{}.",
            task.node, task.title, task.id, issue.number
        );
        let new_tree = self
            .gh
            .create_tree(&base_tree, &contents)
            .await
            .map_err(github)?;
        let commit = self
            .gh
            .create_commit(&message, &new_tree, &[head])
            .await
            .map_err(github)?;
        self.gh.set_branch(branch, &commit).await.map_err(github)?;

        let report = WorkerReport {
            issue: issue.number,
            task: task.id.clone(),
            duration_secs: started.elapsed().as_secs(),
            prompt_tokens: generation.usage.prompt_tokens,
            completion_tokens: generation.usage.completion_tokens,
            total_tokens: generation.usage.total_tokens,
            model: self.llm.model.clone(),
            files: safe.len(),
            paths: safe.iter().take(200).map(|f| f.path.clone()).collect(),
        };
        let title = format!(
            "[parallel #{parent}] {}: {}",
            task.node,
            task.title.replace(['\n', '\r'], " ")
        );
        let title: String = title.chars().take(250).collect();
        let body = pull_body(issue.number, parent, task, &generation, &safe, &report);
        // Create first: on a re-run GitHub answers 422 and the open PR is updated instead.
        self.gh
            .open_pull(branch, &base, &title, &body)
            .await
            .map_err(github)
    }

    /// Asks the model, trying `retries + 1` times on errors that may pass, and shrinking the
    /// repository view when the prompt is too long.
    async fn generate(&self, input: &PromptInput<'_>, task: &Task) -> Result<Generation, Failure> {
        let client = LlmClient::new(self.llm.clone()).map_err(|e| Failure(e.to_string()))?;
        let attempts = task.template.retries + 1;
        let mut budget = DEFAULT_REPO_BUDGET;
        let mut attempt = 1;
        loop {
            let messages = prompt::build(input, budget);
            match client.generate(messages).await {
                Ok(g) => return Ok(g),
                Err(LlmError::ContextLengthExceeded { .. }) if budget > MIN_REPO_BUDGET => {
                    budget = (budget / 4).max(MIN_REPO_BUDGET);
                    warn!(
                        "the prompt is over the model's context: asking again with a {budget}-byte repository view"
                    );
                }
                Err(e) if attempt < attempts && e.is_transient() => {
                    warn!("attempt {attempt} of {attempts} failed: {e}; trying again");
                    attempt += 1;
                    tokio::time::sleep(
                        Duration::from_secs(2).min(self.llm.wait_cap.unwrap_or(Duration::MAX)),
                    )
                    .await;
                }
                Err(LlmError::MalformedAnswer { reason, .. }) => {
                    // The excerpt is model output: it stays out of the issue.
                    return Err(Failure(format!(
                        "the model's answer was unusable: {reason}"
                    )));
                }
                Err(e) => return Err(Failure(e.to_string())),
            }
        }
    }
}

fn pull_body(
    issue: u64,
    parent: u64,
    task: &Task,
    generation: &Generation,
    files: &[SafeFile],
    report: &WorkerReport,
) -> String {
    let summary = prompt::clean(&generation.answer.summary);
    let summary: String = summary.chars().take(4000).collect();
    let mut listing = String::new();
    for f in files.iter().take(100) {
        listing.push_str(&format!(
            "- `{}` ({} bytes)\n",
            f.path.replace('`', "'"),
            f.content.len()
        ));
    }
    format!(
        "Closes #{issue}\n\nTask `{}` of the parallel run on #{parent}.\n\n### Summary (written by the model)\n\n{}\n\n\
         ### Files\n\n{listing}\nModel `{}` · tokens: {} prompt + {} completion = {} · {} request(s) · {}\n\n{}\n",
        task.id,
        fenced("text", &defuse(&summary)),
        report.model,
        report.prompt_tokens,
        report.completion_tokens,
        report.total_tokens,
        generation.requests,
        crate::dashboard::format_duration(Duration::from_secs(report.duration_secs)),
        report.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_through_a_pull_request_body() {
        let r = WorkerReport {
            issue: 5,
            task: "a/b".into(),
            duration_secs: 93,
            prompt_tokens: 10,
            completion_tokens: 20,
            total_tokens: 30,
            model: "m<x>".into(),
            files: 2,
            paths: vec!["a.rs".into(), "b/c.rs".into()],
        };
        let body = format!("text\n{}\n", r.encode());
        assert_eq!(body.matches("-->").count(), 1);
        assert_eq!(WorkerReport::decode(&body), Some(r));
    }
}
