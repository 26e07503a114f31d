//! Packaging: `action.yml`, the `Dockerfile` and the workflows agree with the binary, with
//! Cargo.toml's version and with the public interface (shared/INTERFACE.md), and the workflows
//! keep the security rules: no `${{ … }}` inside scripts, explicit least permissions, third-party
//! actions pinned by commit SHA.
//!
//! Each rule is a function that returns the problems it finds, so the rules are also tested on
//! broken copies (the `rule_*` tests): a check that cannot fail checks nothing.

use crate::support::cli::{orchestrator, repo_root, run};
use serde_norway::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The prebuilt image every container step runs: `v` + Cargo.toml's version.
fn image() -> String {
    format!("docker://ghcr.io/parallel-orchestrator/parallel-orchestrator:v{VERSION}")
}

/// This repository, as users name its action and reusable workflow.
const OWN_REPO: &str = "parallel-orchestrator/parallel-orchestrator";

/// The action inputs of shared/INTERFACE.md: the name, the default action.yml declares (`None`:
/// no default; the binary treats the empty value the runner then sets as unset), and the modes
/// whose `--help` must offer the flag. `mode` is the top-level `--mode`.
const INPUTS: &[(&str, Option<&str>, &[&str])] = &[
    ("mode", None, &[]),
    (
        "github_token",
        Some("${{ github.token }}"),
        &["split", "worker", "aggregate"],
    ),
    ("parent_issue", None, &["split", "aggregate"]),
    ("parallelism_level", Some("medium"), &["split", "aggregate"]),
    ("worker_issue", None, &["worker"]),
    (
        "llm_base_url",
        Some("https://models.github.ai/inference"),
        &["worker"],
    ),
    ("llm_model", Some("openai/gpt-4.1-mini"), &["worker"]),
    ("llm_api_key", None, &["worker"]),
    ("base_branch", None, &["worker", "aggregate"]),
    ("dry_run", Some("false"), &["split", "worker", "aggregate"]),
    ("integrate", Some("true"), &["aggregate"]),
];

/// The outputs of shared/INTERFACE.md, by mode.
const OUTPUTS: &[(&str, &[&str])] = &[
    ("split", &["matrix", "worker_count", "has_work"]),
    ("worker", &["status", "pr_url"]),
    (
        "aggregate",
        &[
            "total",
            "completed",
            "failed",
            "running",
            "queued",
            "blocked",
            "progress",
            "all_done",
        ],
    ),
];

const MODES: &[&str] = &["split", "worker", "aggregate"];

const MAIN_WORKFLOW: &str = ".github/workflows/massive-parallel-copilot.yml";

// ---- reading -------------------------------------------------------------------------------

fn read(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml(path: &str, text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

fn action() -> Value {
    yaml("action.yml", &read("action.yml"))
}

/// Every workflow of the repository and of the examples, as (path, text).
fn workflows() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for dir in [".github/workflows", "examples/workflows"] {
        let entries = std::fs::read_dir(repo_root().join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.unwrap().path());
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".yml") || name.ends_with(".yaml") {
                let rel = format!("{dir}/{name}");
                found.push((rel.clone(), read(&rel)));
            }
        }
    }
    found.sort();
    assert!(
        found.iter().any(|(p, _)| p == MAIN_WORKFLOW),
        "{MAIN_WORKFLOW} is missing"
    );
    found
}

fn map<'a>(v: &'a Value, key: &str) -> Option<&'a Mapping> {
    v.get(key).and_then(Value::as_mapping)
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A scalar as the runner sees it: strings as they are, booleans and numbers as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn keys(m: &Mapping) -> BTreeSet<String> {
    m.keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect()
}

/// The `on:` of a workflow (a YAML 1.1 reader would make the key `true`; accept both).
fn triggers(wf: &Value) -> Option<&Value> {
    wf.get("on").or_else(|| wf.get(Value::Bool(true)))
}

fn jobs(wf: &Value) -> Vec<(String, &Value)> {
    map(wf, "jobs")
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap_or("?").to_string(), v))
                .collect()
        })
        .unwrap_or_default()
}

fn steps(job: &Value) -> Vec<&Value> {
    job.get("steps")
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn action_inputs() -> BTreeSet<String> {
    keys(map(&action(), "inputs").expect("action.yml has inputs"))
}

// ---- the rules -----------------------------------------------------------------------------

/// The security rules every workflow keeps.
fn workflow_problems(path: &str, text: &str, inputs: &BTreeSet<String>) -> Vec<String> {
    let wf = yaml(path, text);
    let mut problems = Vec::new();
    match wf.get("permissions") {
        Some(Value::Mapping(m)) if m.is_empty() => {}
        other => problems.push(format!(
            "{path}: the top level must say `permissions: {{}}` (each job asks for its own), found {other:?}"
        )),
    }
    let jobs = jobs(&wf);
    if jobs.is_empty() {
        problems.push(format!("{path}: no jobs"));
    }
    for (id, job) in jobs {
        if !matches!(job.get("permissions"), Some(Value::Mapping(_))) {
            problems.push(format!(
                "{path}: job `{id}` has no explicit `permissions:` mapping"
            ));
        }
        if let Some(uses) = str_of(job, "uses") {
            problems.extend(uses_problems(path, &id, uses, text));
        }
        for (n, step) in steps(job).into_iter().enumerate() {
            let at = format!("{path}: job `{id}` step {}", n + 1);
            if let Some(script) = str_of(step, "run") {
                // User text (issue titles, labels, inputs, matrix entries made from the spec)
                // spliced into a script is a script injection; it must arrive through `env:`.
                if script.contains("${{") {
                    problems.push(format!(
                        "{at}: `run:` contains `${{{{ … }}}}`; pass the value through `env:` instead:\n{script}"
                    ));
                }
            }
            if let Some(uses) = str_of(step, "uses") {
                problems.extend(uses_problems(&at, &id, uses, text));
                let ours =
                    uses.starts_with("docker://") || uses.starts_with(&format!("{OWN_REPO}@"));
                if ours {
                    problems.extend(with_problems(&at, step, uses, inputs));
                }
            }
        }
    }
    problems
}

/// A `uses:`: our image at this version, our repository at this version's tag, a local path,
/// or a third-party action pinned to a full commit SHA with its version in a comment.
fn uses_problems(at: &str, job: &str, uses: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if uses.starts_with("./") {
        return problems;
    }
    if uses.starts_with("docker://") {
        if uses != image() {
            problems.push(format!(
                "{at}: `{uses}` is not this version's image `{}`",
                image()
            ));
        }
        return problems;
    }
    let Some((name, git_ref)) = uses.rsplit_once('@') else {
        problems.push(format!("{at} (job `{job}`): `{uses}` names no version"));
        return problems;
    };
    if name == OWN_REPO || name.starts_with(&format!("{OWN_REPO}/")) {
        // Our own action or reusable workflow (in the examples): this version's tag. Its commit
        // SHA cannot be known inside the commit that defines it.
        if git_ref != format!("v{VERSION}") && !is_sha(git_ref) {
            problems.push(format!(
                "{at}: `{uses}` should name this version, `@v{VERSION}`, or a commit SHA"
            ));
        }
        return problems;
    }
    if !is_sha(git_ref) {
        problems.push(format!(
            "{at}: `{uses}` is not pinned to a 40-hex commit SHA (tags and branches can move)"
        ));
    } else {
        let commented = text.lines().filter(|l| l.contains(uses)).all(|l| {
            l.split_once(" # ")
                .is_some_and(|(_, c)| c.trim().starts_with('v'))
        });
        if !commented {
            problems.push(format!(
                "{at}: `{uses}` needs its version in a comment (`{uses} # vX.Y.Z`)"
            ));
        }
    }
    problems
}

fn is_sha(s: &str) -> bool {
    s.len() == 40
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// The `with:` of a step that runs our image or action. For a `docker://` step the runner does
/// not check the keys against action.yml nor apply its defaults: a misspelt key would silently
/// reach the container as an unknown INPUT_ variable, and a missing `github_token` as nothing.
fn with_problems(at: &str, step: &Value, uses: &str, inputs: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(with) = map(step, "with") else {
        problems.push(format!("{at}: `{uses}` without `with:` has no mode"));
        return problems;
    };
    let given = keys(with);
    for key in given.difference(inputs) {
        problems.push(format!("{at}: `with: {key}` is not an input of action.yml"));
    }
    let mut needed = vec!["mode"];
    if uses.starts_with("docker://") {
        needed.push("github_token");
    }
    for key in needed {
        if !given.contains(key) {
            problems.push(format!("{at}: `with:` lacks `{key}`"));
        }
    }
    if let Some(mode) = with.get("mode").and_then(Value::as_str)
        && !MODES.contains(&mode)
    {
        problems.push(format!("{at}: `mode: {mode}` is none of {MODES:?}"));
    }
    problems
}

/// The Dockerfile: a static binary in an empty final image, with CA certificates, that runs
/// `--version` while it is built, and the binary as the entrypoint.
fn dockerfile_problems(text: &str) -> Vec<String> {
    // Instructions, with `\` continuations joined and comments dropped.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut problems = Vec::new();
    let Some(last_from) = instructions.iter().rposition(|i| i.starts_with("FROM ")) else {
        return vec!["the Dockerfile has no FROM".into()];
    };
    let base = instructions[last_from]["FROM ".len()..].trim();
    if !(base == "scratch" || base.starts_with("gcr.io/distroless/static")) {
        problems.push(format!(
            "the final stage is `FROM {base}`; it must be `scratch` (or distroless static): only the static binary ships"
        ));
    }
    if !instructions[..last_from]
        .iter()
        .any(|i| i.starts_with("RUN ") && i.contains("cargo build") && i.contains("--locked"))
    {
        problems.push("the build stage must run `cargo build … --locked`".into());
    }
    let last = &instructions[last_from..];
    let entrypoint = last
        .iter()
        .filter_map(|i| i.strip_prefix("ENTRYPOINT "))
        .next_back()
        .and_then(|e| serde_json::from_str::<Vec<String>>(e.trim()).ok());
    match &entrypoint {
        Some(argv) if argv.len() == 1 && argv[0].ends_with("/parallel-orchestrator") => {}
        other => problems.push(format!(
            "the final stage's ENTRYPOINT must be the binary alone, in exec form (`[\"/…/parallel-orchestrator\"]`), found {other:?}"
        )),
    }
    let smoke = entrypoint
        .as_ref()
        .and_then(|argv| argv.first())
        .map(|bin| {
            last.iter().any(|i| {
                i.strip_prefix("RUN ")
                    .and_then(|r| serde_json::from_str::<Vec<String>>(r.trim()).ok())
                    .is_some_and(|argv| argv == [bin.as_str(), "--version"])
            })
        });
    if smoke != Some(true) {
        problems.push(
            "the final stage must run `RUN [\"<entrypoint binary>\", \"--version\"]` while it is built (exec form: there is no shell)".into(),
        );
    }
    let certs = "/etc/ssl/certs/ca-certificates.crt";
    if !last
        .iter()
        .any(|i| i.starts_with("COPY ") && i.contains(certs))
    {
        problems.push(format!(
            "the final stage must copy CA certificates to {certs} (the GitHub client verifies TLS with the system's roots)"
        ));
    }
    if !last
        .iter()
        .any(|i| i.starts_with("ENV ") && i.contains(&format!("SSL_CERT_FILE={certs}")))
    {
        problems.push(format!("the final stage must set SSL_CERT_FILE={certs}"));
    }
    if last.iter().any(|i| i.starts_with("USER ")) {
        problems.push(
            "no USER: container actions run as the image's default user (root) to write $GITHUB_OUTPUT"
                .into(),
        );
    }
    problems
}

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- the binary's --help -------------------------------------------------------------------

/// Options in a `--help` text: the long flag and the text of its entry (which carries
/// `[env: …]` and `[default: …]`, possibly wrapped over several lines).
fn help_options(help: &str) -> BTreeMap<String, String> {
    let mut options = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        let starts_option = line.starts_with("  ") && trimmed.starts_with('-');
        if starts_option {
            if let Some((flag, text)) = current.take() {
                options.insert(flag, text);
            }
            let flag = trimmed
                .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
                .find(|t| t.starts_with("--"))
                .unwrap_or("")
                .to_string();
            current = Some((flag, trimmed.to_string()));
        } else if let Some((_, text)) = current.as_mut() {
            // An entry goes on over indented lines (and the blank lines of the long format),
            // and ends at the next option or at a heading.
            if !trimmed.is_empty() && !line.starts_with(' ') {
                let (flag, text) = current.take().unwrap();
                options.insert(flag, text);
            } else if !trimmed.is_empty() {
                text.push(' ');
                text.push_str(trimmed);
            }
        }
    }
    if let Some((flag, text)) = current {
        options.insert(flag, text);
    }
    options.remove("");
    options
}

/// The summary help (`-h`): one entry per option.
fn help(args: &[&str]) -> String {
    let ran = run(orchestrator().args(args).arg("-h"));
    assert_eq!(ran.code, 0, "{args:?} --help: {}", ran.stderr);
    ran.stdout
}

fn flag_of(input: &str) -> String {
    format!("--{}", input.replace('_', "-"))
}

// ---- action.yml ----------------------------------------------------------------------------

#[test]
fn action_declares_every_input_of_the_interface_with_its_default() {
    let action = action();
    let inputs = map(&action, "inputs").expect("action.yml has inputs");
    let mut problems = Vec::new();
    for (name, default, _) in INPUTS {
        let Some(input) = inputs.get(*name) else {
            problems.push(format!("input `{name}` is not declared"));
            continue;
        };
        if str_of(input, "description").is_none_or(|d| d.trim().is_empty()) {
            problems.push(format!("input `{name}` has no description"));
        }
        let declared = input.get("default").and_then(scalar);
        if declared.as_deref() != *default {
            problems.push(format!(
                "input `{name}`: default {declared:?}, the interface says {default:?}"
            ));
        }
    }
    let documented: BTreeSet<String> = INPUTS.iter().map(|(n, ..)| n.to_string()).collect();
    for extra in keys(inputs).difference(&documented) {
        problems.push(format!(
            "input `{extra}` is not in the interface (shared/INTERFACE.md)"
        ));
    }
    for name in keys(inputs) {
        if name.contains('-') || name.chars().any(|c| c.is_ascii_uppercase()) {
            problems.push(format!(
                "input `{name}`: use snake_case (hyphens have been reported not to reach containers)"
            ));
        }
    }
    assert_none(problems);
}

#[test]
fn action_declares_every_output_of_the_interface() {
    let action = action();
    let outputs = keys(map(&action, "outputs").expect("action.yml has outputs"));
    let documented: BTreeSet<String> = OUTPUTS
        .iter()
        .flat_map(|(_, names)| names.iter().map(|n| n.to_string()))
        .collect();
    assert_eq!(outputs, documented);
}

#[test]
fn every_input_is_a_flag_and_an_input_variable_of_the_modes_that_use_it() {
    let action = action();
    let declared = map(&action, "inputs").unwrap();
    let top = help_options(&help(&[]));
    let mut problems = Vec::new();
    match top.get("--mode") {
        Some(text) if text.contains("INPUT_MODE") => {}
        other => problems.push(format!(
            "the top-level help has no `--mode` read from INPUT_MODE: {other:?}"
        )),
    }
    for mode in MODES {
        let options = help_options(&help(&[mode]));
        for (name, default, modes) in INPUTS.iter().filter(|(_, _, m)| m.contains(mode)) {
            let flag = flag_of(name);
            let Some(text) = options.get(&flag) else {
                problems.push(format!("`{mode} --help` has no `{flag}` (input `{name}`)"));
                continue;
            };
            let var = format!("INPUT_{}", name.to_uppercase());
            if !text.contains(&format!("[env: {var}")) {
                problems.push(format!("`{mode} {flag}` is not read from {var}: {text}"));
            }
            // The binary's own default must be the one action.yml declares, or a step that
            // leaves the input out would behave differently from the action.
            if let Some(default) = default.filter(|d| !d.contains("${{"))
                && !text.contains(&format!("[default: {default}]"))
            {
                problems.push(format!(
                    "`{mode} {flag}` does not default to `{default}` as action.yml does: {text}"
                ));
            }
            assert!(declared.contains_key(*name), "{name} in {modes:?}");
        }
        // And the other way: every option of a mode is an action input.
        for flag in options.keys().filter(|f| *f != "--help") {
            let input = flag.trim_start_matches("--").replace('-', "_");
            if !declared.contains_key(input.as_str()) {
                problems.push(format!(
                    "`{mode} {flag}` has no action input `{input}` in action.yml"
                ));
            }
        }
    }
    assert_none(problems);
}

#[test]
fn action_runs_the_prebuilt_image_of_this_version_without_args() {
    let action = action();
    let runs = action.get("runs").expect("action.yml has runs");
    assert_eq!(str_of(runs, "using"), Some("docker"));
    assert_eq!(str_of(runs, "image"), Some(image().as_str()));
    // With no arguments the binary takes the mode from INPUT_MODE.
    assert!(
        runs.get("args").is_none(),
        "no `args:` (the mode comes from INPUT_MODE)"
    );
    assert!(
        runs.get("entrypoint").is_none(),
        "the image's ENTRYPOINT is the binary"
    );
    let branding = action.get("branding").expect("branding");
    assert!(str_of(branding, "icon").is_some() && str_of(branding, "color").is_some());
}

#[test]
fn the_binary_reports_the_version_the_image_is_tagged_with() {
    let ran = run(orchestrator().arg("--version"));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout.trim(),
        format!("parallel-orchestrator {VERSION}")
    );
}

/// The environment the runner gives the container: every declared input set, to its default
/// or empty (expressions such as `${{ github.token }}` evaluated), no arguments.
#[test]
fn the_binary_runs_with_the_environment_the_runner_gives_the_container() {
    let action = action();
    let inputs = map(&action, "inputs").unwrap();
    let spec = read("examples/fullstack.json");
    let mut cmd = orchestrator();
    for (name, input) in inputs {
        let name = name.as_str().unwrap();
        let value = match input.get("default").and_then(scalar) {
            Some(d) if d.contains("${{") => "ghs_not_a_real_token".to_string(),
            Some(d) => d,
            None => String::new(),
        };
        cmd.env(format!("INPUT_{}", name.to_uppercase()), value);
    }
    cmd.env("INPUT_MODE", "plan").write_stdin(spec.clone());
    let as_action = run(&mut cmd);
    assert_eq!(as_action.code, 0, "{}", as_action.stderr);
    let as_cli = run(orchestrator().args(["plan", "-"]).write_stdin(spec));
    assert_eq!(as_cli.code, 0, "{}", as_cli.stderr);
    assert_eq!(as_action.stdout, as_cli.stdout);
}

// ---- Dockerfile ----------------------------------------------------------------------------

#[test]
fn dockerfile_builds_a_static_image_that_smoke_tests_itself() {
    assert_none(dockerfile_problems(&read("Dockerfile")));
    // The build context keeps what the build needs.
    let ignore = read(".dockerignore");
    for kept in ["!Cargo.toml", "!Cargo.lock", "!src/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == kept),
            ".dockerignore must keep {kept}"
        );
    }
}

// ---- the workflows -------------------------------------------------------------------------

#[test]
fn workflows_keep_the_security_rules() {
    let inputs = action_inputs();
    let mut problems = Vec::new();
    for (path, text) in workflows() {
        problems.extend(workflow_problems(&path, &text, &inputs));
    }
    assert_none(problems);
}

fn perms(job: &Value) -> BTreeMap<String, String> {
    map(job, "permissions")
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), scalar(v).unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

fn expect_perms(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_workflow_splits_runs_the_matrix_and_aggregates() {
    let wf = yaml(MAIN_WORKFLOW, &read(MAIN_WORKFLOW));
    let on = triggers(&wf).expect("on:");

    // Triggers: the label, a dispatch with the inputs aggregate sends, and workflow_call.
    let labeled = on
        .get("issues")
        .and_then(|i| i.get("types"))
        .and_then(Value::as_sequence)
        .is_some_and(|t| t.iter().any(|t| t.as_str() == Some("labeled")));
    assert!(labeled, "on: issues: types: [labeled]");
    let dispatch = on
        .get("workflow_dispatch")
        .and_then(|d| map(d, "inputs"))
        .expect("dispatch inputs");
    for name in ["parent_issue", "parallelism_level"] {
        assert!(
            dispatch.contains_key(name),
            "workflow_dispatch input {name}"
        );
    }
    assert!(
        dispatch.len() <= 25,
        "workflow_dispatch takes at most 25 inputs"
    );
    let call = on.get("workflow_call").expect("workflow_call");
    let call_inputs = map(call, "inputs").expect("workflow_call inputs");
    assert_eq!(
        keys(call_inputs),
        [
            "base_branch",
            "integrate",
            "llm_base_url",
            "llm_model",
            "parallelism_level",
            "parent_issue"
        ]
        .map(String::from)
        .into(),
    );
    assert_eq!(
        call_inputs
            .get("parent_issue")
            .and_then(|i| str_of(i, "type")),
        Some("number")
    );
    // The reusable workflow's defaults are the action's.
    let action = action();
    let action_inputs = map(&action, "inputs").unwrap();
    for name in [
        "parallelism_level",
        "llm_model",
        "llm_base_url",
        "integrate",
    ] {
        let ours = call_inputs[name].get("default").and_then(scalar);
        let theirs = action_inputs[name].get("default").and_then(scalar);
        assert_eq!(ours, theirs, "workflow_call default of {name}");
    }
    let secret = call
        .get("secrets")
        .and_then(|s| s.get("llm_api_key"))
        .expect("workflow_call secret llm_api_key");
    assert_eq!(secret.get("required"), Some(&Value::Bool(false)));

    // Never cancel a wave in progress.
    let concurrency = wf.get("concurrency").expect("concurrency");
    assert_eq!(
        concurrency.get("cancel-in-progress"),
        Some(&Value::Bool(false))
    );
    assert!(str_of(concurrency, "group").is_some_and(|g| g.contains("parent_issue")));

    let jobs: BTreeMap<String, &Value> = jobs(&wf).into_iter().collect();
    assert_eq!(
        jobs.keys().cloned().collect::<Vec<_>>(),
        ["aggregate", "split", "worker"]
    );
    let mode_of = |job: &Value| -> Vec<String> {
        steps(job)
            .iter()
            .filter(|s| str_of(s, "uses") == Some(image().as_str()))
            .filter_map(|s| {
                s.get("with")
                    .and_then(|w| str_of(w, "mode"))
                    .map(String::from)
            })
            .collect()
    };

    let split = jobs["split"];
    assert!(str_of(split, "if").is_some_and(|c| c.contains("'parallel-execution'")));
    assert_eq!(mode_of(split), ["split"]);
    let split_outputs = map(split, "outputs").expect("split outputs");
    assert!(split_outputs.contains_key("matrix") && split_outputs.contains_key("has_work"));
    assert_eq!(
        perms(split),
        expect_perms(&[("contents", "read"), ("issues", "write")])
    );

    let worker = jobs["worker"];
    assert_eq!(str_of(worker, "needs"), Some("split"));
    assert_eq!(
        str_of(worker, "if"),
        Some("needs.split.outputs.has_work == 'true'")
    );
    assert_eq!(str_of(worker, "runs-on"), Some("${{ matrix.runner }}"));
    assert_eq!(
        str_of(worker, "timeout-minutes"),
        Some("${{ matrix.timeout }}")
    );
    let strategy = worker.get("strategy").expect("strategy");
    assert_eq!(strategy.get("fail-fast"), Some(&Value::Bool(false)));
    assert_eq!(
        str_of(strategy, "matrix"),
        Some("${{ fromJSON(needs.split.outputs.matrix) }}")
    );
    assert_eq!(mode_of(worker), ["worker"]);
    let worker_step = steps(worker)[0];
    assert_eq!(
        worker_step
            .get("with")
            .and_then(|w| str_of(w, "worker_issue")),
        Some("${{ matrix.issue }}")
    );
    assert_eq!(
        perms(worker),
        expect_perms(&[
            ("contents", "write"),
            ("pull-requests", "write"),
            ("issues", "write"),
            ("models", "read"),
        ])
    );

    let aggregate = jobs["aggregate"];
    let needs: Vec<&str> = aggregate
        .get("needs")
        .and_then(Value::as_sequence)
        .map(|n| n.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(needs, ["split", "worker"]);
    // After failed workers too, but only when split ran.
    let cond = str_of(aggregate, "if").unwrap_or("");
    assert!(
        cond.contains("needs.split.result == 'success'")
            && (cond.contains("always()") || cond.contains("!cancelled()")),
        "aggregate if: {cond}"
    );
    assert_eq!(mode_of(aggregate), ["aggregate"]);
    assert_eq!(
        perms(aggregate),
        expect_perms(&[
            ("issues", "write"),
            ("pull-requests", "write"),
            ("contents", "write"),
            ("actions", "write"),
        ])
    );
}

/// Every workflow that aggregate may dispatch for the next wave takes the two inputs it sends.
#[test]
fn workflows_that_start_waves_take_the_dispatch_inputs() {
    for (path, text) in workflows() {
        let wf = yaml(&path, &text);
        let runs_aggregate = text.contains("mode: aggregate")
            || text.contains(".github/workflows/massive-parallel-copilot.yml@");
        if !runs_aggregate {
            continue;
        }
        let dispatch = triggers(&wf)
            .and_then(|on| on.get("workflow_dispatch"))
            .and_then(|d| map(d, "inputs"))
            .unwrap_or_else(|| {
                panic!(
                    "{path}: aggregate dispatches this workflow, it needs workflow_dispatch inputs"
                )
            });
        for name in ["parent_issue", "parallelism_level"] {
            assert!(
                dispatch.contains_key(name),
                "{path}: workflow_dispatch input {name}"
            );
        }
    }
}

/// The example that calls the reusable workflow: the file it names exists, it passes only
/// inputs and secrets the reusable workflow declares, and grants every permission its jobs ask
/// for (a called workflow's jobs get at most what the calling job grants).
#[test]
fn the_reusable_workflow_example_matches_the_reusable_workflow() {
    let path = "examples/workflows/use-the-reusable-workflow.yml";
    let example = yaml(path, &read(path));
    let callee = yaml(MAIN_WORKFLOW, &read(MAIN_WORKFLOW));
    let call = triggers(&callee).unwrap().get("workflow_call").unwrap();
    let (id, job) = jobs(&example)
        .into_iter()
        .find(|(_, j)| j.get("uses").is_some())
        .expect("a job that calls the reusable workflow");
    let uses = str_of(job, "uses").unwrap();
    assert_eq!(
        uses.split_once('@').map(|(p, _)| p),
        Some(format!("{OWN_REPO}/{MAIN_WORKFLOW}").as_str())
    );
    let declared = keys(map(call, "inputs").unwrap());
    for key in map(job, "with").map(keys).unwrap_or_default() {
        assert!(
            declared.contains(&key),
            "{path}: job `{id}` passes undeclared input {key}"
        );
    }
    let secrets = keys(map(call, "secrets").unwrap());
    for key in map(job, "secrets").map(keys).unwrap_or_default() {
        assert!(
            secrets.contains(&key),
            "{path}: job `{id}` passes undeclared secret {key}"
        );
    }
    let granted = perms(job);
    for (callee_id, callee_job) in jobs(&callee) {
        for (scope, level) in perms(callee_job) {
            let ok = match granted.get(&scope).map(String::as_str) {
                Some("write") => true,
                Some("read") => level == "read",
                _ => false,
            };
            assert!(
                ok,
                "{path}: job `{id}` grants {scope}: {:?}, the reusable workflow's `{callee_id}` needs {level}",
                granted.get(&scope)
            );
        }
    }
}

#[test]
fn the_release_checks_the_tag_against_cargo_and_builds_both_platforms() {
    let text = read(".github/workflows/release.yml");
    let wf = yaml("release.yml", &text);
    let tags = triggers(&wf)
        .and_then(|on| on.get("push"))
        .and_then(|p| p.get("tags"))
        .and_then(Value::as_sequence)
        .expect("on: push: tags");
    assert!(
        tags.iter()
            .filter_map(Value::as_str)
            .all(|t| t.starts_with('v'))
    );
    let scripts: Vec<&str> = jobs(&wf)
        .into_iter()
        .flat_map(|(_, j)| steps(j))
        .filter_map(|s| str_of(s, "run"))
        .collect();
    assert!(
        scripts
            .iter()
            .any(|s| s.contains("cargo metadata") && s.contains("\"v$version\"")),
        "a step compares the tag with Cargo.toml's version"
    );
    let platforms: Vec<&str> = jobs(&wf)
        .into_iter()
        .flat_map(|(_, j)| steps(j))
        .filter_map(|s| s.get("with").and_then(|w| str_of(w, "platforms")))
        .collect();
    assert!(
        platforms.contains(&"linux/amd64,linux/arm64"),
        "builds linux/amd64 and linux/arm64: {platforms:?}"
    );
}

// ---- the rules fail on broken copies -------------------------------------------------------

const GOOD: &str = r#"
name: good
on: push
permissions: {}
jobs:
  a:
    runs-on: ubuntu-latest
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2
      - env:
          TITLE: ${{ github.event.issue.title }}
        run: echo "$TITLE"
"#;

fn problems_of(text: &str) -> Vec<String> {
    workflow_problems("test.yml", text, &action_inputs())
}

#[test]
fn rule_a_good_workflow_passes() {
    assert_none(problems_of(GOOD));
}

#[test]
fn rule_expressions_in_scripts_are_refused() {
    for bad in [
        r#"run: echo "${{ github.event.issue.title }}""#,
        r#"run: echo "${{ inputs.parent_issue }}""#,
        r#"run: echo "${{ matrix.name }}""#,
    ] {
        let text = GOOD.replace(r#"run: echo "$TITLE""#, bad);
        assert!(
            problems_of(&text)
                .iter()
                .any(|p| p.contains("`run:` contains")),
            "not refused: {bad}"
        );
    }
}

#[test]
fn rule_unpinned_or_uncommented_actions_are_refused() {
    for (bad, expect) in [
        ("actions/checkout@v6", "not pinned"),
        ("actions/checkout@main", "not pinned"),
        ("actions/checkout@de0fac2e", "not pinned"),
        ("actions/checkout", "names no version"),
        ("docker://alpine:3", "not this version's image"),
        (
            &format!("{OWN_REPO}@v0.0.1") as &str,
            "should name this version",
        ),
    ] {
        let text = GOOD.replace(
            "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2",
            bad,
        );
        let problems = problems_of(&text);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{bad}: {problems:?}"
        );
    }
    let uncommented = GOOD.replace(" # v6.0.2", "");
    assert!(
        problems_of(&uncommented)
            .iter()
            .any(|p| p.contains("needs its version"))
    );
}

#[test]
fn rule_missing_permissions_are_refused() {
    let no_top = GOOD.replace("permissions: {}\n", "");
    assert!(problems_of(&no_top).iter().any(|p| p.contains("top level")));
    let broad_top = GOOD.replace("permissions: {}", "permissions: write-all");
    assert!(
        problems_of(&broad_top)
            .iter()
            .any(|p| p.contains("top level"))
    );
    let no_job = GOOD.replace("    permissions:\n      contents: read\n", "");
    assert!(
        problems_of(&no_job)
            .iter()
            .any(|p| p.contains("job `a` has no explicit"))
    );
}

#[test]
fn rule_container_steps_pass_only_declared_inputs() {
    let step = format!(
        "      - uses: {}\n        with:\n          mode: split\n          parallelism-level: massive\n",
        image()
    );
    let text = format!("{GOOD}{step}");
    let problems = problems_of(&text);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`with: parallelism-level` is not an input")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("lacks `github_token`")),
        "{problems:?}"
    );
    let bad_mode = format!(
        "{GOOD}      - uses: {}\n        with:\n          mode: splitt\n          github_token: x\n",
        image()
    );
    assert!(
        problems_of(&bad_mode)
            .iter()
            .any(|p| p.contains("`mode: splitt`"))
    );
}

#[test]
fn rule_dockerfile_problems_are_found() {
    let good = read("Dockerfile");
    assert_none(dockerfile_problems(&good));
    let cases = [
        ("FROM scratch", "FROM alpine:3.22", "final stage"),
        (
            "RUN [\"/usr/local/bin/parallel-orchestrator\", \"--version\"]",
            "",
            "--version",
        ),
        ("ENV SSL_CERT_FILE", "ENV NOTHING", "SSL_CERT_FILE"),
        ("--locked", "", "--locked"),
    ];
    for (from, to, expect) in cases {
        assert!(
            good.contains(from),
            "the Dockerfile no longer contains {from}"
        );
        let broken = good.replace(from, to);
        let problems = dockerfile_problems(&broken);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "replacing {from:?} was not noticed: {problems:?}"
        );
    }
}

#[test]
fn rule_help_options_are_read_with_wrapped_entries() {
    let help = "\
Usage: x [OPTIONS]

Options:
      --github-token <TOKEN>       Token [default: $GITHUB_TOKEN] [env:
                                   INPUT_GITHUB_TOKEN]
      --dry-run [<BOOL>]           Read [env: INPUT_DRY_RUN=] [default: false]
  -h, --help                       Print help

Examples:
  x --dry-run
";
    let options = help_options(help);
    assert_eq!(
        options.keys().collect::<Vec<_>>(),
        ["--dry-run", "--github-token", "--help"]
    );
    assert!(options["--github-token"].contains("[env: INPUT_GITHUB_TOKEN]"));
    assert!(options["--dry-run"].contains("[default: false]"));
    assert!(!options["--help"].contains("Examples"));

    let long = "\
Options:
      --mode <MODE>
          The mode to run

          [env: INPUT_MODE=]

  -V, --version
          Print version
";
    let options = help_options(long);
    assert!(options["--mode"].contains("[env: INPUT_MODE=]"));
    assert_eq!(options["--version"], "-V, --version Print version");
}
