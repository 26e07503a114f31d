//! `split`: read the parent issue's spec, make sure every task has its worker issue (once,
//! however often split runs or wherever an earlier run stopped), and emit the matrix of the
//! tasks ready to run.
//!
//! The work is computed first (what exists, what is missing), then carried out; `--dry-run`
//! prints the same list of writes and makes none.

use crate::actions::{Level as AnnotationLevel, Position, Runtime};
use crate::cli::SplitArgs;
use crate::commands::plan::SpecFailure;
use crate::context::Context;
use crate::dashboard::{self, Dashboard, Row};
use crate::errors::BadInput;
use crate::github::models::Issue;
use crate::github::{ErrorKind, GitHub, GitHubError};
use crate::labels;
use crate::markers::{self, SPEC_ERROR, TaskMarker, defuse, fenced};
use crate::plan::{Level, Matrix, MatrixEntry, Plan, State, Task, plan, ready};
use crate::spec::{SpecError, parse_document};
use anyhow::Context as _;
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use tracing::{info, warn};

/// GitHub links at most this many sub-issues to one parent.
pub const MAX_SUB_ISSUES: usize = 100;

pub async fn run(args: &SplitArgs, rt: &Runtime) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env(&args.github)?;
    rt.mask(ctx.token.expose());
    let parent = ctx.parent_issue(args.parent.parent_issue)?;
    let gh = GitHub::new(ctx.github_config())?;
    let split = Split {
        gh: &gh,
        ctx: &ctx,
        parent,
        level: args.level.parallelism_level,
    };
    split.run(rt).await
}

/// A worker issue found on GitHub.
#[derive(Debug, Clone)]
pub struct Worker {
    pub number: u64,
    pub id: u64,
    pub labels: Vec<String>,
    pub html_url: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub marker: TaskMarker,
}

impl Worker {
    pub fn state(&self) -> State {
        labels::state_of(&self.labels).unwrap_or(State::Queued)
    }
}

/// The parent's worker issues by task id, from one paginated list by label. When two issues
/// carry the same task (a race of two runs), the older one counts.
pub async fn find_workers(
    gh: &GitHub,
    parent: u64,
) -> Result<BTreeMap<String, Worker>, GitHubError> {
    let mut issues = gh
        .issues_with_labels(&[labels::WORKER, &labels::parent(parent)])
        .await?;
    issues.sort_by_key(|i| i.number);
    let mut workers = BTreeMap::new();
    for issue in issues {
        let Some(marker) = issue.body.as_deref().and_then(TaskMarker::decode) else {
            warn!(
                "#{} has the worker labels but no task marker: ignored",
                issue.number
            );
            continue;
        };
        if marker.parent != parent {
            warn!(
                "#{} is labelled for #{parent} but its marker names #{}: ignored",
                issue.number, marker.parent
            );
            continue;
        }
        if let Some(first) = workers.get(&marker.task.id) {
            let first: &Worker = first;
            warn!(
                "#{} duplicates #{} for task {}: ignored",
                issue.number, first.number, marker.task.id
            );
            continue;
        }
        workers.insert(marker.task.id.clone(), worker_of(issue, marker));
    }
    Ok(workers)
}

fn worker_of(issue: Issue, marker: TaskMarker) -> Worker {
    Worker {
        number: issue.number,
        id: issue.id,
        labels: issue.label_names(),
        html_url: issue.html_url,
        created_at: issue.created_at,
        updated_at: issue.updated_at,
        marker,
    }
}

struct Split<'a> {
    gh: &'a GitHub,
    ctx: &'a Context,
    parent: u64,
    level: Level,
}

/// Everything split will write, decided before the first write.
#[derive(Debug, Default)]
struct Work<'p> {
    labels: Vec<(String, &'static str, String)>,
    create: Vec<&'p Task>,
    /// `None`: this GitHub has no sub-issues API.
    linked: Option<BTreeSet<u64>>,
}

impl Split<'_> {
    async fn run(&self, rt: &Runtime) -> anyhow::Result<ExitCode> {
        let dry = self.ctx.dry_run;
        info!(
            "split: parent #{} in {} at parallelism level {}{}",
            self.parent,
            self.gh.full_name(),
            self.level,
            if dry { " (dry run: no writes)" } else { "" }
        );
        let parent = self.parent_issue().await?;
        let body = parent.body.clone().unwrap_or_default();
        let document = markers::without_dashboard(&body);
        let planned =
            parse_document(&document).and_then(|(spec, source)| plan(&spec, &source, self.level));
        let planned = match planned {
            Ok(p) => p,
            Err(e) => return self.report_bad_spec(e, &document, rt).await,
        };
        info!(
            "the spec expands to {} task(s) in {} wave(s)",
            planned.tasks.len(),
            planned.waves.len()
        );

        let mut workers = find_workers(self.gh, self.parent).await?;
        let stale: Vec<Worker> = workers
            .values()
            .filter(|w| planned.task(&w.marker.task.id).is_none())
            .cloned()
            .collect();
        for w in &stale {
            warn!(
                "#{} is for task {}, which is no longer in the spec: left as it is",
                w.number, w.marker.task.id
            );
        }
        let work = self.decide(&planned, &workers).await?;
        info!(
            "{} worker issues exist, {} to create, {} labels to create",
            workers.len(),
            work.create.len(),
            work.labels.len()
        );

        if dry {
            self.print_dry_run(&planned, &workers, &work);
        } else {
            for (name, colour, description) in &work.labels {
                self.gh.ensure_label(name, colour, description).await?;
            }
            let total = work.create.len();
            let pace = self.gh.write_interval();
            if total > 1 && !pace.is_zero() {
                info!(
                    "writes are paced at one per {} (GitHub allows 80 content-creating requests a minute): \
                     {total} issues take at least {}",
                    crate::github::human_duration(pace),
                    crate::github::human_duration(pace * total as u32)
                );
            }
            for (i, task) in work.create.iter().enumerate() {
                let w = self.create_worker(task, &planned).await?;
                info!("{}/{total} issues: #{} {}", i + 1, w.number, task.id);
                workers.insert(task.id.clone(), w);
            }
        }

        let mut notes = Vec::new();
        if !dry {
            self.link_sub_issues(&planned, &workers, work.linked.as_ref(), &mut notes)
                .await?;
        }
        if !stale.is_empty() {
            notes.push(format!(
                "{} worker issue(s) belong to tasks no longer in the spec and are left as they are.",
                stale.len()
            ));
        }

        let state = |id: &str| workers.get(id).map_or(State::Queued, Worker::state);
        let ready: Vec<&Task> = ready(&planned.tasks, state, self.level);
        let matrix = Matrix {
            include: ready
                .iter()
                .map(|t| MatrixEntry::new(t, workers.get(&t.id).map(|w| w.number)))
                .collect(),
        };
        let rows = rows(&planned, &workers);
        let next = if matrix.include.is_empty() {
            "nothing is ready to start now; aggregate starts the next wave when running work finishes.".to_string()
        } else {
            format!("{} worker jobs start now.", matrix.include.len())
        };
        let board = Dashboard {
            rows,
            level: self.level.get(),
            next: Some(next),
            notes,
            updated_by: "split".into(),
            run_url: self.ctx.run_url(),
            ..Default::default()
        };
        if !dry {
            let content = dashboard::render(&Dashboard {
                hidden: Some(crate::commands::aggregate::state_line(
                    &crate::commands::aggregate::run_state(&body),
                    self.level,
                )),
                ..board
            });
            crate::commands::aggregate::write_dashboard(self.gh, self.parent, &content).await?;
        }

        let matrix_json = serde_json::to_string(&matrix)?;
        let has_work = !matrix.include.is_empty();
        rt.set_outputs(&[
            ("matrix", matrix_json),
            ("worker_count", workers.len().to_string()),
            ("has_work", has_work.to_string()),
        ])
        .context("cannot write the step outputs")?;
        let created = work.create.len();
        let writes = self.gh.counters.writes();
        info!(
            "split done: {} worker issues, {created} created, {} ready to start; {writes} write and {} read requests{}",
            workers.len(),
            matrix.include.len(),
            self.gh.counters.reads(),
            if created > 0 {
                format!(
                    " ({:.2} writes per new worker issue)",
                    writes as f64 / created as f64
                )
            } else {
                String::new()
            }
        );
        rt.append_summary(&summary(
            self.parent,
            &planned,
            &matrix,
            created,
            writes,
            dry,
        ))
        .context("cannot write the job summary")?;
        Ok(ExitCode::SUCCESS)
    }

    async fn parent_issue(&self) -> anyhow::Result<Issue> {
        match self.gh.issue(self.parent).await {
            Ok(i) if i.pull_request.is_some() => {
                Err(BadInput(format!("#{} is a pull request, not an issue", self.parent)).into())
            }
            Ok(i) => Ok(i),
            Err(e) if e.is(ErrorKind::NotFound) => Err(BadInput(format!(
                "parent issue #{} not found in {} (or the token cannot see it)",
                self.parent,
                self.gh.full_name()
            ))
            .into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads what exists and decides what to write.
    async fn decide<'p>(
        &self,
        planned: &'p Plan,
        workers: &BTreeMap<String, Worker>,
    ) -> anyhow::Result<Work<'p>> {
        let existing: BTreeSet<String> = self
            .gh
            .labels()
            .await?
            .into_iter()
            .map(|l| l.name.to_ascii_lowercase())
            .collect();
        let labels = labels::all(self.parent)
            .into_iter()
            .filter(|(name, _, _)| !existing.contains(&name.to_ascii_lowercase()))
            .collect();
        // Wave order, so the first wave's issues exist first if the run is cut short.
        let create = planned
            .waves
            .iter()
            .flatten()
            .filter(|id| !workers.contains_key(*id))
            .filter_map(|id| planned.task(id))
            .collect();
        let linked = match self.gh.sub_issues(self.parent).await {
            Ok(subs) => Some(subs.into_iter().map(|i| i.id).collect()),
            Err(e) if e.is(ErrorKind::NotFound) => {
                warn!(
                    "this GitHub has no sub-issues API: workers are listed in the dashboard only"
                );
                None
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Work {
            labels,
            create,
            linked,
        })
    }

    fn title(&self, task: &Task) -> String {
        let t = format!(
            "[parallel #{}] {}: {}",
            self.parent,
            task.node,
            task.title.replace(['\n', '\r'], " ")
        );
        // GitHub refuses titles over 256 characters.
        if t.chars().count() > 256 {
            t.chars().take(255).chain(['…']).collect()
        } else {
            t
        }
    }

    fn body(&self, task: &Task, planned: &Plan) -> String {
        // Its own node's tasks first: they are the ones most likely to overlap.
        let mut others: Vec<&Task> = planned.tasks.iter().filter(|t| t.id != task.id).collect();
        others.sort_by_key(|t| t.node != task.node);
        let marker = TaskMarker {
            parent: self.parent,
            task: task.clone(),
            siblings: others
                .into_iter()
                .take(markers::MAX_SIBLINGS)
                .map(|t| markers::Sibling {
                    id: t.id.clone(),
                    title: t.title.clone(),
                })
                .collect(),
        };
        let deps = if task.dependencies.is_empty() {
            "none".to_string()
        } else {
            task.dependencies
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let allowed = if task.allowed_paths.is_empty() {
            "anywhere except `.git/` and `.github/`".to_string()
        } else {
            task.allowed_paths
                .iter()
                .map(|p| format!("`{}`", p.replace('`', "'")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "Task `{id}` of the parallel run on #{parent}.\n\n{description}\n\n\
             | | |\n|---|---|\n| node | `{node}` |\n| priority | {priority} |\n| depends on | {deps} |\n| may write | {allowed} |\n\n\
             A worker job asks the model for this task's files and opens a pull request that closes this issue. \
             To run it again, set its label back to `status:queued`.\n\n{marker}\n",
            id = task.id,
            parent = self.parent,
            description = defuse(&task.description),
            node = task.node,
            priority = task.priority,
            marker = marker.encode(),
        )
    }

    /// Creates one worker issue. A create that may have landed without our seeing the answer
    /// is checked against GitHub before it is sent again: never two issues for one task.
    async fn create_worker(&self, task: &Task, planned: &Plan) -> anyhow::Result<Worker> {
        let labels = vec![
            labels::WORKER.to_string(),
            labels::parent(self.parent),
            labels::status(State::Queued),
        ];
        let (title, body) = (self.title(task), self.body(task, planned));
        let mut tries = 0;
        loop {
            tries += 1;
            match self.gh.create_issue(&title, &body, &labels).await {
                Ok(issue) => {
                    let marker = TaskMarker::decode(issue.body.as_deref().unwrap_or_default())
                        .context("GitHub returned the new issue without its task marker")?;
                    return Ok(worker_of(issue, marker));
                }
                Err(e) if e.is(ErrorKind::Ambiguous) && tries < 5 => {
                    warn!(
                        "{e}; checking whether the issue for {} exists before creating it again",
                        task.id
                    );
                    self.gh.pause_after_failure(tries).await;
                    if let Some(w) = find_workers(self.gh, self.parent).await?.remove(&task.id) {
                        info!(
                            "the issue for {} was created after all: #{}",
                            task.id, w.number
                        );
                        return Ok(w);
                    }
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot create the worker issue for {}", task.id)));
                }
            }
        }
    }

    async fn link_sub_issues(
        &self,
        planned: &Plan,
        workers: &BTreeMap<String, Worker>,
        linked: Option<&BTreeSet<u64>>,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let Some(linked) = linked else {
            notes.push("This GitHub has no sub-issues; every worker is listed below.".into());
            return Ok(());
        };
        let unlinked: Vec<&Worker> = planned
            .waves
            .iter()
            .flatten()
            .filter_map(|id| workers.get(id))
            .filter(|w| !linked.contains(&w.id))
            .collect();
        let room = MAX_SUB_ISSUES.saturating_sub(linked.len());
        if unlinked.len() > room {
            notes.push(format!(
                "GitHub links at most {MAX_SUB_ISSUES} sub-issues to one issue: {} workers are not sub-issues and are listed here only.",
                unlinked.len() - room
            ));
        }
        for w in unlinked.into_iter().take(room) {
            match self.gh.add_sub_issue(self.parent, w.id).await {
                Ok(()) => {}
                // Already linked (a racing run), or linked to another parent by a person.
                Err(e) if e.is(ErrorKind::Validation) => {
                    warn!("#{} not linked as a sub-issue: {e}", w.number)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// One comment on the parent says what is wrong (kept up to date, never repeated); nothing
    /// else is written. Exit code 2.
    async fn report_bad_spec(
        &self,
        error: SpecError,
        document: &str,
        rt: &Runtime,
    ) -> anyhow::Result<ExitCode> {
        let rendered = error.render(&format!("issue #{}", self.parent), document);
        rt.annotate(
            AnnotationLevel::Error,
            &rendered,
            &Position {
                title: Some("invalid workflow spec".into()),
                line: error.location.map(|l| l.line),
                col: error.location.map(|l| l.column),
                ..Default::default()
            },
        );
        let comment = format!(
            "{SPEC_ERROR}\n### ❌ The workflow spec in this issue cannot be used\n\n{}\n\n\
             Nothing was created. Fix the spec in the issue body, then run the workflow again \
             (re-add the `{}` label, or `gh workflow run … -f parent_issue={}`).\n",
            fenced("text", &rendered),
            labels::TRIGGER,
            self.parent
        );
        if self.ctx.dry_run {
            println!("would comment on #{}:\n{comment}", self.parent);
        } else {
            let existing = self
                .gh
                .comments(self.parent)
                .await?
                .into_iter()
                .find(|c| c.body.as_deref().is_some_and(|b| b.contains(SPEC_ERROR)));
            match existing {
                Some(c) if c.body.as_deref() == Some(comment.as_str()) => {}
                Some(c) => {
                    self.gh.update_comment(c.id, &comment).await?;
                }
                None => {
                    self.gh.create_comment(self.parent, &comment).await?;
                }
            }
        }
        Err(SpecFailure { rendered, error }.into())
    }

    fn print_dry_run(&self, planned: &Plan, workers: &BTreeMap<String, Worker>, work: &Work) {
        let repo = self.gh.full_name();
        for (name, colour, _) in &work.labels {
            println!("would create label `{name}` (#{colour}) in {repo}");
        }
        for task in &work.create {
            println!(
                "would create issue \"{}\" with labels copilot-worker, parent:{}, status:queued",
                self.title(task),
                self.parent
            );
        }
        if let Some(linked) = &work.linked {
            let unlinked = planned
                .tasks
                .iter()
                .filter(|t| workers.get(&t.id).is_none_or(|w| !linked.contains(&w.id)))
                .count();
            let n = unlinked.min(MAX_SUB_ISSUES.saturating_sub(linked.len()));
            if n > 0 {
                println!(
                    "would link {n} worker issues as sub-issues of #{}",
                    self.parent
                );
            }
        }
        println!("would update the dashboard of #{}", self.parent);
    }
}

fn rows(planned: &Plan, workers: &BTreeMap<String, Worker>) -> Vec<Row> {
    planned
        .tasks
        .iter()
        .filter_map(|t| {
            let w = workers.get(&t.id)?;
            Some(Row {
                issue: w.number,
                task: t.id.clone(),
                title: t.title.clone(),
                state: w.state(),
                pr: None,
                duration: None,
                tokens: None,
            })
        })
        .collect()
}

fn summary(
    parent: u64,
    planned: &Plan,
    matrix: &Matrix,
    created: usize,
    writes: usize,
    dry: bool,
) -> String {
    let mut s = format!(
        "## split: #{parent}{}\n\n{} tasks in {} waves; {created} worker issues created; {} ready to start; {writes} write requests.\n\n",
        if dry { " (dry run)" } else { "" },
        planned.tasks.len(),
        planned.waves.len(),
        matrix.include.len()
    );
    if !matrix.include.is_empty() {
        s.push_str("| issue | task |\n|---|---|\n");
        for e in &matrix.include {
            let issue = e
                .issue
                .map_or_else(|| "(new)".to_string(), |n| format!("#{n}"));
            s.push_str(&format!("| {issue} | `{}` |\n", e.task));
        }
    }
    s
}
