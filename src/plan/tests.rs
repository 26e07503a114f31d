use super::*;
use crate::spec::parse_document;
use proptest::prelude::*;

fn plan_of(doc: &str, level: u32) -> Result<Plan, SpecError> {
    let (spec, source) = parse_document(doc)?;
    plan(&spec, &source, Level::new(level).unwrap())
}

fn ids(plan: &Plan) -> Vec<&str> {
    plan.tasks.iter().map(|t| t.id.as_str()).collect()
}

fn err_of(doc: &str) -> SpecError {
    plan_of(doc, 30).expect_err("spec should be refused")
}

// ---- expansion rules -------------------------------------------------------------------

#[test]
fn each_component_is_one_task_with_language() {
    let p = plan_of(
        r#"{"nodes":[{"id":"backend","type":"agent","config":{"agentType":"code-generator","language":"nodejs","components":["User API","Auth"]}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(ids(&p), ["backend/user-api", "backend/auth"]);
    let t = &p.tasks[0];
    assert_eq!(t.title, "User API");
    assert_eq!(t.origin, Origin::Component);
    assert_eq!(t.language.as_deref(), Some("nodejs"));
    assert_eq!(t.agent_type, Some(AgentType::CodeGenerator));
    assert!(
        t.description
            .contains("Implement the **User API** component in nodejs.")
    );
    assert!(t.description.contains("code-generator agent"));
    assert_eq!(t.slug(), "backend--user-api");
}

#[test]
fn each_subtask_is_one_task() {
    let p = plan_of(
        r#"{"nodes":[{"id":"init","type":"agent","config":{"agentType":"manager","subTasks":[{"task":"Setup project structure","agent":"worker"},{"task":"Configure CI/CD","agent":"worker"}]}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(
        ids(&p),
        ["init/setup-project-structure", "init/configure-ci-cd"]
    );
    assert_eq!(p.tasks[1].origin, Origin::SubTask);
    assert!(p.tasks[1].description.starts_with("Configure CI/CD."));
    assert!(
        p.tasks[1]
            .description
            .contains("Handed to a `worker` agent.")
    );
}

#[test]
fn each_source_is_one_task() {
    let p = plan_of(
        r#"{"nodes":[{"id":"ingest","type":"agent","config":{"agentType":"data-processor","sources":["API1","Database1"]}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(ids(&p), ["ingest/api1", "ingest/database1"]);
    assert_eq!(p.tasks[0].origin, Origin::Source);
    assert!(p.tasks[0].description.contains("data source **API1**"));
}

#[test]
fn each_test_type_is_one_task() {
    let p = plan_of(
        r#"{"nodes":[{"id":"tests","type":"agent","config":{"testTypes":["unit-tests","e2e-tests"]}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(ids(&p), ["tests/unit-tests", "tests/e2e-tests"]);
    assert_eq!(p.tasks[1].origin, Origin::TestType);
    assert!(p.tasks[1].description.contains("**e2e-tests** suite"));
}

#[test]
fn each_parallel_task_is_one_task_named_by_its_operation() {
    let p = plan_of(
        r#"{"nodes":[{"id":"transform","type":"parallel","config":{"tasks":[{"type":"agent","config":{"operation":"normalize"}},{"type":"agent","config":{"operation":"validate","language":"python"}}]}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(ids(&p), ["transform/normalize", "transform/validate"]);
    assert_eq!(p.tasks[0].origin, Origin::ParallelTask);
    assert!(
        p.tasks[1]
            .description
            .starts_with("Perform the **validate** operation in python.")
    );
    assert_eq!(p.tasks[1].language.as_deref(), Some("python"));
}

#[test]
fn an_agent_without_lists_is_one_task() {
    let p = plan_of(
        r#"{"nodes":[{"id":"docs","type":"agent","config":{"operation":"write docs"}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(ids(&p), ["docs/write-docs"]);
    assert_eq!(p.tasks[0].origin, Origin::Node);
    let p = plan_of(
        r#"{"nodes":[{"id":"docs","type":"agent","description":"Write the user guide"}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(ids(&p), ["docs/main"]);
    assert!(p.tasks[0].description.contains("Write the user guide"));
}

#[test]
fn lists_of_one_node_all_expand() {
    let p = plan_of(
        r#"{"nodes":[{"id":"n","type":"agent","config":{"components":["A"],"testTypes":["unit"],"sources":["S"],"subTasks":[{"task":"T"}]}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(ids(&p), ["n/a", "n/s", "n/unit", "n/t"]);
}

#[test]
fn top_level_tasks_are_a_parallel_node_named_tasks() {
    let p = plan_of(
        r#"{"tasks":[{"id":"task1","dependencies":[]},{"id":"task2","dependencies":["task1"]}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(ids(&p), ["tasks/task1", "tasks/task2"]);
    assert_eq!(p.tasks[1].dependencies, ["tasks/task1"]);
    assert_eq!(p.waves, vec![vec!["tasks/task1"], vec!["tasks/task2"]]);
}

#[test]
fn explicit_ids_win_over_titles_for_the_slug() {
    let p = plan_of(
        r#"{"tasks":[{"id":"crit","task":"Critical component","priority":"high"}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(p.tasks[0].id, "tasks/crit");
    assert_eq!(p.tasks[0].title, "Critical component");
    assert_eq!(p.tasks[0].priority, Priority::High);
}

#[test]
fn worker_template_is_resolved_per_task() {
    let p = plan_of(
        r#"{"workerTemplate":{"runner":"ubuntu-24.04","timeout":20,"retries":2,"cache":true},
            "nodes":[{"id":"a","type":"agent"},{"id":"b","type":"agent","workerTemplate":{"timeout":5}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(p.tasks[0].template.timeout, 20);
    assert_eq!(p.tasks[0].template.retries, 2);
    assert!(p.tasks[0].template.cache);
    assert_eq!(p.tasks[1].template.timeout, 5);
    assert_eq!(p.tasks[1].template.runner, "ubuntu-24.04");
}

#[test]
fn allowed_paths_come_from_the_task_or_its_node() {
    let p = plan_of(
        r#"{"nodes":[{"id":"p","type":"parallel","config":{"allowedPaths":["src/**"],"tasks":[{"task":"x"},{"task":"y","config":{"allowedPaths":["docs/**"]}}]}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(p.tasks[0].allowed_paths, ["src/**"]);
    assert_eq!(p.tasks[1].allowed_paths, ["docs/**"]);
}

#[test]
fn slugify_rules() {
    assert_eq!(slugify("User API", 0), "user-api");
    assert_eq!(slugify("  CI/CD -- setup!! ", 0), "ci-cd-setup");
    assert_eq!(slugify("Überprüfung", 0), "berpr-fung");
    assert_eq!(slugify("???", 2), "task-3");
    let long = slugify(&"word ".repeat(40), 0);
    assert!(long.len() <= 48 && !long.ends_with('-'), "{long}");
}

// ---- dependencies ----------------------------------------------------------------------

#[test]
fn node_dependencies_apply_to_every_task_of_the_node() {
    let p = plan_of(
        r#"{"nodes":[
            {"id":"a","type":"agent","config":{"components":["X","Y"]}},
            {"id":"b","type":"agent","dependencies":["a"],"config":{"components":["Z"]}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(p.task("b/z").unwrap().dependencies, ["a/x", "a/y"]);
    assert_eq!(p.waves, vec![vec!["a/x", "a/y"], vec!["b/z"]]);
}

#[test]
fn task_dependencies_resolve_siblings_full_ids_and_nodes() {
    let p = plan_of(
        r#"{"nodes":[
            {"id":"a","type":"agent","config":{"components":["X"]}},
            {"id":"p","type":"parallel","config":{"tasks":[
                {"id":"one","task":"first"},
                {"id":"two","task":"second","dependencies":["one","a/x"]},
                {"task":"Third Step","dependencies":["a"]},
                {"task":"fourth","dependencies":["third-step"]}]}}]}"#,
        30,
    )
    .unwrap();
    assert_eq!(p.task("p/two").unwrap().dependencies, ["a/x", "p/one"]);
    assert_eq!(p.task("p/third-step").unwrap().dependencies, ["a/x"]);
    assert_eq!(p.task("p/fourth").unwrap().dependencies, ["p/third-step"]);
}

// ---- validation errors -----------------------------------------------------------------

#[test]
fn empty_workflow_is_refused() {
    let e = err_of(r#"{"nodes":[]}"#);
    assert!(e.message.contains("no nodes"), "{e}");
    assert!(e.help.is_some());
}

#[test]
fn duplicate_node_ids_point_at_the_second() {
    let e = err_of(
        "{\"nodes\":[\n{\"id\":\"a\",\"type\":\"agent\"},\n{\"id\":\"a\",\"type\":\"agent\"}]}",
    );
    assert_eq!(e.message, "two nodes have the id `a`");
    assert_eq!(e.location, Some(Location { line: 3, column: 7 }));
}

#[test]
fn duplicate_task_slugs_are_refused() {
    let e = err_of(
        r#"{"nodes":[{"id":"a","type":"agent","config":{"components":["User API","user-api"]}}]}"#,
    );
    assert!(
        e.message
            .contains("two tasks that both become `a/user-api`"),
        "{e}"
    );
}

#[test]
fn unknown_dependency_is_refused_with_its_position() {
    let e =
        err_of("{\"nodes\":[\n{\"id\":\"a\",\"type\":\"agent\",\n \"dependencies\":[\"ghost\"]}]}");
    assert!(e.message.contains("depends on `ghost`"), "{e}");
    assert_eq!(
        e.location,
        Some(Location {
            line: 3,
            column: 18
        })
    );
    assert_eq!(
        e.help.as_deref(),
        Some(
            "name a node id (a), a task `id` of the same node, or a full task id such as `a/main`"
        )
    );
}

#[test]
fn cycles_are_named() {
    let e = err_of(
        r#"{"nodes":[
            {"id":"a","type":"agent","dependencies":["c"]},
            {"id":"b","type":"agent","dependencies":["a"]},
            {"id":"c","type":"agent","dependencies":["b"]}]}"#,
    );
    assert_eq!(
        e.message,
        "dependency cycle: a/main → c/main → b/main → a/main"
    );
    assert!(e.location.is_some());
}

#[test]
fn self_dependency_is_a_cycle() {
    let e = err_of(r#"{"tasks":[{"id":"t","dependencies":["t"]}]}"#);
    assert_eq!(e.message, "dependency cycle: tasks/t → tasks/t");
    let e = err_of(r#"{"nodes":[{"id":"n","type":"agent","dependencies":["n"]}]}"#);
    assert_eq!(e.message, "dependency cycle: n/main → n/main");
}

#[test]
fn too_many_tasks_are_refused() {
    let comps: Vec<String> = (0..MAX_TASKS + 1).map(|i| format!("\"c{i}\"")).collect();
    let doc = format!(
        r#"{{"nodes":[{{"id":"n","type":"agent","config":{{"components":[{}]}}}}]}}"#,
        comps.join(",")
    );
    let e = err_of(&doc);
    assert_eq!(
        e.message,
        format!(
            "the workflow expands to {} tasks; one run holds at most {MAX_TASKS}",
            MAX_TASKS + 1
        )
    );
}

#[test]
fn bad_node_ids_are_refused() {
    for bad in [
        "",
        "has space",
        "a--b",
        "-lead",
        "x.lock",
        "a/b",
        &"x".repeat(65),
    ] {
        let doc = format!(r#"{{"nodes":[{{"id":"{bad}","type":"agent"}}]}}"#);
        let e = err_of(&doc);
        assert!(e.message.contains("is not a usable node id"), "{bad}: {e}");
    }
}

#[test]
fn parallel_without_tasks_and_agent_with_tasks_are_refused() {
    let e = err_of(r#"{"nodes":[{"id":"p","type":"parallel"}]}"#);
    assert!(e.message.contains("has no `config.tasks`"), "{e}");
    let e = err_of(
        r#"{"nodes":[{"id":"p","type":"parallel","config":{"components":["a"],"tasks":[{"task":"x"}]}}]}"#,
    );
    assert!(e.message.contains("but has `components`"), "{e}");
    let e = err_of(r#"{"nodes":[{"id":"a","type":"agent","config":{"tasks":[{"task":"x"}]}}]}"#);
    assert!(e.message.contains("only parallel nodes take"), "{e}");
}

#[test]
fn empty_lists_and_entries_are_refused() {
    let e = err_of(r#"{"nodes":[{"id":"a","type":"agent","config":{"components":[]}}]}"#);
    assert_eq!(e.message, "node `a` has an empty `components` list");
    let e = err_of(r#"{"nodes":[{"id":"a","type":"agent","config":{"sources":["  "]}}]}"#);
    assert_eq!(e.message, "node `a` has an empty entry in `sources`");
    let e =
        err_of(r#"{"nodes":[{"id":"p","type":"parallel","config":{"tasks":[{"type":"agent"}]}}]}"#);
    assert!(e.message.contains("does not say what to do"), "{e}");
}

#[test]
fn bad_task_ids_and_templates_are_refused() {
    let e = err_of(r#"{"tasks":[{"id":"a b"}]}"#);
    assert!(e.message.contains("task id `a b`"), "{e}");
    let e = err_of(r#"{"workerTemplate":{"timeout":0},"tasks":[{"id":"a"}]}"#);
    assert!(e.message.contains("timeout 0"), "{e}");
    let e = err_of(r#"{"workerTemplate":{"timeout":999},"tasks":[{"id":"a"}]}"#);
    assert!(e.message.contains("timeout 999"), "{e}");
    let e = err_of(r#"{"workerTemplate":{"retries":9},"tasks":[{"id":"a"}]}"#);
    assert!(e.message.contains("retries 9"), "{e}");
    let e = err_of(
        r#"{"workerTemplate":{"runner":"ubuntu-latest, self-hosted"},"tasks":[{"id":"a"}]}"#,
    );
    assert!(e.message.contains("is not a runner label"), "{e}");
}

#[test]
fn unknown_agent_type_and_priority_are_refused() {
    let e = err_of(r#"{"nodes":[{"id":"a","type":"agent","config":{"agentType":"wizard"}}]}"#);
    assert!(e.message.contains("unknown variant `wizard`"), "{e}");
    let e = err_of(r#"{"tasks":[{"id":"a","priority":"urgent"}]}"#);
    assert!(e.message.contains("unknown variant `urgent`"), "{e}");
}

// ---- levels and waves ------------------------------------------------------------------

#[test]
fn levels_parse_by_name_and_number() {
    assert_eq!("small".parse::<Level>().unwrap().get(), 10);
    assert_eq!("Medium".parse::<Level>().unwrap().get(), 30);
    assert_eq!("large".parse::<Level>().unwrap().get(), 60);
    assert_eq!("MASSIVE".parse::<Level>().unwrap().get(), 100);
    assert_eq!(" 42 ".parse::<Level>().unwrap().get(), 42);
    for bad in ["0", "101", "-1", "huge", ""] {
        let e = bad.parse::<Level>().unwrap_err();
        assert!(e.contains("1 to 100"), "{bad}: {e}");
    }
}

#[test]
fn level_caps_each_wave_and_the_rest_queue() {
    let comps: Vec<String> = (0..250).map(|i| format!("\"c{i}\"")).collect();
    let doc = format!(
        r#"{{"nodes":[{{"id":"n","type":"agent","config":{{"components":[{}]}}}}]}}"#,
        comps.join(",")
    );
    let p = plan_of(&doc, 100).unwrap();
    let sizes: Vec<usize> = p.waves.iter().map(Vec::len).collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(p.waves[0][0], "n/c0");
    assert_eq!(p.waves[2][49], "n/c249");
}

#[test]
fn priority_orders_within_what_is_ready() {
    let p = plan_of(
        r#"{"tasks":[{"id":"l","priority":"low"},{"id":"m"},{"id":"h","priority":"high"},{"id":"c","priority":"critical"}]}"#,
        2,
    )
    .unwrap();
    assert_eq!(
        p.waves,
        vec![vec!["tasks/c", "tasks/h"], vec!["tasks/m", "tasks/l"]]
    );
}

#[test]
fn ready_counts_running_tasks_against_the_level() {
    let p = plan_of(
        r#"{"tasks":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d","dependencies":["a"]}]}"#,
        3,
    )
    .unwrap();
    let state = |id: &str| match id {
        "tasks/a" => State::Completed,
        "tasks/b" => State::Running,
        _ => State::Queued,
    };
    let r: Vec<&str> = ready(&p.tasks, state, Level::new(2).unwrap())
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(r, ["tasks/c"]);
    let r: Vec<&str> = ready(&p.tasks, state, Level::new(3).unwrap())
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(r, ["tasks/c", "tasks/d"]);
    // A failed dependency never becomes ready.
    let failed = |id: &str| {
        if id == "tasks/a" {
            State::Failed
        } else {
            State::Queued
        }
    };
    assert!(
        !ready(&p.tasks, failed, Level::MASSIVE)
            .iter()
            .any(|t| t.id == "tasks/d")
    );
}

#[test]
fn planning_is_deterministic() {
    let doc = include_str!("../../examples/fullstack.json");
    let a = plan_of(doc, 30).unwrap();
    let b = plan_of(doc, 30).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

// ---- budget ----------------------------------------------------------------------------

#[test]
fn min_minutes_follows_both_limits() {
    assert_eq!(min_minutes(0), 0);
    assert_eq!(min_minutes(1), 1);
    assert_eq!(min_minutes(80), 1);
    assert_eq!(min_minutes(81), 2);
    assert_eq!(min_minutes(500), 7);
    assert_eq!(min_minutes(501), 61);
    assert_eq!(min_minutes(1200), 120 + 3);
}

#[test]
fn budget_counts_sub_issues_only_up_to_100() {
    let comps: Vec<String> = (0..150).map(|i| format!("\"c{i}\"")).collect();
    let doc = format!(
        r#"{{"nodes":[{{"id":"n","type":"agent","config":{{"components":[{}]}}}}]}}"#,
        comps.join(",")
    );
    let p = plan_of(&doc, 100).unwrap();
    let b = Budget::of(&p, true);
    assert_eq!(b.waves, 2);
    assert_eq!(b.split_writes, 7 + 150 + 100 + 2);
    assert_eq!(b.worker_writes, 150 * 6);
    assert_eq!(b.aggregate_writes, 2 * 4 + 150);
    assert_eq!(
        b.total_writes,
        b.split_writes + b.worker_writes + b.aggregate_writes
    );
    assert_eq!(b.min_minutes, min_minutes(b.total_writes));
    // Reads: per wave split 4 + 2 pages, aggregate 4 + 2 × 2 pages; 7 per worker.
    assert_eq!(
        b.total_requests,
        b.total_writes + 2 * (4 + 2 + 4 + 4) + 150 * 7
    );
    assert!(Budget::of(&p, false).aggregate_writes < b.aggregate_writes);
}

// ---- properties over random DAGs -------------------------------------------------------

/// The spec of tasks `t0..tn`, task i depending on `deps[i]`, with the given priorities.
fn doc_of(deps: &[Vec<usize>], prios: &[usize]) -> String {
    let names = ["critical", "high", "medium", "low"];
    let tasks: Vec<String> = deps
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ds: Vec<String> = d.iter().map(|j| format!("\"t{j}\"")).collect();
            format!(
                r#"{{"id":"t{i}","priority":"{}","dependencies":[{}]}}"#,
                names[prios[i]],
                ds.join(",")
            )
        })
        .collect();
    format!(r#"{{"tasks":[{}]}}"#, tasks.join(","))
}

/// A random DAG: task i may depend only on tasks with smaller indices.
fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<usize>, u32)> {
    (1usize..120, 1u32..=100).prop_flat_map(|(n, level)| {
        let deps = (0..n)
            .map(|i| {
                proptest::collection::btree_set(0..i.max(1), 0..=i.min(4))
                    .prop_map(move |s| s.into_iter().filter(|&d| d < i).collect::<Vec<_>>())
            })
            .collect::<Vec<_>>();
        (deps, proptest::collection::vec(0usize..4, n), Just(level))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn waves_respect_dependencies_and_the_level((deps, prios, level) in dag()) {
        let p = plan_of(&doc_of(&deps, &prios), level).unwrap();
        // No task lost or doubled.
        let mut seen: Vec<&String> = p.waves.iter().flatten().collect();
        prop_assert_eq!(seen.len(), deps.len());
        seen.sort();
        seen.dedup();
        prop_assert_eq!(seen.len(), deps.len());
        // No wave over the level, none empty.
        for w in &p.waves {
            prop_assert!(!w.is_empty() && w.len() <= level as usize);
        }
        // Every dependency sits in an earlier wave.
        let wave_of: HashMap<&str, usize> = p.waves.iter().enumerate()
            .flat_map(|(i, w)| w.iter().map(move |id| (id.as_str(), i))).collect();
        for (i, d) in deps.iter().enumerate() {
            let me = wave_of[format!("tasks/t{i}").as_str()];
            for j in d {
                let theirs = wave_of[format!("tasks/t{j}").as_str()];
                prop_assert!(theirs < me, "t{} in wave {} but its dependency t{} in wave {}", i, me, j, theirs);
            }
        }
    }

    #[test]
    fn a_back_edge_is_always_reported_as_a_cycle((mut deps, prios, _level) in dag()) {
        let last = deps.len() - 1;
        prop_assume!(!deps[last].is_empty());
        // `last` depends on `first`; making `first` depend on `last` closes a cycle.
        let first = deps[last][0];
        deps[first].push(last);
        let e = plan_of(&doc_of(&deps, &prios), 10).unwrap_err();
        prop_assert!(e.message.starts_with("dependency cycle: "), "{}", e.message);
        let chain: Vec<&str> = e.message["dependency cycle: ".len()..].split(" → ").collect();
        prop_assert!(chain.len() >= 2);
        prop_assert_eq!(chain.first(), chain.last());
        // Each link of the named chain is a real dependency.
        for pair in chain.windows(2) {
            let from: usize = pair[0].trim_start_matches("tasks/t").parse().unwrap();
            let to: usize = pair[1].trim_start_matches("tasks/t").parse().unwrap();
            prop_assert!(deps[from].contains(&to), "{} does not depend on {}", pair[0], pair[1]);
        }
    }
}
