//! `plan` and the command line, through the real binary.

use crate::support::cli::{Ran, example, orchestrator, run};
use insta::assert_snapshot;
use serde_json::Value;

fn plan(args: &[&str]) -> Ran {
    run(orchestrator().arg("plan").args(args))
}

fn plan_stdin(stdin: &str, args: &[&str]) -> Ran {
    run(orchestrator()
        .arg("plan")
        .arg("-")
        .args(args)
        .write_stdin(stdin))
}

fn json_plan(file: &str, args: &[&str]) -> Value {
    let ran = plan(&[&[example(file).as_str(), "--json"], args].concat());
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    serde_json::from_str(&ran.stdout).expect("--json prints JSON")
}

// ---- the seed's examples ----------------------------------------------------------------

#[test]
fn seed_example_1_fullstack() {
    let ran = plan(&[&example("fullstack.json")]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // 4 subTasks + 5 backend components + 5 frontend components, no dependencies: one wave.
    assert!(
        ran.stdout
            .starts_with("examples/fullstack.json: 14 tasks in 1 wave at parallelism level 30")
    );
    assert_snapshot!("plan_fullstack", ran.stdout);
}

#[test]
fn seed_example_2_data_pipeline() {
    let ran = plan(&[&example("data-pipeline.json")]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // 5 sources + 5 parallel operations.
    assert!(ran.stdout.contains("10 tasks in 1 wave"));
    assert_snapshot!("plan_data_pipeline", ran.stdout);
}

#[test]
fn seed_example_3_testing() {
    let ran = plan(&[&example("testing.json"), "--parallelism-level", "small"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout
            .contains("5 tasks in 1 wave at parallelism level 10")
    );
    assert_snapshot!("plan_testing", ran.stdout);
}

#[test]
fn issue_body_in_markdown_plans_like_a_file() {
    let ran = plan(&[&example("issue-body.md")]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("6 tasks in 1 wave"));
    assert!(ran.stdout.contains("backend/auth"));
    assert!(ran.stdout.contains("frontend/routing"));
}

#[test]
fn yaml_chain_of_stages_waits_for_each_stage() {
    let v = json_plan("staged-release.yaml", &["--parallelism-level", "2"]);
    let waves: Vec<Vec<&str>> = v["plan"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        waves,
        vec![
            vec![
                "design/write-the-architecture-overview",
                "design/define-the-command-line-interface"
            ],
            vec!["build/core"],
            vec!["build/cli"],
            vec!["verify/unit-tests", "verify/integration-tests"],
            vec!["docs/write-the-user-guide"],
        ]
    );
}

#[test]
fn two_hundred_fifty_tasks_at_massive_make_three_waves() {
    let v = json_plan("250-tasks.json", &["--parallelism-level", "massive"]);
    let sizes: Vec<usize> = v["plan"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(v["matrix"]["include"].as_array().unwrap().len(), 100);
    assert_eq!(v["budget"]["tasks"], 250);
    assert_eq!(v["budget"]["waves"], 3);
    // Over a job token's hourly allowance: the text plan says so.
    assert!(v["budget"]["total_requests"].as_u64().unwrap() > 1000);
    let text = plan(&[&example("250-tasks.json"), "--parallelism-level", "massive"]);
    assert!(
        text.stdout
            .contains("note: a job's GITHUB_TOKEN may make 1000 requests an hour"),
        "{}",
        text.stdout
    );
    let small = plan(&[&example("testing.json")]);
    assert!(!small.stdout.contains("note:"));
}

#[test]
fn json_matrix_is_what_split_emits_for_the_first_wave() {
    let v = json_plan("fullstack.json", &[]);
    assert_eq!(v["level"], 30);
    let include = v["matrix"]["include"].as_array().unwrap();
    assert_eq!(include.len(), 14);
    assert_eq!(
        include[4],
        serde_json::json!({"issue": null, "task": "backend-development/user-api", "name": "User API", "runner": "ubuntu-latest", "timeout": 30})
    );
    assert_eq!(v["plan"]["tasks"].as_array().unwrap().len(), 14);
    let budget = &v["budget"];
    assert_eq!(
        budget["total_writes"].as_u64().unwrap(),
        budget["split_writes"].as_u64().unwrap()
            + budget["worker_writes"].as_u64().unwrap()
            + budget["aggregate_writes"].as_u64().unwrap()
    );
}

#[test]
fn priorities_put_critical_work_first() {
    let v = json_plan(
        "priorities-and-dependencies.json",
        &["--parallelism-level", "1"],
    );
    let order: Vec<&str> = v["plan"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w[0].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["tasks/schema", "tasks/api", "tasks/admin", "tasks/export"]
    );
}

// ---- inputs: flag, INPUT_* variable, default ----------------------------------------------

#[test]
fn level_comes_from_flag_then_input_variable_then_default() {
    let level = |ran: Ran| -> u64 {
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        serde_json::from_str::<Value>(&ran.stdout).unwrap()["level"]
            .as_u64()
            .unwrap()
    };
    let f = example("testing.json");
    assert_eq!(level(run(orchestrator().args(["plan", &f, "--json"]))), 30);
    assert_eq!(
        level(run(orchestrator()
            .args(["plan", &f, "--json"])
            .env("INPUT_PARALLELISM_LEVEL", "large"))),
        60
    );
    // The runner sets every declared input, empty when not given: empty means unset.
    assert_eq!(
        level(run(orchestrator()
            .args(["plan", &f, "--json"])
            .env("INPUT_PARALLELISM_LEVEL", ""))),
        30
    );
    assert_eq!(
        level(run(orchestrator()
            .args(["plan", &f, "--json", "--parallelism-level", "7"])
            .env("INPUT_PARALLELISM_LEVEL", "large"))),
        7
    );
}

#[test]
fn mode_comes_from_input_mode_without_a_subcommand() {
    let spec =
        std::fs::read_to_string(crate::support::cli::repo_root().join("examples/testing.json"))
            .unwrap();
    let ran = run(orchestrator()
        .env("INPUT_MODE", "plan")
        .env("INPUT_PARALLELISM_LEVEL", "small")
        .write_stdin(spec));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout
            .contains("5 tasks in 1 wave at parallelism level 10"),
        "{}",
        ran.stdout
    );
}

#[test]
fn unknown_or_missing_mode_is_bad_input() {
    let ran = run(orchestrator().env("INPUT_MODE", "merge"));
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("invalid value 'merge'"),
        "{}",
        ran.stderr
    );
    let ran = run(&mut orchestrator());
    assert_eq!(ran.code, 2);
    assert!(ran.stderr.contains("no mode given"), "{}", ran.stderr);
}

#[test]
fn level_out_of_range_is_bad_input() {
    let ran = plan(&[&example("testing.json"), "--parallelism-level", "101"]);
    assert_eq!(ran.code, 2);
    assert_snapshot!("bad_level", ran.stderr);
    let ran = run(orchestrator()
        .args(["plan", &example("testing.json")])
        .env("INPUT_PARALLELISM_LEVEL", "0"));
    assert_eq!(ran.code, 2);
}

#[test]
fn help_explains_modes_inputs_and_exit_codes() {
    let ran = run(orchestrator().arg("--help"));
    assert_eq!(ran.code, 0);
    for needle in [
        "split",
        "worker",
        "aggregate",
        "plan",
        "INPUT_MODE",
        "INPUT_<NAME>",
        "Exit codes: 0 done, 1 the work failed, 2 bad input",
    ] {
        assert!(
            ran.stdout.contains(needle),
            "--help lacks {needle}:\n{}",
            ran.stdout
        );
    }
    let ran = run(orchestrator().args(["split", "--help"]));
    assert_eq!(ran.code, 0);
    for needle in [
        "--parent-issue",
        "INPUT_PARENT_ISSUE",
        "--parallelism-level",
        "--dry-run",
        "--github-token",
    ] {
        assert!(
            ran.stdout.contains(needle),
            "split --help lacks {needle}:\n{}",
            ran.stdout
        );
    }
    let ran = run(orchestrator().args(["worker", "--help"]));
    for needle in [
        "--worker-issue",
        "--llm-base-url",
        "https://models.github.ai/inference",
        "--llm-model",
        "--base-branch",
    ] {
        assert!(
            ran.stdout.contains(needle),
            "worker --help lacks {needle}:\n{}",
            ran.stdout
        );
    }
}

#[test]
fn the_token_value_never_shows_in_help() {
    let ran = run(orchestrator()
        .args(["split", "--help"])
        .env("INPUT_GITHUB_TOKEN", "ghp_topsecret"));
    assert!(!ran.stdout.contains("ghp_topsecret"));
}

// ---- bad specs: one clear error, exit 2 ---------------------------------------------------

fn bad(spec: &str) -> String {
    let ran = plan_stdin(spec, &[]);
    assert_eq!(
        ran.code, 2,
        "stdout: {}\nstderr: {}",
        ran.stdout, ran.stderr
    );
    assert!(ran.stdout.is_empty(), "nothing on stdout for a bad spec");
    assert_eq!(
        ran.stderr.matches("error: ").count(),
        1,
        "one error:\n{}",
        ran.stderr
    );
    ran.stderr
}

#[test]
fn bad_spec_json_syntax() {
    assert_snapshot!(bad(
        "{\n  \"nodes\": [\n    {\"id\": \"a\" \"type\": \"agent\"}\n  ]\n}\n"
    ));
}

#[test]
fn bad_spec_yaml_syntax() {
    assert_snapshot!(bad(
        "```yaml\nnodes:\n  - id: a\n    type: agent\n      config: {\n```\n"
    ));
}

#[test]
fn bad_spec_unknown_node_type() {
    assert_snapshot!(bad(
        "{\"nodes\": [\n  {\"id\": \"a\", \"type\": \"agnet\"}\n]}"
    ));
}

#[test]
fn bad_spec_duplicate_ids() {
    assert_snapshot!(bad(
        "{\"nodes\": [\n  {\"id\": \"api\", \"type\": \"agent\"},\n  {\"id\": \"api\", \"type\": \"agent\"}\n]}"
    ));
}

#[test]
fn bad_spec_unknown_dependency() {
    assert_snapshot!(bad(
        "{\"nodes\": [\n  {\"id\": \"api\", \"type\": \"agent\"},\n  {\"id\": \"ui\", \"type\": \"agent\", \"dependencies\": [\"apii\"]}\n]}"
    ));
}

#[test]
fn bad_spec_cycle() {
    assert_snapshot!(bad(
        "{\"tasks\": [\n  {\"id\": \"a\", \"dependencies\": [\"b\"]},\n  {\"id\": \"b\", \"dependencies\": [\"a\"]}\n]}"
    ));
}

#[test]
fn bad_spec_empty_workflow() {
    assert_snapshot!(bad("{\"nodes\": []}"));
}

#[test]
fn bad_spec_too_many_tasks() {
    let comps: Vec<String> = (0..501).map(|i| format!("\"c{i}\"")).collect();
    let spec = format!(
        "{{\"nodes\": [{{\"id\": \"n\", \"type\": \"agent\", \"config\": {{\"components\": [{}]}}}}]}}",
        comps.join(", ")
    );
    let err = bad(&spec);
    assert!(
        err.contains("the workflow expands to 501 tasks; one run holds at most 500"),
        "{err}"
    );
}

#[test]
fn bad_spec_in_an_issue_body_with_crlf_points_at_the_body_line() {
    let body = "Please build this.\r\n\r\n```json\r\n{\"nodes\": [\r\n  {\"id\": \"a\", \"type\": \"agent\", \"dependancies\": []}\r\n]}\r\n```\r\n";
    let err = bad(body);
    assert!(err.contains("--> <stdin>:5:"), "{err}");
    assert_snapshot!(err);
}

#[test]
fn missing_spec_file_is_bad_input() {
    let ran = plan(&["no/such/spec.json"]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr
            .contains("cannot read the spec no/such/spec.json"),
        "{}",
        ran.stderr
    );
}
