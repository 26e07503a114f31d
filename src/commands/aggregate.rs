//! `aggregate`: gather every worker's state into the parent's dashboard, block what a failure
//! blocks, keep the integration branch, start the next wave, and give the verdict.
//!
//! Reads: the parent, one paginated list of its workers (by label), one list of the pull
//! requests created since the parent (newest first, cut at the parent's creation).
//! Writes: label changes for blocked/unblocked tasks, one dashboard edit, merges of newly
//! completed branches, the integration PR, one dispatch when a wave should start.

use crate::actions::Runtime;
use crate::cli::AggregateArgs;
use crate::commands::split::{Worker, find_workers};
use crate::commands::worker::{WorkerReport, branch_of};
use crate::context::Context;
use crate::dashboard::{self, Dashboard, Row};
use crate::errors::BadInput;
use crate::github::models::{Issue, PullRequest};
use crate::github::{ErrorKind, GitHub, MergeOutcome};
use crate::labels;
use crate::markers::{self, INTEGRATION_PREFIX, IntegrationState, RunState, STATE_PREFIX};
use crate::plan::{Level, State, Task};
use crate::progress::{self, NextWave};
use anyhow::Context as _;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Everything known about a run, from GitHub.
pub struct Snapshot {
    pub parent: Issue,
    /// Worker issues by task id.
    pub workers: BTreeMap<String, Worker>,
    /// Tasks in creation order (the order split made them: wave by wave).
    pub tasks: Vec<Task>,
    pub states: BTreeMap<String, State>,
    /// Each worker's pull request (open first, else the newest), by issue number.
    pub pulls: BTreeMap<u64, PullRequest>,
    pub reports: BTreeMap<u64, WorkerReport>,
    /// The integration PR, if any.
    pub integration: Option<PullRequest>,
}

impl Snapshot {
    pub async fn gather(gh: &GitHub, parent_number: u64) -> anyhow::Result<Snapshot> {
        let parent = match gh.issue(parent_number).await {
            Ok(i) => i,
            Err(e) if e.is(ErrorKind::NotFound) => {
                return Err(BadInput(format!(
                    "parent issue #{parent_number} not found in {}",
                    gh.full_name()
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        let workers = find_workers(gh, parent_number).await?;
        let mut by_number: Vec<&Worker> = workers.values().collect();
        by_number.sort_by_key(|w| w.number);
        let tasks: Vec<Task> = by_number.iter().map(|w| w.marker.task.clone()).collect();
        let states = workers
            .iter()
            .map(|(id, w)| (id.clone(), w.state()))
            .collect();

        let since = parent.created_at.clone().unwrap_or_default();
        let all_pulls = gh.pulls_created_since(&since).await?;
        let mut pulls = BTreeMap::new();
        let mut reports = BTreeMap::new();
        for w in workers.values() {
            let branch = branch_of(parent_number, &w.marker.task);
            let mut mine: Vec<&PullRequest> = all_pulls
                .iter()
                .filter(|p| p.head.r#ref == branch)
                .collect();
            // Open first, then the newest.
            mine.sort_by_key(|p| (p.state != "open", std::cmp::Reverse(p.number)));
            if let Some(pr) = mine.first() {
                if let Some(r) = pr.body.as_deref().and_then(WorkerReport::decode) {
                    reports.insert(w.number, r);
                }
                pulls.insert(w.number, (*pr).clone());
            }
        }
        let integration_branch = integration_branch(parent_number);
        let integration = all_pulls
            .iter()
            .filter(|p| p.head.r#ref == integration_branch)
            .min_by_key(|p| (p.state != "open", std::cmp::Reverse(p.number)))
            .cloned();
        Ok(Snapshot {
            parent,
            workers,
            tasks,
            states,
            pulls,
            reports,
            integration,
        })
    }

    pub fn rows(&self) -> Vec<Row> {
        self.tasks
            .iter()
            .filter_map(|t| {
                let w = self.workers.get(&t.id)?;
                let report = self.reports.get(&w.number);
                Some(Row {
                    issue: w.number,
                    task: t.id.clone(),
                    title: t.title.clone(),
                    state: self.states.get(&t.id).copied().unwrap_or(State::Queued),
                    pr: self
                        .pulls
                        .get(&w.number)
                        .map(|p| (p.number, p.html_url.clone())),
                    duration: report.map(|r| Duration::from_secs(r.duration_secs)),
                    tokens: report.map(|r| r.total_tokens),
                })
            })
            .collect()
    }

    /// The dashboard of this snapshot (aggregate adds what only it knows: next step,
    /// integration).
    pub fn dashboard(&self, level: Level, by: String, run_url: Option<String>) -> Dashboard {
        let rows = self.rows();
        let durations: Vec<Duration> = rows.iter().filter_map(|r| r.duration).collect();
        let left = rows
            .iter()
            .filter(|r| matches!(r.state, State::Queued | State::Running))
            .count();
        let started = self
            .workers
            .values()
            .filter_map(|w| w.created_at.as_deref().and_then(progress::parse_rfc3339))
            .min();
        let mut notes = Vec::new();
        if self.workers.len() > crate::commands::split::MAX_SUB_ISSUES {
            notes.push(format!(
                "GitHub links at most {} sub-issues to one issue: every worker is listed below.",
                crate::commands::split::MAX_SUB_ISSUES
            ));
        }
        Dashboard {
            rows,
            level: level.get(),
            elapsed: started.map(|s| Duration::from_secs(now_epoch().saturating_sub(s))),
            eta: progress::eta(&durations, left, level),
            next: None,
            notes,
            updated_by: by,
            run_url,
            ..Default::default()
        }
    }
}

pub fn integration_branch(parent: u64) -> String {
    format!("parallel/{parent}/integration")
}

/// The run state kept in the parent's dashboard region.
pub fn run_state(body: &str) -> RunState {
    markers::dashboard_content(body)
        .and_then(|c| markers::decode_json_marker(STATE_PREFIX, c))
        .unwrap_or_default()
}

/// Writes the dashboard into the parent's region, re-reading the body right before so an edit
/// made meanwhile outside the region is kept. Returns whether it wrote.
pub async fn write_dashboard(gh: &GitHub, parent: u64, content: &str) -> anyhow::Result<bool> {
    let fresh = gh.issue(parent).await?.body.unwrap_or_default();
    if markers::dashboard_content(&fresh).is_some_and(|old| same_dashboard(old, content)) {
        return Ok(false);
    }
    let new_body = markers::replace_dashboard(&fresh, content);
    gh.update_issue_body(parent, &new_body).await?;
    Ok(true)
}

/// Whether two renderings show the same thing and carry the same dispatch guard: only the
/// time they were drawn differs. Saves an edit (and a notification-free but real write).
fn same_dashboard(a: &str, b: &str) -> bool {
    let split = |s: &str| -> (String, Option<String>) {
        let state: Option<RunState> = markers::decode_json_marker(STATE_PREFIX, s);
        let visible = match s.find(STATE_PREFIX) {
            Some(i) => s[..i].trim_end().to_string(),
            None => s.trim_end().to_string(),
        };
        (visible, state.and_then(|st| st.dispatched))
    };
    split(a) == split(b)
}

/// The hidden run-state line for a dashboard drawn now, keeping the dispatch guard.
pub fn state_line(previous: &RunState, level: Level) -> String {
    let state = RunState {
        updated: now_epoch(),
        dispatched: previous.dispatched.clone(),
        level: Some(level.get() as u32),
    };
    markers::encode_json_marker(STATE_PREFIX, &state)
}

/// A worker's refresh of the dashboard after it finished: recomputed from the labels, so
/// racing refreshes converge, and skipped when the dashboard was drawn less than
/// `min_interval` ago, so 100 workers do not make 100 edits. Aggregate draws the exact one.
pub async fn refresh(
    gh: &GitHub,
    parent: u64,
    by: String,
    run_url: Option<String>,
    min_interval: Duration,
) -> anyhow::Result<bool> {
    let body = gh.issue(parent).await?.body.unwrap_or_default();
    let state = run_state(&body);
    let now = now_epoch();
    if now.saturating_sub(state.updated) < min_interval.as_secs() {
        return Ok(false);
    }
    let snap = Snapshot::gather(gh, parent).await?;
    let level = state.level.and_then(Level::new).unwrap_or_default();
    let mut board = snap.dashboard(level, by, run_url);
    board.hidden = Some(state_line(&state, level));
    write_dashboard(gh, parent, &dashboard::render(&board)).await
}

pub async fn run(args: &AggregateArgs, rt: &Runtime) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env(&args.github)?;
    rt.mask(ctx.token.expose());
    let parent = ctx.parent_issue(args.parent.parent_issue)?;
    let gh = GitHub::new(ctx.github_config())?;
    let agg = Aggregate {
        gh: &gh,
        ctx: &ctx,
        parent,
        level: args.level.parallelism_level,
        integrate: args.integrate.integrate,
        base_branch: args.base.base_branch.clone(),
    };
    agg.run(rt).await
}

struct Aggregate<'a> {
    gh: &'a GitHub,
    ctx: &'a Context,
    parent: u64,
    level: Level,
    integrate: bool,
    base_branch: Option<String>,
}

/// What happened to the integration branch this round.
#[derive(Default)]
struct Integration {
    pr: Option<(u64, String)>,
    conflicts: Vec<u64>,
}

impl Aggregate<'_> {
    async fn run(&self, rt: &Runtime) -> anyhow::Result<ExitCode> {
        let dry = self.ctx.dry_run;
        info!(
            "aggregate: parent #{} in {}{}",
            self.parent,
            self.gh.full_name(),
            if dry { " (dry run: no writes)" } else { "" }
        );
        let mut snap = Snapshot::gather(self.gh, self.parent).await?;
        if snap.workers.is_empty() {
            warn!("#{} has no worker issues yet: run split first", self.parent);
        }

        // 0. Jobs that died without reporting (cancelled, timed out) leave `status:running`.
        let last_change: BTreeMap<String, u64> = snap
            .workers
            .iter()
            .filter_map(|(id, w)| {
                Some((
                    id.clone(),
                    progress::parse_rfc3339(w.updated_at.as_deref()?)?,
                ))
            })
            .collect();
        for task in progress::stale_running(&snap.tasks, &snap.states, &last_change, now_epoch()) {
            let w = &snap.workers[&task];
            let minutes = w.marker.task.template.timeout;
            warn!(
                "#{} {task}: running for longer than its job can live: marked failed",
                w.number
            );
            if !dry {
                let wanted = labels::with_state(&w.labels, self.parent, State::Failed);
                self.gh.set_labels(w.number, &wanted).await?;
                let note = format!(
                    "❌ The worker job ended without reporting back: it ran past its `timeout` of {minutes} minutes, or was cancelled. \
                     To try again, set the label back to `status:queued` and run the workflow."
                );
                self.gh.create_comment(w.number, &note).await?;
            }
            snap.states.insert(task, State::Failed);
        }

        // 1. Dependencies: block what a failure blocks, unblock what a retry frees.
        let change = progress::propagate(&snap.tasks, &snap.states);
        for (task, why) in &change.block {
            let w = &snap.workers[task];
            info!("#{} {task}: blocked, {why}", w.number);
            if !dry {
                let wanted = labels::with_state(&w.labels, self.parent, State::Blocked);
                self.gh.set_labels(w.number, &wanted).await?;
                let note = format!(
                    "⛔ Blocked: {why}, and this task depends on it. It runs again when that task is re-queued \
                     (label `status:queued`) and completes."
                );
                self.gh.create_comment(w.number, &note).await?;
            }
            snap.states.insert(task.clone(), State::Blocked);
        }
        for task in &change.unblock {
            let w = &snap.workers[task];
            info!("#{} {task}: unblocked, back to the queue", w.number);
            if !dry {
                let wanted = labels::with_state(&w.labels, self.parent, State::Queued);
                self.gh.set_labels(w.number, &wanted).await?;
            }
            snap.states.insert(task.clone(), State::Queued);
        }

        // 2. The integration branch.
        let integration = if self.integrate && !dry {
            self.integrate(&snap).await?
        } else {
            Integration::default()
        };

        // 3. The next wave.
        let body = snap.parent.body.clone().unwrap_or_default();
        let mut state = run_state(&body);
        let next = progress::next_wave(
            &snap.tasks,
            &snap.states,
            self.level,
            state.dispatched.as_deref(),
        );
        let next_text = match &next {
            NextWave::Dispatch(ready) => match self.workflow() {
                Some((file, git_ref)) => {
                    let fp = progress::fingerprint(&snap.states);
                    if dry {
                        println!(
                            "would start the next wave ({} tasks) with a dispatch of {file} on {git_ref}",
                            ready.len()
                        );
                    } else {
                        let inputs = json!({"parent_issue": self.parent.to_string(), "parallelism_level": self.level.to_string()});
                        self.gh
                            .dispatch_workflow(&file, &git_ref, &inputs)
                            .await
                            .with_context(|| format!("cannot start the next wave ({file} on {git_ref}); the job needs `permissions: actions: write`"))?;
                        state.dispatched = Some(fp);
                        info!(
                            "started the next wave: {} ready tasks, workflow {file} on {git_ref}",
                            ready.len()
                        );
                    }
                    format!(
                        "the next wave ({} tasks) has been started: workflow `{file}`.",
                        ready.len()
                    )
                }
                None => format!(
                    "{} tasks are ready; run the workflow again (`gh workflow run … -f parent_issue={}`) to start them.",
                    ready.len(),
                    self.parent
                ),
            },
            NextWave::Wait => {
                "workers are running; the dashboard updates as they finish.".to_string()
            }
            NextWave::NoProgress => {
                warn!(
                    "ready tasks remain, but this same state already started a wave: not starting another"
                );
                "ready tasks remain, but the last wave made no progress, so no new wave was started. Check the failed jobs, then run the workflow by hand.".to_string()
            }
            NextWave::Nothing => {
                let failed = snap
                    .states
                    .values()
                    .filter(|s| matches!(s, State::Failed | State::Blocked))
                    .count();
                if failed == 0 {
                    "all done.".to_string()
                } else {
                    format!(
                        "nothing more can run: {failed} task(s) failed or are blocked. Re-queue a failed one with the label `status:queued` (or re-run its failed job), then run the workflow again."
                    )
                }
            }
        };

        // 4. The dashboard, the exact one.
        let mut board = snap.dashboard(self.level, "aggregate".into(), self.ctx.run_url());
        board.next = Some(next_text);
        board.integration = integration.pr.clone();
        board.merge_conflicts = integration.conflicts.clone();
        let written: BTreeMap<u64, Vec<String>> = snap
            .reports
            .iter()
            .filter(|(n, _)| {
                snap.workers.values().any(|w| {
                    w.number == **n && snap.states.get(&w.marker.task.id) == Some(&State::Completed)
                })
            })
            .map(|(n, r)| (*n, r.paths.clone()))
            .collect();
        board.overlaps = progress::overlaps(&written).into_iter().collect();
        board.hidden = Some(state_line(&state, self.level));
        let rendered = dashboard::render(&board);
        if dry {
            println!("would update the dashboard of #{}", self.parent);
        } else {
            write_dashboard(self.gh, self.parent, &rendered).await?;
        }

        // 5. The verdict.
        let count = |s: State| snap.states.values().filter(|x| **x == s).count();
        let total = snap.states.len();
        let (completed, failed, running, queued, blocked) = (
            count(State::Completed),
            count(State::Failed),
            count(State::Running),
            count(State::Queued),
            count(State::Blocked),
        );
        let progress = dashboard::progress(&board.rows);
        let all_done = total > 0 && queued == 0 && running == 0;
        rt.set_outputs(&[
            ("total", total.to_string()),
            ("completed", completed.to_string()),
            ("failed", failed.to_string()),
            ("running", running.to_string()),
            ("queued", queued.to_string()),
            ("blocked", blocked.to_string()),
            ("progress", progress.to_string()),
            ("all_done", all_done.to_string()),
        ])
        .context("cannot write the step outputs")?;
        rt.append_summary(&rendered)
            .context("cannot write the job summary")?;
        info!(
            "{completed} of {total} completed, {failed} failed, {blocked} blocked, {running} running, {queued} queued; \
             {} read and {} write requests",
            self.gh.counters.reads(),
            self.gh.counters.writes()
        );
        // A dry run only shows: it exits 0 whatever it found (INTERFACE.md).
        if failed > 0 && !dry {
            rt.annotate(
                crate::actions::Level::Error,
                &format!(
                    "{failed} of {total} workers failed; see the dashboard on #{}",
                    self.parent
                ),
                &Default::default(),
            );
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `(workflow file, ref)` from `GITHUB_WORKFLOW_REF` (`owner/repo/.github/workflows/x.yml@refs/heads/main`).
    fn workflow(&self) -> Option<(String, String)> {
        let wref = self.ctx.workflow_ref.as_deref()?;
        let (path, git_ref) = wref.split_once('@')?;
        let file = path.rsplit('/').next()?.to_string();
        Some((file, git_ref.to_string()))
    }

    /// Merges every newly completed worker branch into `parallel/<parent>/integration` and
    /// keeps one PR for it.
    async fn integrate(&self, snap: &Snapshot) -> anyhow::Result<Integration> {
        let completed: Vec<&Worker> = snap
            .tasks
            .iter()
            .filter(|t| snap.states.get(&t.id) == Some(&State::Completed))
            .filter_map(|t| snap.workers.get(&t.id))
            .collect();
        if completed.is_empty() {
            return Ok(Integration::default());
        }
        let base = match &self.base_branch {
            Some(b) => b.clone(),
            None => self.gh.repository().await?.default_branch,
        };
        let branch = integration_branch(self.parent);
        let mut st: IntegrationState = snap
            .integration
            .as_ref()
            .and_then(|p| p.body.as_deref())
            .and_then(|b| markers::decode_json_marker(INTEGRATION_PREFIX, b))
            .unwrap_or_default();
        match self.gh.branch_head(&branch).await {
            Ok(_) => {}
            Err(e) if e.is(ErrorKind::NotFound) => {
                let head = self.gh.branch_head(&base).await?;
                self.gh.set_branch(&branch, &head).await?;
                st = IntegrationState::default();
            }
            Err(e) => return Err(e.into()),
        }
        let mut conflicts = Vec::new();
        for w in &completed {
            let task = &w.marker.task;
            let Some(pr) = snap.pulls.get(&w.number) else {
                continue;
            };
            let head = pr.head.sha.clone();
            if st.merged.get(&task.id) == Some(&head) {
                continue;
            }
            if st.conflicts.get(&task.id) == Some(&head) {
                conflicts.push(w.number);
                continue;
            }
            let message = format!(
                "Merge {} (#{}) into the integration of #{}",
                task.id, w.number, self.parent
            );
            match self
                .gh
                .merge(&branch, &branch_of(self.parent, task), &message)
                .await?
            {
                MergeOutcome::Merged(_) | MergeOutcome::Nothing => {
                    st.conflicts.remove(&task.id);
                    st.merged.insert(task.id.clone(), head);
                }
                MergeOutcome::Conflict => {
                    warn!(
                        "#{} {} conflicts with the integration branch: not merged",
                        w.number, task.id
                    );
                    st.conflicts.insert(task.id.clone(), head);
                    conflicts.push(w.number);
                }
            }
        }
        // The PR lists what it contains and what did not fit.
        let mut body = format!(
            "Every completed worker of #{} merged into one branch, for those who want one pull request to review.\n\n\
             | worker | task | pull request |\n|---|---|---|\n",
            self.parent
        );
        for w in &completed {
            if st.merged.contains_key(&w.marker.task.id) {
                let pr = snap
                    .pulls
                    .get(&w.number)
                    .map(|p| format!("#{}", p.number))
                    .unwrap_or_default();
                body.push_str(&format!(
                    "| #{} | `{}` | {pr} |\n",
                    w.number, w.marker.task.id
                ));
            }
        }
        let mut section = Dashboard {
            merge_conflicts: conflicts.clone(),
            ..Default::default()
        };
        let written: BTreeMap<u64, Vec<String>> = completed
            .iter()
            .filter_map(|w| {
                snap.reports
                    .get(&w.number)
                    .map(|r| (w.number, r.paths.clone()))
            })
            .collect();
        section.overlaps = progress::overlaps(&written).into_iter().collect();
        body.push('\n');
        body.push_str(&dashboard::integration_section(&section));
        body.push_str(&markers::encode_json_marker(INTEGRATION_PREFIX, &st));
        body.push('\n');
        let title = format!(
            "[parallel #{}] integration: {} of {} tasks",
            self.parent,
            st.merged.len(),
            snap.tasks.len()
        );
        let pr = match snap.integration.as_ref().filter(|p| p.state == "open") {
            Some(p) if p.body.as_deref() == Some(body.as_str()) && p.title == title => p.clone(),
            Some(p) => self.gh.update_pull(p.number, &title, &body).await?,
            None => self.gh.open_pull(&branch, &base, &title, &body).await?,
        };
        Ok(Integration {
            pr: Some((pr.number, pr.html_url)),
            conflicts,
        })
    }
}
