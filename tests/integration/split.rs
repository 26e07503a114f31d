//! `split` through the real binary against the fake GitHub, run as the container runtime runs
//! it: a clean environment, `INPUT_*`, `GITHUB_*`, a temporary `GITHUB_OUTPUT`.

use crate::support::cli::repo_root;
use crate::support::fake_github::{FakeGitHub, Fault};
use crate::support::orchestrate::{Job, TOKEN, command, job};
use parallel_orchestrator::markers::{DASHBOARD_END, DASHBOARD_START, TaskMarker};
use parallel_orchestrator::plan::{Budget, Level, Plan, plan};
use parallel_orchestrator::spec::parse_document;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(name)).unwrap()
}

/// An issue body as a person writes it in the web UI (CRLF), around the spec.
fn body_with(spec: &str) -> String {
    format!(
        "Build the shop.\r\n\r\n```json\r\n{}\r\n```\r\n\r\nThanks!",
        spec.trim().replace('\n', "\r\n")
    )
}

fn planned(spec: &str, level: u32) -> Plan {
    let (s, src) = parse_document(spec).unwrap();
    plan(&s, &src, Level::new(level).unwrap()).unwrap()
}

fn split(fake: &FakeGitHub, parent: u64, extra: &[(&str, &str)]) -> Job {
    let parent = parent.to_string();
    let mut all = vec![
        ("INPUT_PARENT_ISSUE", parent.as_str()),
        ("INPUT_PARALLELISM_LEVEL", "medium"),
    ];
    all.extend_from_slice(extra);
    job(fake, "split", &all)
}

fn split_command(
    fake: &FakeGitHub,
    parent: u64,
    extra: &[(&str, &str)],
) -> (std::process::Command, tempfile::TempDir) {
    let parent = parent.to_string();
    let mut all = vec![("INPUT_PARENT_ISSUE", parent.as_str())];
    all.extend_from_slice(extra);
    command(fake, "split", &all)
}

fn fake_with_parent(spec: &str) -> (FakeGitHub, u64, String) {
    let fake = FakeGitHub::builder().token(TOKEN).build();
    let body = body_with(spec);
    let parent = fake.create_issue(
        "[Parallel] Build E-commerce Platform",
        &body,
        &["agent-task", "parallel-execution"],
    );
    (fake, parent, body)
}

/// Every worker issue of `parent`, with its decoded marker, checked for the interface's labels.
fn workers(fake: &FakeGitHub, parent: u64) -> Vec<(u64, TaskMarker, Vec<String>)> {
    fake.issues_labeled(&["copilot-worker", &format!("parent:{parent}")])
        .into_iter()
        .filter(|i| !i.is_pull_request)
        .map(|i| {
            let marker = TaskMarker::decode(i.body.as_deref().unwrap()).expect("a task marker");
            assert_eq!(marker.parent, parent);
            (i.number, marker, i.labels)
        })
        .collect()
}

fn assert_each_task_once(fake: &FakeGitHub, parent: u64, plan: &Plan) {
    let ws = workers(fake, parent);
    let ids: Vec<&str> = ws.iter().map(|(_, m, _)| m.task.id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "a task has two issues: {ids:?}");
    let expected: BTreeSet<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(unique, expected);
}

#[test]
fn seed_example_1_on_a_fresh_repo() {
    let spec = example("fullstack.json");
    let (fake, parent, body) = fake_with_parent(&spec);
    let plan = planned(&spec, 30);
    let s = split(&fake, parent, &[]);
    assert_eq!(s.ran.code, 0, "{}", s.ran.stderr);

    // One issue per planned task, with the interface's labels and a marker holding the task.
    let ws = workers(&fake, parent);
    assert_eq!(ws.len(), 14);
    assert_each_task_once(&fake, parent, &plan);
    for (number, marker, labels) in &ws {
        let expected: BTreeSet<String> = [
            "copilot-worker",
            &format!("parent:{parent}"),
            "status:queued",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            labels.iter().cloned().collect::<BTreeSet<_>>(),
            expected,
            "#{number}"
        );
        assert_eq!(&marker.task, plan.task(&marker.task.id).unwrap());
        let issue = fake.issue(*number).unwrap();
        assert!(
            issue.title.starts_with(&format!("[parallel #{parent}] ")),
            "{}",
            issue.title
        );
        assert_eq!(
            issue.parent,
            Some(parent),
            "#{number} is a sub-issue of the parent"
        );
    }
    let user = fake.issue(ws[0].0).unwrap();
    assert!(
        user.body
            .unwrap()
            .contains("Task `project-init/setup-project-structure` of the parallel run")
    );

    // The labels exist with colours and descriptions.
    let labels = fake.labels();
    for (name, colour, description) in parallel_orchestrator::labels::all(parent) {
        let l = labels
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("label {name}"));
        assert_eq!(l.color, colour, "{name}");
        assert!(
            l.description.as_deref() == Some(description.as_str()),
            "{name}"
        );
    }

    // The parent: its text untouched byte for byte, the dashboard after it.
    let after = fake.issue(parent).unwrap().body.unwrap();
    assert!(after.starts_with(&body), "the parent's own text changed");
    let dashboard = &after[body.len()..];
    assert!(dashboard.contains(DASHBOARD_START) && dashboard.contains(DASHBOARD_END));
    assert!(dashboard.contains("0 of 14 done (0%)"), "{dashboard}");
    assert!(
        dashboard.contains("| 14 | 0 | 0 | 14 | 0 | 0 |"),
        "{dashboard}"
    );
    assert_eq!(fake.sub_issues(parent).len(), 14);

    // Outputs: every task is ready (no dependencies, 14 < 30).
    let m = s.matrix();
    assert_eq!(m.len(), 14);
    assert_eq!(s.output("worker_count"), "14");
    assert_eq!(s.output("has_work"), "true");
    let user_api = m
        .iter()
        .find(|e| e["task"] == "backend-development/user-api")
        .unwrap();
    let number = ws
        .iter()
        .find(|(_, mk, _)| mk.task.id == "backend-development/user-api")
        .unwrap()
        .0;
    assert_eq!(user_api["issue"], number);
    assert_eq!(user_api["name"], "User API");
    assert!(
        s.summary.contains("14 worker issues created"),
        "{}",
        s.summary
    );

    // Writes: exactly what `plan` budgets for split: 7 labels, 2 per worker, 1 dashboard.
    let budget = Budget::of(&plan, true);
    assert_eq!(fake.writes(), budget.split_writes, "{:#?}", fake.requests());
    assert_eq!(
        fake.count("POST", &format!("/repos/{}/issues", fake.full_name())),
        14 + 14
    );
    fake.assert_openapi_valid();
}

#[test]
fn a_second_split_creates_nothing() {
    let spec = example("fullstack.json");
    let (fake, parent, _) = fake_with_parent(&spec);
    let first = split(&fake, parent, &[]);
    assert_eq!(first.ran.code, 0, "{}", first.ran.stderr);
    let writes = fake.writes();
    let second = split(&fake, parent, &[]);
    assert_eq!(second.ran.code, 0, "{}", second.ran.stderr);
    assert_eq!(
        fake.writes(),
        writes,
        "the second split wrote: {:#?}",
        &fake.requests()[..]
    );
    assert_eq!(workers(&fake, parent).len(), 14);
    assert_eq!(second.output("worker_count"), "14");
    assert_eq!(second.matrix(), first.matrix());
    fake.assert_openapi_valid();
}

#[test]
fn a_split_killed_half_way_completes_on_rerun_without_duplicates() {
    let spec = example("fullstack.json");
    let (fake, parent, _) = fake_with_parent(&spec);
    // Slow enough that the kill lands in the middle of the issue creation.
    fake.set_latency(Duration::from_millis(40));
    let (mut cmd, _dir) = split_command(&fake, parent, &[]);
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while workers(&fake, parent).len() < 5 {
        assert!(Instant::now() < deadline, "split never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // A request in flight when the process died may still land on the server: let it.
    std::thread::sleep(Duration::from_millis(300));
    let partial = workers(&fake, parent).len();
    assert!((5..14).contains(&partial), "killed after {partial} issues");

    fake.set_latency(Duration::ZERO);
    let s = split(&fake, parent, &[]);
    assert_eq!(s.ran.code, 0, "{}", s.ran.stderr);
    assert_each_task_once(&fake, parent, &planned(&spec, 30));
    assert_eq!(fake.sub_issues(parent).len(), 14);
    assert!(
        s.ran.stderr.contains(&format!(
            "{partial} worker issues exist, {} to create",
            14 - partial
        )),
        "{}",
        s.ran.stderr
    );
    fake.assert_openapi_valid();
}

#[test]
fn a_bad_spec_yields_one_comment_and_nothing_else() {
    let spec = "{\n  \"nodes\": [\n    {\"id\": \"api\", \"type\": \"agent\", \"dependencies\": [\"ap\"]}\n  ]\n}";
    let (fake, parent, _) = fake_with_parent(spec);
    let labels_before = fake.labels().len();
    let s = split(&fake, parent, &[]);
    assert_eq!(s.ran.code, 2, "{}", s.ran.stderr);
    assert!(
        s.ran
            .stdout
            .contains("::error title=invalid workflow spec,line=6,col="),
        "{}",
        s.ran.stdout
    );
    let comments = fake.comments(parent);
    assert_eq!(comments.len(), 1);
    let c = &comments[0].body;
    assert!(
        c.contains("The workflow spec in this issue cannot be used"),
        "{c}"
    );
    // Line 6 of the body: two lines of prose and the fence come before the spec.
    assert!(c.contains("--> issue #1:6:"), "{c}");
    assert!(c.contains("`api/main` depends on `ap`"), "{c}");
    assert!(c.contains("did you mean `api`?"), "{c}");
    assert!(workers(&fake, parent).is_empty());
    assert_eq!(fake.labels().len(), labels_before, "no label was created");
    assert_eq!(fake.writes(), 1, "only the comment: {:#?}", fake.requests());
    assert!(s.outputs.is_empty(), "no outputs for a bad spec");

    // Run again: the same one comment, not a second.
    let again = split(&fake, parent, &[]);
    assert_eq!(again.ran.code, 2);
    assert_eq!(fake.comments(parent).len(), 1);
    assert_eq!(fake.writes(), 1);
    fake.assert_openapi_valid();
}

#[test]
fn storms_of_403_429_502_and_lost_answers_are_survived_with_each_issue_once() {
    let spec = example("fullstack.json");
    let (fake, parent, _) = fake_with_parent(&spec);
    let issues = format!("/repos/{}/issues", fake.full_name());
    fake.inject(
        Fault::secondary_rate_limit(1)
            .method("POST")
            .path(&issues)
            .times(3),
    );
    fake.inject(
        Fault::too_many_requests(1)
            .method("POST")
            .path(&issues)
            .times(3),
    );
    fake.inject(Fault::bad_gateway().method("POST").path(&issues).times(3));
    fake.inject(
        Fault::drop_after_apply()
            .method("POST")
            .path(&issues)
            .times(2),
    );
    fake.inject(Fault::drop_connection().method("GET").times(2));
    fake.inject(Fault::service_unavailable().method("PATCH").times(2));
    fake.inject(
        Fault::primary_rate_limit(2)
            .method("POST")
            .path("/sub_issues")
            .times(1),
    );
    let s = split(&fake, parent, &[]);
    assert_eq!(s.ran.code, 0, "{}", s.ran.stderr);
    assert_eq!(fake.pending_faults(), 0, "every injected fault was served");
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{}", s.ran.stderr);
    }
    assert_each_task_once(&fake, parent, &planned(&spec, 30));
    assert_eq!(fake.sub_issues(parent).len(), 14);
    // Every wait was announced with its reason and length.
    for needle in [
        "secondary rate limit (HTTP 403, retry-after 1 s)",
        "HTTP 429",
        "primary rate limit",
        "waiting",
    ] {
        assert!(
            s.ran.stderr.contains(needle),
            "log lacks {needle:?}:\n{}",
            s.ran.stderr
        );
    }
    assert!(
        s.ran.stderr.contains("checking whether the issue for"),
        "{}",
        s.ran.stderr
    );
    fake.assert_openapi_valid();
}

#[test]
fn dry_run_prints_every_write_and_makes_none() {
    let spec = example("fullstack.json");
    let (fake, parent, body) = fake_with_parent(&spec);
    let s = split(&fake, parent, &[("INPUT_DRY_RUN", "true")]);
    assert_eq!(s.ran.code, 0, "{}", s.ran.stderr);
    assert_eq!(fake.writes(), 0);
    assert_eq!(
        s.ran.stdout.matches("would create issue").count(),
        14,
        "{}",
        s.ran.stdout
    );
    assert_eq!(s.ran.stdout.matches("would create label").count(), 7);
    assert!(
        s.ran
            .stdout
            .contains("would link 14 worker issues as sub-issues")
    );
    assert_eq!(fake.issue(parent).unwrap().body.unwrap(), body);
    assert_eq!(s.matrix().len(), 14);
    assert!(s.matrix().iter().all(|e| e["issue"].is_null()));
}

#[test]
fn two_hundred_fifty_tasks_at_massive_start_100_and_link_100() {
    let spec = example("250-tasks.json");
    let (fake, parent, _) = fake_with_parent(&spec);
    fake.set_per_page_default(30);
    let s = split(&fake, parent, &[("INPUT_PARALLELISM_LEVEL", "massive")]);
    assert_eq!(s.ran.code, 0, "{}", s.ran.stderr);
    assert_eq!(workers(&fake, parent).len(), 250);
    assert_eq!(s.matrix().len(), 100);
    assert_eq!(s.output("worker_count"), "250");
    assert_eq!(fake.sub_issues(parent).len(), 100, "GitHub's limit");
    let body = fake.issue(parent).unwrap().body.unwrap();
    assert!(
        body.contains("at most 100 sub-issues to one issue: 150 workers are not sub-issues"),
        "{body}"
    );
    assert!(
        s.ran.stderr.contains("250/250 issues"),
        "progress is logged"
    );
    // 7 labels, 250 creates, 100 sub-issue links (GitHub's limit), 1 dashboard.
    assert_eq!(fake.writes(), 7 + 250 + 100 + 1);
    // Re-run: one paginated list finds all 250 (3 pages), nothing is created.
    let writes = fake.writes();
    let again = split(&fake, parent, &[("INPUT_PARALLELISM_LEVEL", "massive")]);
    assert_eq!(again.ran.code, 0, "{}", again.ran.stderr);
    assert_eq!(fake.writes(), writes);
    fake.assert_openapi_valid();
}

#[test]
fn queued_tasks_wait_for_their_dependencies() {
    let spec = example("staged-release.yaml");
    let fake = FakeGitHub::builder().token(TOKEN).build();
    let parent = fake.create_issue(
        "Release",
        &format!("```yaml\n{spec}\n```\n"),
        &["parallel-execution"],
    );
    let s = split(&fake, parent, &[]);
    assert_eq!(s.ran.code, 0, "{}", s.ran.stderr);
    let tasks: Vec<String> = s
        .matrix()
        .iter()
        .map(|e| e["task"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tasks,
        [
            "design/write-the-architecture-overview",
            "design/define-the-command-line-interface"
        ]
    );
    assert_eq!(s.output("worker_count"), "7");

    // Once both design tasks are completed, split offers the next stage.
    for (number, marker, _) in workers(&fake, parent) {
        if marker.task.node == "design" {
            fake.set_issue_labels(
                number,
                &[
                    "copilot-worker",
                    &format!("parent:{parent}"),
                    "status:completed",
                ],
            );
        }
    }
    let s = split(&fake, parent, &[]);
    let tasks: Vec<String> = s
        .matrix()
        .iter()
        .map(|e| e["task"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tasks, ["build/core"]);
    fake.assert_openapi_valid();
}

#[test]
fn the_parent_comes_from_the_event_payload() {
    let (fake, parent, _) = fake_with_parent(&example("testing.json"));
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        format!(r#"{{"action":"labeled","issue":{{"number":{parent}}}}}"#),
    )
    .unwrap();
    let s = split(
        &fake,
        parent,
        &[
            ("INPUT_PARENT_ISSUE", ""),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
        ],
    );
    assert_eq!(s.ran.code, 0, "{}", s.ran.stderr);
    assert_eq!(workers(&fake, parent).len(), 5);
}

#[test]
fn missing_token_repository_or_parent_is_bad_input() {
    let (fake, parent, _) = fake_with_parent(&example("testing.json"));
    let s = split(&fake, parent, &[("INPUT_GITHUB_TOKEN", "")]);
    assert_eq!(s.ran.code, 2);
    assert!(s.ran.stdout.contains("no GitHub token"), "{}", s.ran.stdout);
    let s = split(&fake, parent, &[("GITHUB_REPOSITORY", "")]);
    assert_eq!(s.ran.code, 2);
    let s = split(&fake, parent, &[("INPUT_PARENT_ISSUE", "")]);
    assert_eq!(s.ran.code, 2);
    assert!(s.ran.stdout.contains("no parent issue"), "{}", s.ran.stdout);
    let s = split(&fake, 999, &[]);
    assert_eq!(s.ran.code, 2);
    assert!(
        s.ran.stdout.contains("parent issue #999 not found"),
        "{}",
        s.ran.stdout
    );
    assert_eq!(fake.writes(), 0);
}

#[test]
fn a_primary_limit_far_from_its_reset_stops_with_a_clear_message() {
    let (fake, parent, _) = fake_with_parent(&example("testing.json"));
    // Reset in an hour: more than the client waits (10 minutes, scaled like every wait).
    fake.inject(Fault::primary_rate_limit(3600).times(50));
    let s = split(&fake, parent, &[("PARALLEL_ORCHESTRATOR_WAIT_SCALE", "1")]);
    assert_eq!(s.ran.code, 1, "{}", s.ran.stderr);
    assert!(
        s.ran
            .stdout
            .contains("rate limit for this token is used up until")
            && s.ran.stdout.contains("(in 60 min)"),
        "{}",
        s.ran.stdout
    );
    assert!(workers(&fake, parent).is_empty());
    assert_eq!(fake.writes(), 0);
}

#[test]
fn paced_writes_are_announced_with_their_length() {
    let (fake, parent, _) = fake_with_parent(&example("testing.json"));
    let s = split(
        &fake,
        parent,
        &[("PARALLEL_ORCHESTRATOR_WRITE_INTERVAL_MS", "20")],
    );
    assert_eq!(s.ran.code, 0, "{}", s.ran.stderr);
    assert!(
        s.ran.stderr.contains("writes are paced at one per 20 ms (GitHub allows 80 content-creating requests a minute): 5 issues take at least 100 ms"),
        "{}",
        s.ran.stderr
    );
    assert!(s.ran.stderr.contains("3/5 issues: #"), "{}", s.ran.stderr);
}
