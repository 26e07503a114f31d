//! `plan`: what a spec expands to, offline — tasks, waves, the first matrix and the budget.

use crate::cli::PlanArgs;
use crate::errors::BadInput;
use crate::plan::{Budget, Matrix, MatrixEntry, Plan, cost, plan};
use crate::spec::{SpecError, parse_document};
use anyhow::Context;
use serde::Serialize;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

pub fn run(args: &PlanArgs, stdout: &mut impl Write) -> anyhow::Result<ExitCode> {
    let (origin, document) = read_spec(args)?;
    let planned = parse_document(&document)
        .and_then(|(spec, source)| plan(&spec, &source, args.level.parallelism_level));
    let planned = match planned {
        Ok(p) => p,
        Err(e) => {
            return Err(SpecFailure {
                rendered: e.render(&origin, &document),
                error: e,
            }
            .into());
        }
    };
    let budget = Budget::of(&planned, args.integrate.integrate);
    if args.json {
        let report = JsonReport {
            level: planned.level.get(),
            matrix: first_matrix(&planned),
            plan: &planned,
            budget: &budget,
        };
        serde_json::to_writer_pretty(&mut *stdout, &report)?;
        writeln!(stdout)?;
    } else {
        stdout.write_all(
            render_text(&planned, &budget, &origin, args.integrate.integrate).as_bytes(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A spec error, rendered against its document for the terminal.
#[derive(Debug, thiserror::Error)]
#[error("{rendered}")]
pub struct SpecFailure {
    pub rendered: String,
    pub error: SpecError,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    level: usize,
    matrix: Matrix,
    plan: &'a Plan,
    budget: &'a Budget,
}

fn read_spec(args: &PlanArgs) -> anyhow::Result<(String, String)> {
    match args.spec.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            let bytes = std::fs::read(path)
                .map_err(|e| BadInput(format!("cannot read the spec {}: {e}", path.display())))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| BadInput(format!("{} is not UTF-8 text", path.display())))?;
            Ok((path.display().to_string(), text))
        }
        _ => {
            let mut stdin = std::io::stdin();
            if args.spec.is_none() && stdin.is_terminal() {
                return Err(BadInput(
                    "no spec given: pass a file (`plan examples/fullstack.json`) or pipe one into stdin".into(),
                )
                .into());
            }
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .context("cannot read the spec from stdin")?;
            Ok(("<stdin>".to_string(), text))
        }
    }
}

/// What split would emit now for a fresh parent: the first wave, without issue numbers.
pub fn first_matrix(plan: &Plan) -> Matrix {
    let include = plan
        .waves
        .first()
        .into_iter()
        .flatten()
        .filter_map(|id| plan.task(id))
        .map(|t| MatrixEntry::new(t, None))
        .collect();
    Matrix { include }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn render_text(plan: &Plan, budget: &Budget, origin: &str, integrate: bool) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{origin}: {} in {} at parallelism level {}\n",
        plural(plan.tasks.len(), "task", "tasks"),
        plural(plan.waves.len(), "wave", "waves"),
        plan.level
    ));
    let id_width = plan
        .tasks
        .iter()
        .map(|t| t.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    for (i, wave) in plan.waves.iter().enumerate() {
        out.push_str(&format!(
            "\nWave {} ({})\n",
            i + 1,
            plural(wave.len(), "task", "tasks")
        ));
        out.push_str(&format!(
            "  {:id_width$}  {:8}  {:<30}  DEPENDS ON\n",
            "TASK", "PRIORITY", "TITLE"
        ));
        for id in wave {
            let t = plan.task(id).expect("wave ids are tasks");
            let deps = if t.dependencies.is_empty() {
                "-".to_string()
            } else if t.dependencies.len() > 3 {
                format!(
                    "{}, … ({} tasks)",
                    t.dependencies[..2].join(", "),
                    t.dependencies.len()
                )
            } else {
                t.dependencies.join(", ")
            };
            let title: String = if t.title.chars().count() > 30 {
                t.title.chars().take(29).chain(['…']).collect()
            } else {
                t.title.clone()
            };
            out.push_str(&format!(
                "  {:id_width$}  {:8}  {:<30}  {deps}\n",
                t.id,
                t.priority.to_string(),
                title
            ));
        }
    }
    out.push_str(&format!(
        "\nGitHub budget (write requests{}):\n",
        if integrate {
            ", integration branch on"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "  split      {:>6}  labels, {} per worker issue (create + sub-issue link, the first 100), dashboard per wave\n",
        budget.split_writes,
        cost::SPLIT_PER_TASK
    ));
    out.push_str(&format!(
        "  workers    {:>6}  {} per worker: status labels, tree, commit, ref, pull request\n",
        budget.worker_writes,
        cost::WORKER_PER_TASK
    ));
    out.push_str(&format!(
        "  aggregate  {:>6}  per wave: dashboard, next-wave dispatch, integration ref and PR{}\n",
        budget.aggregate_writes,
        if integrate {
            "; one merge per worker"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "  total      {:>6}  at least {} if every write counts against GitHub's content-creating limits ({} a minute, {} an hour)\n",
        budget.total_writes,
        plural(budget.min_minutes as usize, "minute", "minutes"),
        cost::PER_MINUTE,
        cost::PER_HOUR
    ));
    out.push_str(&format!(
        "  requests   {:>6}  reads and writes together
",
        budget.total_requests
    ));
    if budget.total_requests > cost::GITHUB_TOKEN_PER_HOUR {
        out.push_str(&format!(
            "
note: a job's GITHUB_TOKEN may make {} requests an hour per repository on github.com (15,000 on \
             Enterprise Cloud); this run needs about {}, so it will wait for the hourly reset. A GitHub App \
             token or a personal access token (5,000 an hour) avoids that.
",
            cost::GITHUB_TOKEN_PER_HOUR,
            budget.total_requests
        ));
    }
    out
}
