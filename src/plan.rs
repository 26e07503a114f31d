//! The planner: expands a spec's nodes into micro-tasks, checks them, and groups them into
//! waves by dependencies and the parallelism level. Pure: no I/O, deterministic.
//!
//! Expansion rules (also in the README):
//! - each entry of an agent's `components`, `subTasks`, `sources` and `testTypes` is one task;
//! - each entry of a `parallel` node's `config.tasks` (and of the top-level `tasks`) is one task;
//! - an agent node with none of those lists is one task (the node itself).
//!
//! Task ids are `<node-id>/<slug>`, the slug taken from the entry's `id` when it has one, else
//! from its text. A task's `dependencies` name sibling tasks of the same node (by `id` or slug),
//! whole tasks (`node/slug`), or whole nodes (every task of that node); a node's `dependencies`
//! apply to each of its tasks.

use crate::spec::{
    AgentType, Location, MAX_TASKS, Node, NodeKind, Priority, ResolvedTemplate, Source, Spec,
    SpecError, TaskSpec,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

/// Most workers in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Level(u32);

impl Level {
    pub const MAX: u32 = 100;
    pub const SMALL: Level = Level(10);
    pub const MEDIUM: Level = Level(30);
    pub const LARGE: Level = Level(60);
    pub const MASSIVE: Level = Level(100);

    pub fn get(self) -> usize {
        self.0 as usize
    }

    pub fn new(n: u32) -> Option<Level> {
        (1..=Self::MAX).contains(&n).then_some(Level(n))
    }
}

impl Default for Level {
    fn default() -> Self {
        Level::MEDIUM
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "small" => return Ok(Level::SMALL),
            "medium" => return Ok(Level::MEDIUM),
            "large" => return Ok(Level::LARGE),
            "massive" => return Ok(Level::MASSIVE),
            _ => {}
        }
        s.parse::<u32>().ok().and_then(Level::new).ok_or_else(|| {
            format!(
                "`{s}` is not a parallelism level: use small (10), medium (30), large (60), \
                     massive (100) or a number from 1 to 100"
            )
        })
    }
}

/// Where a task came from in its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Component,
    SubTask,
    Source,
    TestType,
    ParallelTask,
    Node,
}

/// One micro-task: one worker issue, one branch, one pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// `<node-id>/<slug>`, stable for the same spec.
    pub id: String,
    pub node: String,
    pub title: String,
    /// What to do, written to be handed to a model as is.
    pub description: String,
    pub origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<AgentType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub priority: Priority,
    /// Ids of the tasks that must complete first, sorted.
    pub dependencies: Vec<String>,
    /// Globs the worker may write; empty means anywhere allowed by the output policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_paths: Vec<String>,
    pub template: ResolvedTemplate,
}

impl Task {
    /// The flat branch-safe form of the id: `backend/user-api` → `backend--user-api`. Flat so
    /// that no worker branch is a prefix directory of another (`parallel/<parent>/integration`).
    pub fn slug(&self) -> String {
        self.id.replace('/', "--")
    }
}

/// A checked, expanded spec with its waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub level: Level,
    /// In spec order.
    pub tasks: Vec<Task>,
    /// Task ids per wave, each wave at most `level` long, in the order they would start.
    pub waves: Vec<Vec<String>>,
}

impl Plan {
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// The job matrix split emits: one entry per task to start now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    pub include: Vec<MatrixEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixEntry {
    /// The worker issue; `null` in an offline plan, where no issue exists yet.
    pub issue: Option<u64>,
    pub task: String,
    pub name: String,
    /// From the spec's `workerTemplate`, for `runs-on` and `timeout-minutes`.
    pub runner: String,
    pub timeout: u32,
}

impl MatrixEntry {
    pub fn new(task: &Task, issue: Option<u64>) -> MatrixEntry {
        MatrixEntry {
            issue,
            task: task.id.clone(),
            name: task.title.clone(),
            runner: task.template.runner.clone(),
            timeout: task.template.timeout,
        }
    }
}

/// The state of a task as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Completed,
    Failed,
    Blocked,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Queued,
        State::Running,
        State::Completed,
        State::Failed,
        State::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Blocked => "blocked",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tasks to start now: queued, every dependency completed, highest priority first then
/// spec order, no more than `level` minus what is already running. The same rule makes the
/// static waves of a plan and the live waves of a run.
pub fn ready(tasks: &[Task], state: impl Fn(&str) -> State, level: Level) -> Vec<&Task> {
    let running = tasks
        .iter()
        .filter(|t| state(&t.id) == State::Running)
        .count();
    let room = level.get().saturating_sub(running);
    let mut candidates: Vec<(usize, &Task)> = tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| state(&t.id) == State::Queued)
        .filter(|(_, t)| t.dependencies.iter().all(|d| state(d) == State::Completed))
        .collect();
    candidates.sort_by_key(|(i, t)| (t.priority, *i));
    candidates.into_iter().take(room).map(|(_, t)| t).collect()
}

/// Expands, checks and schedules a spec. `source` is used to point errors at their line.
pub fn plan(spec: &Spec, source: &Source, level: Level) -> Result<Plan, SpecError> {
    let tasks = expand(spec, source)?;
    let waves = waves(&tasks, level);
    Ok(Plan {
        level,
        tasks,
        waves,
    })
}

fn waves(tasks: &[Task], level: Level) -> Vec<Vec<String>> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut waves = Vec::new();
    while done.len() < tasks.len() {
        let state = |id: &str| {
            if done.contains(id) {
                State::Completed
            } else {
                State::Queued
            }
        };
        let wave = ready(tasks, state, level);
        // Cycles were refused in `expand`, so every round makes progress.
        assert!(
            !wave.is_empty(),
            "no progress while scheduling: a dependency cycle slipped through"
        );
        done.extend(wave.iter().map(|t| t.id.as_str()));
        waves.push(wave.into_iter().map(|t| t.id.clone()).collect());
    }
    waves
}

/// A task before its dependencies are resolved.
struct Draft {
    task: Task,
    /// The entry's own `id` as written (for sibling references).
    local_id: Option<String>,
    slug: String,
    raw_dependencies: Vec<String>,
}

fn expand(spec: &Spec, source: &Source) -> Result<Vec<Task>, SpecError> {
    let mut nodes: Vec<Node> = spec.nodes.clone();
    if let Some(tasks) = &spec.tasks {
        nodes.push(Node {
            id: "tasks".to_string(),
            kind: NodeKind::Parallel,
            config: crate::spec::NodeConfig {
                tasks: Some(tasks.clone()),
                ..Default::default()
            },
            dependencies: Vec::new(),
            priority: None,
            description: None,
            worker_template: None,
        });
    }
    if nodes.is_empty() {
        return Err(SpecError::new("the workflow has no nodes, so there is nothing to do")
            .at(Some(Location { line: 1 + source.line_offset, column: 1 }))
            .help("add at least one node to `nodes`, e.g. {\"id\": \"backend\", \"type\": \"agent\", \"config\": {\"components\": [\"API\"]}}"));
    }

    // Node ids: well-formed and unique.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for node in &nodes {
        let nth = *seen.get(node.id.as_str()).unwrap_or(&0);
        check_node_id(&node.id, source.locate(Some("id"), &node.id, nth))?;
        if nth > 0 {
            return Err(
                SpecError::new(format!("two nodes have the id `{}`", node.id))
                    .at(source.locate(Some("id"), &node.id, nth))
                    .help("node ids must be unique: rename one of them"),
            );
        }
        seen.insert(&node.id, nth + 1);
    }

    let mut drafts: Vec<Draft> = Vec::new();
    for node in &nodes {
        let template =
            ResolvedTemplate::resolve(spec.worker_template.as_ref(), node.worker_template.as_ref());
        check_template(&template, &node.id, source)?;
        let node_drafts = expand_node(node, template, source)?;
        // Slugs unique within the node.
        let mut slugs: BTreeMap<&str, &Draft> = BTreeMap::new();
        for d in &node_drafts {
            if let Some(first) = slugs.insert(&d.slug, d) {
                return Err(SpecError::new(format!(
                    "node `{}` has two tasks that both become `{}` (\"{}\" and \"{}\")",
                    node.id, d.task.id, first.task.title, d.task.title
                ))
                .at(source
                    .locate(None, &d.task.title, 0)
                    .or_else(|| source.locate(Some("id"), &node.id, 0)))
                .help("give one of them a distinct `id`, or rename it"));
            }
        }
        drafts.extend(node_drafts);
    }

    if drafts.len() > MAX_TASKS {
        return Err(SpecError::new(format!(
            "the workflow expands to {} tasks; one run holds at most {MAX_TASKS}",
            drafts.len()
        ))
        .at(Some(Location {
            line: 1 + source.line_offset,
            column: 1,
        }))
        .help(
            "split the work over several parent issues, or merge small entries into larger ones",
        ));
    }

    resolve_dependencies(&nodes, &mut drafts, source)?;
    let tasks: Vec<Task> = drafts.into_iter().map(|d| d.task).collect();
    check_cycles(&tasks, source)?;
    Ok(tasks)
}

fn check_node_id(id: &str, at: Option<Location>) -> Result<(), SpecError> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    let well_formed = !id.is_empty()
        && id.len() <= 64
        && ok_chars
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !id.contains("--")
        && !id.ends_with(".lock")
        && !id.contains("..");
    if well_formed {
        Ok(())
    } else {
        Err(SpecError::new(format!("`{id}` is not a usable node id"))
            .at(at)
            .help("node ids name branches and labels: use 1-64 letters, digits, `-`, `_` or `.`, starting with a letter or digit (no `--`), e.g. `backend-development`"))
    }
}

fn check_template(t: &ResolvedTemplate, node: &str, source: &Source) -> Result<(), SpecError> {
    let at = || source.locate(None, "workerTemplate", 0);
    if t.timeout == 0 || t.timeout > ResolvedTemplate::MAX_TIMEOUT {
        return Err(SpecError::new(format!(
            "workerTemplate timeout {} for node `{node}` is out of range",
            t.timeout
        ))
        .at(at())
        .help(format!(
            "`timeout` is in minutes, from 1 to {} (GitHub stops a job after 6 hours)",
            ResolvedTemplate::MAX_TIMEOUT
        )));
    }
    if t.retries > ResolvedTemplate::MAX_RETRIES {
        return Err(SpecError::new(format!(
            "workerTemplate retries {} for node `{node}` is too many",
            t.retries
        ))
        .at(at())
        .help(format!(
            "use 0 to {} retries",
            ResolvedTemplate::MAX_RETRIES
        )));
    }
    let runner_ok = !t.runner.is_empty()
        && t.runner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !runner_ok {
        return Err(
            SpecError::new(format!("`{}` is not a runner label", t.runner))
                .at(source.locate(Some("runner"), &t.runner, 0))
                .help(
                    "use one runner label such as `ubuntu-latest` (letters, digits, `-`, `_`, `.`)",
                ),
        );
    }
    Ok(())
}

fn expand_node(
    node: &Node,
    template: ResolvedTemplate,
    source: &Source,
) -> Result<Vec<Draft>, SpecError> {
    let c = &node.config;
    let node_at = || source.locate(Some("id"), &node.id, 0);
    let lists: [(&str, bool); 4] = [
        ("components", c.components.is_some()),
        ("subTasks", c.sub_tasks.is_some()),
        ("sources", c.sources.is_some()),
        ("testTypes", c.test_types.is_some()),
    ];
    match node.kind {
        NodeKind::Parallel => {
            if let Some((key, _)) = lists.iter().find(|(_, present)| *present) {
                return Err(SpecError::new(format!(
                    "node `{}` is `parallel` but has `{key}`, which only agent nodes take",
                    node.id
                ))
                .at(source.locate(None, key, 0).or_else(node_at))
                .help("make it `\"type\": \"agent\"`, or list the work as `config.tasks`"));
            }
            if c.tasks.as_ref().is_none_or(|t| t.is_empty()) {
                return Err(SpecError::new(format!("parallel node `{}` has no `config.tasks`", node.id))
                    .at(node_at())
                    .help("a parallel node runs its `config.tasks` side by side: add at least one, e.g. {\"type\": \"agent\", \"config\": {\"operation\": \"normalize\"}}"));
            }
        }
        NodeKind::Agent => {
            if c.tasks.is_some() {
                return Err(SpecError::new(format!(
                    "node `{}` is an agent but has `config.tasks`, which only parallel nodes take",
                    node.id
                ))
                .at(node_at())
                .help("make it `\"type\": \"parallel\"`, or use `subTasks` for a manager agent"));
            }
            if let Some((key, _)) = [
                ("components", c.components.as_ref().map(Vec::len)),
                ("subTasks", c.sub_tasks.as_ref().map(Vec::len)),
                ("sources", c.sources.as_ref().map(Vec::len)),
                ("testTypes", c.test_types.as_ref().map(Vec::len)),
            ]
            .into_iter()
            .find(|(_, len)| *len == Some(0))
            {
                return Err(SpecError::new(format!(
                    "node `{}` has an empty `{key}` list",
                    node.id
                ))
                .at(source.locate(None, key, 0).or_else(node_at))
                .help(format!("add entries to `{key}` or remove the key")));
            }
        }
    }

    let base = TaskBase {
        node,
        template,
        priority: node.priority.unwrap_or_default(),
    };
    let mut drafts = Vec::new();
    let language = c.language.as_deref();
    let lang_suffix = language.map(|l| format!(" in {l}")).unwrap_or_default();
    let node_context = node_context(node);

    for (key, entries) in [
        ("components", &c.components),
        ("sources", &c.sources),
        ("testTypes", &c.test_types),
    ] {
        let Some(entries) = entries else { continue };
        for entry in entries {
            let text = entry.trim();
            if text.is_empty() {
                return Err(SpecError::new(format!(
                    "node `{}` has an empty entry in `{key}`",
                    node.id
                ))
                .at(source.locate(None, key, 0).or_else(node_at))
                .help("remove the empty string or write what the entry is"));
            }
            let (origin, description) = match key {
                "components" => (
                    Origin::Component,
                    format!(
                        "Implement the **{text}** component{lang_suffix}.\n\n{node_context}\nBuild only {text}; the node's other components are separate tasks."
                    ),
                ),
                "sources" => (
                    Origin::Source,
                    format!(
                        "Write the ingestion for the data source **{text}**{lang_suffix}: fetch, parse and load its records, with error handling and tests.\n\n{node_context}\nHandle only {text}; the other sources are separate tasks."
                    ),
                ),
                _ => (
                    Origin::TestType,
                    format!(
                        "Write the **{text}** suite{lang_suffix} for the project: the test files, any fixtures they need, and how to run them.\n\n{node_context}\nWrite only {text}; the other test types are separate tasks."
                    ),
                ),
            };
            drafts.push(base.draft(text, None, origin, description, &[], None, None, None));
        }
    }

    for (key, list, origin) in [
        ("subTasks", &c.sub_tasks, Origin::SubTask),
        ("tasks", &c.tasks, Origin::ParallelTask),
    ] {
        let Some(list) = list else { continue };
        for (i, t) in list.iter().enumerate() {
            drafts.push(task_entry(
                &base,
                t,
                i,
                key,
                origin,
                &lang_suffix,
                &node_context,
                source,
            )?);
        }
    }

    if drafts.is_empty() {
        // An agent with no lists is one task: the node itself.
        let what = c
            .operation
            .clone()
            .or_else(|| c.description.clone())
            .or_else(|| node.description.clone())
            .unwrap_or_else(|| node.id.clone());
        let slug_source = c.operation.as_deref().unwrap_or("main");
        let description = match &c.operation {
            Some(op) => format!("Perform the **{op}** operation{lang_suffix}.\n\n{node_context}"),
            None => format!(
                "Carry out node `{}`{lang_suffix}: {what}.\n\n{node_context}",
                node.id
            ),
        };
        let mut d = base.draft(
            &what,
            None,
            Origin::Node,
            description,
            &[],
            None,
            None,
            None,
        );
        d.slug = slugify(slug_source, 0);
        d.task.id = format!("{}/{}", node.id, d.slug);
        drafts.push(d);
    }
    Ok(drafts)
}

/// What every task of a node shares.
struct TaskBase<'a> {
    node: &'a Node,
    template: ResolvedTemplate,
    priority: Priority,
}

impl TaskBase<'_> {
    #[allow(clippy::too_many_arguments)]
    fn draft(
        &self,
        title: &str,
        local_id: Option<&str>,
        origin: Origin,
        description: String,
        dependencies: &[String],
        priority: Option<Priority>,
        language: Option<&str>,
        allowed: Option<&[String]>,
    ) -> Draft {
        let c = &self.node.config;
        let slug = slugify(local_id.unwrap_or(title), 0);
        let mut raw_dependencies: Vec<String> = self.node.dependencies.clone();
        raw_dependencies.extend(dependencies.iter().cloned());
        Draft {
            task: Task {
                id: format!("{}/{}", self.node.id, slug),
                node: self.node.id.clone(),
                title: title.to_string(),
                description,
                origin,
                agent_type: c.agent_type,
                language: language.map(str::to_string).or_else(|| c.language.clone()),
                priority: priority.unwrap_or(self.priority),
                dependencies: Vec::new(),
                allowed_paths: allowed
                    .map(<[String]>::to_vec)
                    .or_else(|| c.allowed_paths.clone())
                    .unwrap_or_default(),
                template: self.template.clone(),
            },
            local_id: local_id.map(str::to_string),
            slug,
            raw_dependencies,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn task_entry(
    base: &TaskBase,
    t: &TaskSpec,
    index: usize,
    key: &str,
    origin: Origin,
    lang_suffix: &str,
    node_context: &str,
    source: &Source,
) -> Result<Draft, SpecError> {
    let node = base.node;
    let cfg = t.config.clone().unwrap_or_default();
    let title = t
        .task
        .clone()
        .or_else(|| cfg.operation.clone())
        .or_else(|| t.id.clone())
        .or_else(|| t.description.clone().or_else(|| cfg.description.clone()))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let Some(title) = title else {
        return Err(SpecError::new(format!(
            "entry {} of `{key}` in node `{}` does not say what to do",
            index + 1,
            node.id
        ))
        .at(source.locate(Some("id"), &node.id, 0))
        .help("give it a `task` (\"Setup project structure\"), a `config.operation` or an `id`"));
    };
    if let Some(id) = &t.id
        && slugify(id, 0) != slugify_strict(id)
    {
        return Err(SpecError::new(format!(
            "task id `{id}` in node `{}` is not usable",
            node.id
        ))
        .at(source.locate(Some("id"), id, 0))
        .help("task ids use letters, digits, `-` and `_` (they become part of branch names)"));
    }
    let lang_suffix = cfg
        .language
        .as_deref()
        .map(|l| format!(" in {l}"))
        .unwrap_or_else(|| lang_suffix.to_string());
    let mut description = match (&t.task, &cfg.operation) {
        (Some(task), _) => format!("{task}{lang_suffix}."),
        (None, Some(op)) => format!("Perform the **{op}** operation{lang_suffix}."),
        (None, None) => format!("{title}{lang_suffix}."),
    };
    for extra in [&t.description, &cfg.description].into_iter().flatten() {
        description.push_str("\n\n");
        description.push_str(extra);
    }
    description.push_str("\n\n");
    description.push_str(node_context);
    if let Some(agent) = &t.agent {
        description.push_str(&format!("\nHanded to a `{agent}` agent."));
    }
    let mut d = base.draft(
        &title,
        t.id.as_deref(),
        origin,
        description,
        &t.dependencies,
        t.priority,
        cfg.language.as_deref(),
        cfg.allowed_paths.as_deref(),
    );
    if let Some(agent_type) = cfg.agent_type {
        d.task.agent_type = Some(agent_type);
    }
    Ok(d)
}

fn node_context(node: &Node) -> String {
    let mut s = format!("Part of node `{}`", node.id);
    if let Some(agent) = node.config.agent_type {
        s.push_str(&format!(" ({agent} agent)"));
    }
    s.push('.');
    if let Some(d) = node
        .description
        .as_ref()
        .or(node.config.description.as_ref())
    {
        s.push(' ');
        s.push_str(d);
    }
    s
}

fn resolve_dependencies(
    nodes: &[Node],
    drafts: &mut [Draft],
    source: &Source,
) -> Result<(), SpecError> {
    let node_tasks: BTreeMap<&str, Vec<String>> = nodes
        .iter()
        .map(|n| {
            let ids = drafts
                .iter()
                .filter(|d| d.task.node == n.id)
                .map(|d| d.task.id.clone())
                .collect();
            (n.id.as_str(), ids)
        })
        .collect();
    let all_ids: BTreeSet<String> = drafts.iter().map(|d| d.task.id.clone()).collect();
    // (node, local id or slug) → task id
    let mut local: HashMap<(String, String), String> = HashMap::new();
    for d in drafts.iter() {
        local.insert((d.task.node.clone(), d.slug.clone()), d.task.id.clone());
        if let Some(l) = &d.local_id {
            local.insert((d.task.node.clone(), l.clone()), d.task.id.clone());
        }
    }
    for d in drafts.iter_mut() {
        let mut resolved = BTreeSet::new();
        for dep in &d.raw_dependencies {
            let ids: Vec<String> = if let Some(id) = local.get(&(d.task.node.clone(), dep.clone()))
            {
                vec![id.clone()]
            } else if all_ids.contains(dep) {
                vec![dep.clone()]
            } else if let Some(ids) = node_tasks.get(dep.as_str()) {
                ids.clone()
            } else {
                let mut known: Vec<&str> = node_tasks.keys().copied().collect();
                known.extend(all_ids.iter().map(String::as_str));
                known.extend(
                    local
                        .keys()
                        .filter(|(n, _)| *n == d.task.node)
                        .map(|(_, l)| l.as_str()),
                );
                let closest = known
                    .iter()
                    .map(|k| (strsim::levenshtein(k, dep), *k))
                    .filter(|(distance, _)| *distance <= 2)
                    .min();
                let help = match closest {
                    Some((_, k)) => format!("did you mean `{k}`?"),
                    None => {
                        let mut nodes: Vec<&str> = node_tasks.keys().copied().collect();
                        nodes.truncate(8);
                        format!(
                            "name a node id ({}), a task `id` of the same node, or a full task id such as `{}`",
                            nodes.join(", "),
                            d.task.id
                        )
                    }
                };
                return Err(SpecError::new(format!(
                    "`{}` depends on `{dep}`, which is neither a node nor a task of node `{}`",
                    d.task.id, d.task.node
                ))
                .at(source.locate_not("id", dep))
                .help(help));
            };
            for id in ids {
                if id == d.task.id {
                    return Err(SpecError::new(format!(
                        "dependency cycle: {} → {}",
                        d.task.id, d.task.id
                    ))
                    .at(source.locate_not("id", dep))
                    .help("a task cannot depend on itself (or on the node it belongs to): remove that dependency"));
                }
                resolved.insert(id);
            }
        }
        d.task.dependencies = resolved.into_iter().collect();
    }
    Ok(())
}

/// Refuses dependency cycles, naming one of them.
fn check_cycles(tasks: &[Task], source: &Source) -> Result<(), SpecError> {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done. Iterative DFS: specs may hold 500 tasks.
    let mut mark = vec![0u8; tasks.len()];
    for start in 0..tasks.len() {
        if mark[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(dep) = tasks[node].dependencies.get(*next) {
                *next += 1;
                let d = index[dep.as_str()];
                match mark[d] {
                    0 => {
                        mark[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(n, _)| *n == d).expect("on stack");
                        let mut cycle: Vec<&str> = stack[from..]
                            .iter()
                            .map(|(n, _)| tasks[*n].id.as_str())
                            .collect();
                        cycle.push(tasks[d].id.as_str());
                        // Read as "a waits for b waits for … a".
                        return Err(SpecError::new(format!("dependency cycle: {}", cycle.join(" → ")))
                            .at(locate_dependency(source, &tasks[d]))
                            .help("each arrow reads \"depends on\": remove one of these dependencies so the chain has a start"));
                    }
                    _ => {}
                }
            } else {
                mark[node] = 2;
                stack.pop();
            }
        }
    }
    Ok(())
}

/// Where a dependency on `task` is probably written: its full id, its slug, or its node's id
/// in a place other than an `id` key.
fn locate_dependency(source: &Source, task: &Task) -> Option<Location> {
    let slug = task.id.rsplit('/').next().unwrap_or_default();
    source
        .locate_not("id", &task.id)
        .or_else(|| source.locate_not("id", slug))
        .or_else(|| source.locate_not("id", &task.node))
}

/// Lower-case ASCII letters and digits, runs of anything else as one `-`, at most 48 bytes.
/// Empty results (a title of only symbols) become `task-<n>`.
pub fn slugify(text: &str, fallback_index: usize) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug = slug.trim_end_matches('-').to_string();
    if slug.len() > 48 {
        slug.truncate(48);
        slug = slug.trim_end_matches('-').to_string();
    }
    if slug.is_empty() {
        format!("task-{}", fallback_index + 1)
    } else {
        slug
    }
}

/// What an explicit task id must already look like: `slugify` must not need to change it
/// beyond lower-casing and `_` → `-`.
fn slugify_strict(id: &str) -> String {
    id.to_ascii_lowercase().replace('_', "-")
}

/// GitHub requests a run will make, and the least time GitHub's write limits allow for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub tasks: usize,
    pub waves: usize,
    pub split_writes: usize,
    pub worker_writes: usize,
    pub aggregate_writes: usize,
    pub total_writes: usize,
    /// Reads and writes together, for GitHub's hourly primary limit.
    pub total_requests: usize,
    /// Least whole minutes the writes need at 80 content-creating requests a minute and 500 an hour.
    pub min_minutes: u64,
}

/// The write requests each part of a run makes. The integration tests count the real requests
/// against these numbers, so the budget `plan` prints is the one the run keeps.
pub mod cost {
    /// Labels split may have to create: `copilot-worker`, `parent:N` and five `status:*`.
    pub const SPLIT_LABELS: usize = 7;
    /// Per worker issue: the create call (labels included) and its sub-issue link.
    pub const SPLIT_PER_TASK: usize = 2;
    /// Per split run: the parent's dashboard.
    pub const SPLIT_PER_RUN: usize = 1;
    /// Per worker: `status:running`, tree, commit, ref, pull request, `status:completed`.
    pub const WORKER_PER_TASK: usize = 6;
    /// Per worker with the integration branch on: its merge into the integration branch.
    pub const INTEGRATE_PER_TASK: usize = 1;
    /// Per aggregate round (one per wave): dashboard, next-wave dispatch, integration ref and PR.
    pub const AGGREGATE_PER_WAVE: usize = 4;
    /// Reads per worker: its issue, the parent, the repository, the base ref, the tree, the
    /// README, the parent again to see whether the dashboard is due.
    pub const WORKER_READS: usize = 7;
    /// Reads per split run: the parent (twice), labels, sub-issues, and the workers list (one
    /// page per 100 workers, counted apart).
    pub const SPLIT_READS_PER_WAVE: usize = 4;
    /// Reads per aggregate round: the parent (twice), the repository, the integration branch,
    /// and the workers and pull-request lists (one page per 100, counted apart).
    pub const AGGREGATE_READS_PER_WAVE: usize = 4;
    /// The primary limit of a job's `GITHUB_TOKEN` on github.com: requests an hour per repository.
    pub const GITHUB_TOKEN_PER_HOUR: usize = 1000;
    /// GitHub's secondary limits on content-creating requests for one token.
    pub const PER_MINUTE: usize = 80;
    pub const PER_HOUR: usize = 500;
}

impl Budget {
    pub fn of(plan: &Plan, integrate: bool) -> Budget {
        use cost::*;
        let tasks = plan.tasks.len();
        let waves = plan.waves.len();
        // Sub-issues: at most 100 per parent.
        let split_writes =
            SPLIT_LABELS + tasks * (SPLIT_PER_TASK - 1) + tasks.min(100) + SPLIT_PER_RUN * waves;
        let worker_writes = tasks * WORKER_PER_TASK;
        let aggregate_writes = AGGREGATE_PER_WAVE * waves
            + if integrate {
                tasks * INTEGRATE_PER_TASK
            } else {
                0
            };
        let total_writes = split_writes + worker_writes + aggregate_writes;
        let pages = tasks.div_ceil(100);
        let reads = waves * (SPLIT_READS_PER_WAVE + pages + AGGREGATE_READS_PER_WAVE + 2 * pages)
            + tasks * WORKER_READS;
        Budget {
            tasks,
            waves,
            split_writes,
            worker_writes,
            aggregate_writes,
            total_writes,
            total_requests: total_writes + reads,
            min_minutes: min_minutes(total_writes),
        }
    }
}

/// Least whole minutes for `writes` under 80 a minute and 500 an hour (every write is paced
/// as if it were content-creating, as GitHub advises for one token).
pub fn min_minutes(writes: usize) -> u64 {
    if writes == 0 {
        return 0;
    }
    let full_hours = (writes - 1) / cost::PER_HOUR;
    let rest = writes - full_hours * cost::PER_HOUR;
    (full_hours * 60 + rest.div_ceil(cost::PER_MINUTE)) as u64
}

#[cfg(test)]
mod tests;
