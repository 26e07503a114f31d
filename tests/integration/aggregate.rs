//! `aggregate` through the real binary: the dashboard, blocked chains, waves that schedule
//! themselves, the integration branch, and whole runs driven as the workflow drives them.

use crate::support::cli::repo_root;
use crate::support::fake_github::FakeGitHub;
use crate::support::fake_llm::{FakeLlm, Reply};
use crate::support::orchestrate::{Job, TOKEN, job};
use insta::assert_snapshot;
use parallel_orchestrator::commands::worker::WorkerReport;
use parallel_orchestrator::markers::{DASHBOARD_END, DASHBOARD_START, TaskMarker};

const WORKFLOW_REF: &str =
    "owner/repo/.github/workflows/massive-parallel-copilot.yml@refs/heads/main";

fn parent_with(gh: &FakeGitHub, spec: &str) -> (u64, String) {
    let body = format!(
        "Goal of the run.\r\n\r\n```json\r\n{}\r\n```\r\nKeep this line.\r\n",
        spec.trim()
    );
    (
        gh.create_issue("Parent", &body, &["parallel-execution"]),
        body,
    )
}

fn split(gh: &FakeGitHub, parent: u64, level: &str) -> Job {
    let j = job(
        gh,
        "split",
        &[
            ("INPUT_PARENT_ISSUE", &parent.to_string()),
            ("INPUT_PARALLELISM_LEVEL", level),
        ],
    );
    assert_eq!(j.ran.code, 0, "{}", j.ran.stderr);
    j
}

fn aggregate(gh: &FakeGitHub, parent: u64, extra: &[(&str, &str)]) -> Job {
    let parent = parent.to_string();
    let mut env = vec![
        ("INPUT_PARENT_ISSUE", parent.as_str()),
        ("INPUT_PARALLELISM_LEVEL", "massive"),
        ("GITHUB_WORKFLOW_REF", WORKFLOW_REF),
    ];
    env.extend_from_slice(extra);
    job(gh, "aggregate", &env)
}

fn worker_issues(gh: &FakeGitHub, parent: u64) -> Vec<(u64, TaskMarker)> {
    let mut v: Vec<(u64, TaskMarker)> = gh
        .issues_labeled(&["copilot-worker", &format!("parent:{parent}")])
        .into_iter()
        .map(|i| {
            (
                i.number,
                TaskMarker::decode(i.body.as_deref().unwrap()).unwrap(),
            )
        })
        .collect();
    v.sort_by_key(|(n, _)| *n);
    v
}

fn set_state(gh: &FakeGitHub, parent: u64, issue: u64, state: &str) {
    gh.set_issue_labels(
        issue,
        &[
            "copilot-worker",
            &format!("parent:{parent}"),
            &format!("status:{state}"),
        ],
    );
}

/// Completes a worker as the worker job would, without the model: a branch with one file
/// and a PR that records its duration and tokens.
fn complete(gh: &FakeGitHub, parent: u64, issue: u64, marker: &TaskMarker, i: u64) {
    let branch = format!("parallel/{parent}/{}", marker.task.slug());
    let path = format!("gen/{}.txt", marker.task.slug());
    gh.commit_files(&branch, &[(&path, Some("done\n"))], "work");
    let report = WorkerReport {
        issue,
        task: marker.task.id.clone(),
        duration_secs: 60 + i % 60,
        prompt_tokens: 1000 + i,
        completion_tokens: 500,
        total_tokens: 1500 + i,
        model: "test/model".into(),
        files: 1,
        paths: vec![path],
    };
    gh.create_pull(
        &branch,
        "main",
        &format!("task {issue}"),
        &format!("Closes #{issue}\n\n{}", report.encode()),
    );
    set_state(gh, parent, issue, "completed");
}

/// The dashboard region, with the times that change from run to run masked.
fn dashboard_of(gh: &FakeGitHub, parent: u64) -> String {
    let body = gh.issue(parent).unwrap().body.unwrap();
    let start = body.find(DASHBOARD_START).unwrap();
    let end = body.find(DASHBOARD_END).unwrap() + DASHBOARD_END.len();
    body[start..end]
        .lines()
        .map(|l| {
            if l.starts_with("elapsed ") || l.starts_with("ETA ") {
                "elapsed [masked] · ETA [masked]".to_string()
            } else if l.starts_with("<!-- parallel-orchestrator:state ") {
                "<!-- parallel-orchestrator:state [masked] -->".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn hundred() -> String {
    let comps: Vec<String> = (1..=100).map(|i| format!("\"Part {i:03}\"")).collect();
    format!(
        r#"{{"nodes":[{{"id":"parts","type":"agent","config":{{"components":[{}]}}}}]}}"#,
        comps.join(",")
    )
}

#[test]
fn dashboard_at_0_37_and_100_of_100() {
    let gh = FakeGitHub::builder().token(TOKEN).build();
    let (parent, original) = parent_with(&gh, &hundred());
    split(&gh, parent, "massive");
    let ws = worker_issues(&gh, parent);
    assert_eq!(ws.len(), 100);

    let a = aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")]);
    assert_eq!(a.ran.code, 0, "{}", a.ran.stderr);
    assert_eq!(a.output("progress"), "0");
    assert_eq!(a.output("queued"), "100");
    assert_snapshot!("dashboard_0_of_100", dashboard_of(&gh, parent));

    // 37 done, 30 running, the rest queued.
    for (i, (n, m)) in ws.iter().enumerate() {
        if i < 37 {
            complete(&gh, parent, *n, m, i as u64);
        } else if i < 67 {
            set_state(&gh, parent, *n, "running");
        }
    }
    // Nothing ran after split, so the first aggregate started a wave.
    assert_eq!(gh.dispatches().len(), 1);
    let reads_before = gh.requests().len();
    let writes_before = gh.writes();
    let a = aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")]);
    assert_eq!(a.ran.code, 0, "{}", a.ran.stderr);
    let requests = gh.requests().len() - reads_before;
    let writes = gh.writes() - writes_before;
    eprintln!(
        "aggregate with 100 workers (37 done, no integration): {} reads, {writes} writes",
        requests - writes
    );
    assert_eq!(a.output("completed"), "37");
    assert_eq!(a.output("running"), "30");
    assert_eq!(a.output("progress"), "37");
    assert_eq!(a.output("all_done"), "false");
    assert_eq!(gh.dispatches().len(), 1, "workers are running: no new wave");
    let board = dashboard_of(&gh, parent);
    assert!(board.contains("37 of 100 done (37%)"));
    assert_snapshot!("dashboard_37_of_100", board);
    // Reads: the parent twice (gather, and right before the edit), one page of 100 workers,
    // one page of pull requests. Writes: the one edit.
    assert_eq!((requests - writes, writes), (4, 1));

    for (i, (n, m)) in ws.iter().enumerate().skip(37) {
        complete(&gh, parent, *n, m, i as u64);
    }
    let a = aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")]);
    assert_eq!(a.ran.code, 0, "{}", a.ran.stderr);
    assert_eq!(a.output("progress"), "100");
    assert_eq!(a.output("all_done"), "true");
    assert_snapshot!("dashboard_100_of_100", dashboard_of(&gh, parent));
    assert!(
        a.summary.contains("100 of 100 done"),
        "the job summary has the table"
    );

    // The parent's own text, byte for byte, before and after the region.
    let body = gh.issue(parent).unwrap().body.unwrap();
    assert!(body.starts_with(&original));
    assert!(body.ends_with(&format!("{DASHBOARD_END}\n")));
    gh.assert_openapi_valid();
}

#[test]
fn text_around_the_region_is_never_touched() {
    let gh = FakeGitHub::builder().token(TOKEN).build();
    let (parent, _) = parent_with(&gh, r#"{"tasks":[{"id":"a"}]}"#);
    split(&gh, parent, "small");
    // A person edits above and below the dashboard.
    let body = gh.issue(parent).unwrap().body.unwrap();
    let edited = format!("Edited on top.\r\n{body}Added below.\r\n");
    gh.set_issue_body(parent, &edited);
    let (n, m) = worker_issues(&gh, parent).remove(0);
    complete(&gh, parent, n, &m, 1);
    assert_eq!(
        aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")])
            .ran
            .code,
        0
    );
    let after = gh.issue(parent).unwrap().body.unwrap();
    let start = after.find(DASHBOARD_START).unwrap();
    let end = after.find(DASHBOARD_END).unwrap();
    assert_eq!(
        &after[..start],
        &edited[..edited.find(DASHBOARD_START).unwrap()]
    );
    assert_eq!(
        &after[end..],
        &edited[edited.find(DASHBOARD_END).unwrap()..]
    );
    assert!(after[start..end].contains("1 of 1 done (100%)"));
}

#[test]
fn a_failure_blocks_its_chain_and_a_retry_frees_it() {
    let gh = FakeGitHub::builder().token(TOKEN).build();
    let spec = r#"{"tasks":[{"id":"a"},{"id":"b","dependencies":["a"]},{"id":"c","dependencies":["b"]},{"id":"d"}]}"#;
    let (parent, _) = parent_with(&gh, spec);
    split(&gh, parent, "small");
    let ws = worker_issues(&gh, parent);
    let issue = |id: &str| ws.iter().find(|(_, m)| m.task.id == id).unwrap().0;
    set_state(&gh, parent, issue("tasks/a"), "failed");
    complete(&gh, parent, issue("tasks/d"), &ws[3].1, 3);

    let a = aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")]);
    assert_eq!(
        a.ran.code, 1,
        "a failed worker fails the verdict: {}",
        a.ran.stderr
    );
    assert_eq!(
        (
            a.output("failed"),
            a.output("blocked"),
            a.output("completed")
        ),
        ("1", "2", "1")
    );
    for id in ["tasks/b", "tasks/c"] {
        assert!(
            gh.issue(issue(id))
                .unwrap()
                .labels
                .contains(&"status:blocked".to_string()),
            "{id}"
        );
    }
    assert!(
        gh.comments(issue("tasks/b"))[0]
            .body
            .contains("`tasks/a` failed")
    );
    assert!(
        gh.comments(issue("tasks/c"))[0]
            .body
            .contains("`tasks/b` is blocked")
    );
    assert!(gh.dispatches().is_empty(), "nothing can run");
    let board = dashboard_of(&gh, parent);
    assert!(
        board.contains("nothing more can run: 3 task(s) failed or are blocked"),
        "{board}"
    );

    // Everything was written before the exit code said "failed"; a second run changes nothing.
    let writes = gh.writes();
    assert_eq!(
        aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")])
            .ran
            .code,
        1
    );
    assert_eq!(gh.writes(), writes, "blocking is not repeated");

    // A person re-queues the failure: the chain is freed and the next wave starts.
    set_state(&gh, parent, issue("tasks/a"), "queued");
    let a = aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")]);
    assert_eq!(a.ran.code, 0, "{}", a.ran.stderr);
    assert_eq!(a.output("blocked"), "0");
    assert_eq!(gh.dispatches().len(), 1);
    gh.assert_openapi_valid();
}

#[test]
fn the_next_wave_is_dispatched_exactly_once_per_state() {
    let gh = FakeGitHub::builder().token(TOKEN).build();
    let spec =
        std::fs::read_to_string(repo_root().join("examples/priorities-and-dependencies.json"))
            .unwrap();
    let (parent, _) = parent_with(&gh, &spec);
    split(&gh, parent, "small");
    let ws = worker_issues(&gh, parent);

    // The first task runs: no dispatch while it runs.
    set_state(&gh, parent, ws[0].0, "running");
    assert_eq!(
        aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")])
            .ran
            .code,
        0
    );
    assert!(gh.dispatches().is_empty());

    // It completes: `api` is ready, nothing runs: dispatch, once.
    complete(&gh, parent, ws[0].0, &ws[0].1, 0);
    let a = aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")]);
    assert_eq!(a.ran.code, 0, "{}", a.ran.stderr);
    let d = gh.dispatches();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].workflow, "massive-parallel-copilot.yml");
    assert_eq!(d[0].git_ref, "refs/heads/main");
    assert_eq!(d[0].inputs["parent_issue"], parent.to_string());
    assert_eq!(d[0].inputs["parallelism_level"], "100");
    assert!(dashboard_of(&gh, parent).contains("the next wave (1 tasks) has been started"));

    // The same state again (the dispatched run has not started yet): no second dispatch.
    let a = aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")]);
    assert_eq!(a.ran.code, 0);
    assert_eq!(gh.dispatches().len(), 1, "never twice for the same state");
    assert!(dashboard_of(&gh, parent).contains("the last wave made no progress"));

    // Progress (api completes): the next wave is started.
    complete(&gh, parent, ws[1].0, &ws[1].1, 1);
    assert_eq!(
        aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")])
            .ran
            .code,
        0
    );
    assert_eq!(gh.dispatches().len(), 2);

    // Without GITHUB_WORKFLOW_REF (run by hand), it says what to do instead of dispatching.
    complete(&gh, parent, ws[2].0, &ws[2].1, 2);
    let a = aggregate(
        &gh,
        parent,
        &[("INPUT_INTEGRATE", "false"), ("GITHUB_WORKFLOW_REF", "")],
    );
    assert_eq!(a.ran.code, 0);
    assert_eq!(gh.dispatches().len(), 2);
    assert!(dashboard_of(&gh, parent).contains("run the workflow again"));
    gh.assert_openapi_valid();
}

#[test]
fn the_integration_branch_reports_two_workers_that_wrote_the_same_file() {
    let gh = FakeGitHub::builder().token(TOKEN).build();
    gh.seed_files(&[("README.md", "# Shop\n")]);
    let (parent, _) = parent_with(
        &gh,
        r#"{"tasks":[{"id":"one"},{"id":"two"},{"id":"three"}]}"#,
    );
    split(&gh, parent, "small");
    let llm = FakeLlm::start();
    let ws = worker_issues(&gh, parent);
    let answers = [
        Reply::answer(
            "one",
            &[("README.md", "# Shop\nOne.\n"), ("one.txt", "1\n")],
        ),
        Reply::answer(
            "two",
            &[("README.md", "# Shop\nTwo.\n"), ("two.txt", "2\n")],
        ),
        Reply::answer("three", &[("three.txt", "3\n")]),
    ];
    for ((n, _), answer) in ws.iter().zip(answers) {
        llm.push(answer);
        let w = job(
            &gh,
            "worker",
            &[
                ("INPUT_WORKER_ISSUE", &n.to_string()),
                ("INPUT_LLM_BASE_URL", &llm.url()),
            ],
        );
        assert_eq!(w.ran.code, 0, "{}", w.ran.stderr);
    }
    let a = aggregate(&gh, parent, &[]);
    assert_eq!(a.ran.code, 0, "{}", a.ran.stderr);

    let integration = "parallel/1/integration";
    let files = gh
        .files(integration)
        .expect("the integration branch exists");
    assert_eq!(
        files.get("README.md").map(String::as_str),
        Some("# Shop\nOne.\n"),
        "the first worker merged"
    );
    assert!(files.contains_key("one.txt") && files.contains_key("three.txt"));
    assert!(
        !files.contains_key("two.txt"),
        "the conflicting worker is not merged"
    );
    let merges = gh.merges();
    assert_eq!(merges.iter().filter(|m| m.outcome == "conflict").count(), 1);

    let pulls = gh.pulls();
    let pr = pulls
        .iter()
        .find(|p| p.head == integration)
        .expect("one PR for the integration branch");
    let body = pr.body.clone().unwrap();
    let (one, two) = (ws[0].0, ws[1].0);
    assert!(
        body.contains(&format!("| `README.md` | #{one}, #{two} |")),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "Not merged (conflicts with what was merged before): #{two}"
        )),
        "{body}"
    );
    assert!(
        pr.title.contains("integration: 2 of 3 tasks"),
        "{}",
        pr.title
    );
    let board = dashboard_of(&gh, parent);
    assert!(
        board.contains(&format!("| `README.md` | #{one}, #{two} |")),
        "{board}"
    );
    assert!(board.contains(&format!("[#{}]", pr.number)), "{board}");

    // Another round merges nothing new and repeats no merge.
    let merges_before = gh.merges().len();
    assert_eq!(aggregate(&gh, parent, &[]).ran.code, 0);
    assert_eq!(gh.merges().len(), merges_before);
    assert_eq!(
        gh.pulls().iter().filter(|p| p.head == integration).count(),
        1
    );
    gh.assert_openapi_valid();
}

/// Drives a whole run as the workflow does: split emits a matrix, a worker job runs for each
/// entry, aggregate ends the run and dispatches the next, until it says all is done.
#[test]
fn two_hundred_fifty_tasks_at_level_100_reach_100_percent_by_themselves() {
    let gh = FakeGitHub::builder().token(TOKEN).build();
    let spec = std::fs::read_to_string(repo_root().join("examples/250-tasks.json")).unwrap();
    let (parent, _) = parent_with(&gh, &spec);
    let llm = FakeLlm::start();
    llm.set_default(Reply::answer("done", &[("gen/out.txt", "generated\n")]));
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 5, "the run does not converge");
        let s = split(&gh, parent, "massive");
        let matrix = s.matrix();
        assert!(matrix.len() <= 100, "never more than the level at once");
        // The matrix jobs, four at a time as a runner pool would run them.
        let issues: Vec<u64> = matrix
            .iter()
            .map(|e| e["issue"].as_u64().unwrap())
            .collect();
        std::thread::scope(|scope| {
            for chunk in issues.chunks(issues.len().div_ceil(4).max(1)) {
                let (gh, llm) = (&gh, &llm);
                scope.spawn(move || {
                    for n in chunk {
                        let w = job(
                            gh,
                            "worker",
                            &[
                                ("INPUT_WORKER_ISSUE", &n.to_string()),
                                ("INPUT_LLM_BASE_URL", &llm.url()),
                            ],
                        );
                        assert_eq!(w.ran.code, 0, "worker #{n}: {}", w.ran.stderr);
                    }
                });
            }
        });
        let dispatches = gh.dispatches().len();
        let a = aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")]);
        assert_eq!(a.ran.code, 0, "{}", a.ran.stderr);
        if a.output("all_done") == "true" {
            assert_eq!(a.output("progress"), "100");
            assert_eq!(a.output("completed"), "250");
            assert_eq!(
                gh.dispatches().len(),
                dispatches,
                "no dispatch after the last wave"
            );
            break;
        }
        assert_eq!(
            gh.dispatches().len(),
            dispatches + 1,
            "each unfinished round starts the next"
        );
    }
    assert_eq!(rounds, 3, "100 + 100 + 50");
    assert_eq!(gh.pulls().len(), 250);
    assert!(dashboard_of(&gh, parent).contains("250 of 250 done (100%)"));
    gh.assert_openapi_valid();
}

/// For the notes: the requests aggregate makes for 100 completed workers with the integration
/// branch on (first round: 100 merges), and a second round (nothing new to merge).
#[test]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
fn measure_aggregate_for_100_workers() {
    let gh = FakeGitHub::builder().token(TOKEN).build();
    let (parent, _) = parent_with(&gh, &hundred());
    split(&gh, parent, "massive");
    for (i, (n, m)) in worker_issues(&gh, parent).iter().enumerate() {
        complete(&gh, parent, *n, m, i as u64);
    }
    for round in 1..=2 {
        let (before, writes_before) = (gh.requests().len(), gh.writes());
        let a = aggregate(&gh, parent, &[]);
        assert_eq!(a.ran.code, 0, "{}", a.ran.stderr);
        let (all, writes) = (gh.requests().len() - before, gh.writes() - writes_before);
        println!(
            "aggregate round {round}, 100 workers, integration on: {} reads, {writes} writes",
            all - writes
        );
    }
    let (before, writes_before) = (gh.requests().len(), gh.writes());
    assert_eq!(
        aggregate(&gh, parent, &[("INPUT_INTEGRATE", "false")])
            .ran
            .code,
        0
    );
    let (all, writes) = (gh.requests().len() - before, gh.writes() - writes_before);
    println!(
        "aggregate, 100 workers, integration off: {} reads, {writes} writes",
        all - writes
    );
}

#[test]
fn aggregate_dry_run_writes_nothing() {
    let gh = FakeGitHub::builder().token(TOKEN).build();
    let (parent, _) = parent_with(
        &gh,
        r#"{"tasks":[{"id":"a"},{"id":"b","dependencies":["a"]}]}"#,
    );
    split(&gh, parent, "small");
    let ws = worker_issues(&gh, parent);
    set_state(&gh, parent, ws[0].0, "failed");
    let writes = gh.writes();
    let a = aggregate(&gh, parent, &[("INPUT_DRY_RUN", "true")]);
    assert_eq!(a.ran.code, 0, "a dry run exits 0: {}", a.ran.stderr);
    assert_eq!(a.output("blocked"), "1", "what it would do is reported");
    assert_eq!(gh.writes(), writes);
    assert!(
        a.ran.stdout.contains("would update the dashboard"),
        "{}",
        a.ran.stdout
    );
}
