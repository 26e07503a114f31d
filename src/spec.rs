//! The workflow spec a parent issue carries: its model, and parsing from JSON, YAML or an
//! issue body in Markdown, with errors that say where (line and column) and how to fix it.
//!
//! The shapes follow the seed document: `nodes` of type `agent` (with `agentType`,
//! `subTasks`, `components`, `language`, `sources`, `testTypes`, `operation`) or `parallel`
//! (with `config.tasks`), task `id` / `dependencies` / `priority`, and a `workerTemplate`.
//! Unknown keys are refused (a typo such as `dependancies` would otherwise be silently
//! ignored); the error names the keys that are allowed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The most tasks one spec may expand to. Every task is an issue, a branch and a PR; GitHub
/// lets one token create about 500 pieces of content an hour, and a run of 500 tasks already
/// needs several hours of paced writes (see the `plan` budget).
pub const MAX_TASKS: usize = 500;

/// A parsed, syntactically valid spec (semantic checks happen when it is planned).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// Free text shown to every worker as the overall goal, besides the issue's own prose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Shorthand from the seed's Priority/Dependencies snippets: top-level `tasks` are one
    /// `parallel` node whose id is `tasks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<TaskSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_template: Option<WorkerTemplate>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    #[serde(default)]
    pub config: NodeConfig,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Overrides the spec's `workerTemplate` for this node's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_template: Option<WorkerTemplate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Agent,
    Parallel,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Agent => "agent",
            NodeKind::Parallel => "parallel",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<AgentType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_tasks: Option<Vec<TaskSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_types: Option<Vec<String>>,
    /// The tasks of a `parallel` node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<TaskSpec>>,
    /// Globs (relative to the repository root) the workers of this node may write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_paths: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentType {
    Manager,
    CodeGenerator,
    DataProcessor,
}

impl fmt::Display for AgentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AgentType::Manager => "manager",
            AgentType::CodeGenerator => "code-generator",
            AgentType::DataProcessor => "data-processor",
        })
    }
}

/// One entry of `subTasks`, of a `parallel` node's `tasks`, or of the top-level `tasks`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What to do, in a few words (`"Setup project structure"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Which kind of agent a manager hands the task to (`"worker"`); informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TaskKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<TaskConfig>,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A task inside a `parallel` node is always one agent; nesting nodes is not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Agent,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<AgentType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_paths: Option<Vec<String>>,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    High,
    #[default]
    #[serde(alias = "normal")]
    Medium,
    Low,
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        })
    }
}

/// How each worker job runs. Every key is optional; unset keys take the defaults below.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkerTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// Minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
}

/// A worker template with every key resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedTemplate {
    pub runner: String,
    pub timeout: u32,
    pub retries: u32,
    pub cache: bool,
}

impl ResolvedTemplate {
    pub const DEFAULT_RUNNER: &'static str = "ubuntu-latest";
    pub const DEFAULT_TIMEOUT: u32 = 30;
    pub const DEFAULT_RETRIES: u32 = 1;
    /// GitHub-hosted jobs are cut at 6 hours.
    pub const MAX_TIMEOUT: u32 = 360;
    pub const MAX_RETRIES: u32 = 5;

    /// `node` wins over `spec`, `spec` over the defaults.
    pub fn resolve(spec: Option<&WorkerTemplate>, node: Option<&WorkerTemplate>) -> Self {
        let pick =
            |f: fn(&WorkerTemplate) -> Option<_>| node.and_then(f).or_else(|| spec.and_then(f));
        ResolvedTemplate {
            runner: node
                .and_then(|t| t.runner.clone())
                .or_else(|| spec.and_then(|t| t.runner.clone()))
                .unwrap_or_else(|| Self::DEFAULT_RUNNER.to_string()),
            timeout: pick(|t| t.timeout).unwrap_or(Self::DEFAULT_TIMEOUT),
            retries: pick(|t| t.retries).unwrap_or(Self::DEFAULT_RETRIES),
            cache: node
                .and_then(|t| t.cache)
                .or_else(|| spec.and_then(|t| t.cache))
                .unwrap_or(false),
        }
    }
}

/// Where in the source document something is: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// A spec that cannot be used, with where it went wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub message: String,
    pub location: Option<Location>,
    pub help: Option<String>,
}

impl SpecError {
    pub fn new(message: impl Into<String>) -> Self {
        SpecError {
            message: message.into(),
            location: None,
            help: None,
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid workflow spec")?;
        if let Some(loc) = self.location {
            write!(f, " at line {}, column {}", loc.line, loc.column)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

impl SpecError {
    /// The error with the offending line of `document` quoted and a caret under the column,
    /// the way compilers show it: `origin` names the document (a path, or `issue #12`).
    pub fn render(&self, origin: &str, document: &str) -> String {
        let mut out = String::from("invalid workflow spec: ");
        out.push_str(&self.message);
        if let Some(loc) = self.location {
            out.push_str(&format!("\n  --> {origin}:{}:{}", loc.line, loc.column));
            let document = document.replace("\r\n", "\n");
            if let Some(line) = document.split('\n').nth(loc.line.saturating_sub(1)) {
                let number = loc.line.to_string();
                let pad = " ".repeat(number.len());
                // Tabs would misplace the caret; show them as one space.
                let shown: String = line
                    .chars()
                    .map(|c| if c == '\t' { ' ' } else { c })
                    .take(200)
                    .collect();
                let caret_at = loc.column.saturating_sub(1).min(shown.chars().count());
                out.push_str(&format!(
                    "\n {pad} |\n {number} | {shown}\n {pad} | {}^",
                    " ".repeat(caret_at)
                ));
            }
        } else {
            out.push_str(&format!("\n  --> {origin}"));
        }
        if let Some(help) = &self.help {
            out.push_str("\n  help: ");
            out.push_str(help);
        }
        out
    }
}

/// Which syntax a spec was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// The spec's source text as found in a file or issue body, ready to parse, and able to point
/// back at positions in the original document.
#[derive(Debug, Clone)]
pub struct Source {
    /// The spec text itself (a fence's content, or the whole document), LF line endings.
    pub text: String,
    pub format: Format,
    /// Lines of the original document before `text` starts (the fence's opening line and
    /// everything above it), so reported lines are the document's.
    pub line_offset: usize,
}

impl Source {
    /// Finds the spec in a document: the first ```json / ```yaml / ```yml fence of a Markdown
    /// body, or else the whole document (JSON when it starts with `{`, YAML otherwise).
    pub fn find(document: &str) -> Source {
        // Bodies saved by GitHub's web UI use CRLF.
        let text = document.replace("\r\n", "\n");
        if let Some((format, line_offset, body)) = first_fence(&text) {
            return Source {
                text: body,
                format,
                line_offset,
            };
        }
        let format = if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        };
        Source {
            text,
            format,
            line_offset: 0,
        }
    }

    /// A location inside `text` (1-based) as a location in the original document.
    fn document_location(&self, line: usize, column: usize) -> Location {
        Location {
            line: line + self.line_offset,
            column,
        }
    }

    /// Best-effort position of a scalar value in the source: the `nth` (0-based) occurrence
    /// of `value` as a whole token, optionally only where it is the value of `key`.
    pub fn locate(&self, key: Option<&str>, value: &str, nth: usize) -> Option<Location> {
        self.locate_where(value, nth, |k| key.is_none_or(|key| k == Some(key)))
    }

    /// Like [`Source::locate`], for a value that is not the value of `key` (a dependency
    /// naming a node, rather than the node's own `id`).
    pub fn locate_not(&self, key: &str, value: &str) -> Option<Location> {
        self.locate_where(value, 0, |k| k != Some(key))
    }

    fn locate_where(
        &self,
        value: &str,
        nth: usize,
        want: impl Fn(Option<&str>) -> bool,
    ) -> Option<Location> {
        if value.is_empty() {
            return None;
        }
        let bytes = self.text.as_bytes();
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'/';
        let mut seen = 0;
        for (pos, _) in self.text.match_indices(value) {
            let end = pos + value.len();
            if (pos > 0 && is_word(bytes[pos - 1])) || (end < bytes.len() && is_word(bytes[end])) {
                continue;
            }
            if !want(key_before(&self.text[..pos])) {
                continue;
            }
            if seen == nth {
                let line = self.text[..pos].matches('\n').count() + 1;
                let line_start = self.text[..pos].rfind('\n').map_or(0, |i| i + 1);
                // Point at the opening quote when there is one.
                let mut col = self.text[line_start..pos].chars().count() + 1;
                if pos > 0 && matches!(bytes[pos - 1], b'"' | b'\'') {
                    col -= 1;
                }
                return Some(self.document_location(line, col));
            }
            seen += 1;
        }
        None
    }

    pub fn parse(&self) -> Result<Spec, SpecError> {
        if self.text.trim().is_empty() {
            return Err(SpecError::new("the workflow spec is empty")
                .at(Some(self.document_location(1, 1)))
                .help(EMPTY_HELP));
        }
        match self.format {
            Format::Json => serde_json::from_str::<Spec>(&self.text).map_err(|e| {
                let location = (e.line() > 0).then(|| self.document_location(e.line(), e.column()));
                let message = strip_position(&e.to_string());
                let help = syntax_help(&message, e.classify() == serde_json::error::Category::Data);
                SpecError::new(message).at(location).help(help)
            }),
            Format::Yaml => {
                // A body of plain prose parses as a YAML string: say what was expected instead.
                let value: serde_norway::Value =
                    serde_norway::from_str(&self.text).map_err(|e| self.yaml_error(e, false))?;
                if !value.is_mapping() {
                    return Err(SpecError::new(
                        "no workflow spec found: expected a ```json or ```yaml block with `nodes`",
                    )
                    .at(Some(self.document_location(1, 1)))
                    .help(EMPTY_HELP));
                }
                serde_norway::from_str::<Spec>(&self.text).map_err(|e| self.yaml_error(e, true))
            }
        }
    }

    fn yaml_error(&self, e: serde_norway::Error, data: bool) -> SpecError {
        let location = e
            .location()
            .map(|l| self.document_location(l.line(), l.column()));
        let message = strip_position(&e.to_string());
        let help = syntax_help(&message, data);
        SpecError::new(message).at(location).help(help)
    }
}

const EMPTY_HELP: &str = "put the workflow in the issue body as a fenced ```json block, e.g. \
    {\"nodes\": [{\"id\": \"backend\", \"type\": \"agent\", \"config\": {\"components\": [\"API\"]}}]}";

fn syntax_help(message: &str, data: bool) -> &'static str {
    if !data {
        "fix the syntax at that position (a missing comma, quote or bracket is the usual cause)"
    } else if message.starts_with("unknown field") {
        "check the key's spelling: the keys allowed at that place are listed above (the README's spec reference explains each)"
    } else if message.starts_with("unknown variant") {
        "use one of the values listed above"
    } else if message.starts_with("missing field") {
        "add that key: every node needs an `id` and a `type` (`agent` or `parallel`)"
    } else {
        "see the spec reference in the README for the keys each node and task takes, and their types"
    }
}

/// The key whose value starts right after `before` (`"id": ` or `id: `), if any.
fn key_before(before: &str) -> Option<&str> {
    let before = before.trim_end_matches(['"', '\'']).trim_end();
    let before = before.strip_suffix(':')?;
    let before = before.trim_end().trim_end_matches(['"', '\'']);
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(0, |i| i + 1);
    Some(&before[start..])
}

/// serde's messages end with " at line X column Y"; the location is reported separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The first fenced block tagged json, yaml or yml: its format, the number of lines before its
/// content, and the content.
fn first_fence(text: &str) -> Option<(Format, usize, String)> {
    let lines: Vec<&str> = text.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let fence_char = match trimmed.chars().next() {
            Some(c @ ('`' | '~')) => c,
            _ => continue,
        };
        let fence_len = trimmed.chars().take_while(|&c| c == fence_char).count();
        if fence_len < 3 || indent > 3 {
            continue;
        }
        let info = trimmed[fence_len..].trim().to_ascii_lowercase();
        let format = match info.split_whitespace().next() {
            Some("json" | "jsonc") => Format::Json,
            Some("yaml" | "yml") => Format::Yaml,
            _ => continue,
        };
        let mut body = Vec::new();
        for inner in &lines[i + 1..] {
            let t = inner.trim_start();
            if t.starts_with(&fence_char.to_string().repeat(fence_len))
                && t.trim_end().chars().all(|c| c == fence_char)
            {
                break;
            }
            body.push(*inner);
        }
        return Some((format, i + 1, body.join("\n")));
    }
    None
}

/// Parses a spec from any document: a JSON or YAML file, or an issue body in Markdown.
pub fn parse_document(document: &str) -> Result<(Spec, Source), SpecError> {
    let source = Source::find(document);
    let spec = source.parse()?;
    Ok((spec, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_json_fence_and_counts_lines_before_it() {
        let body = "Intro\r\n\r\n```json\r\n{\"nodes\": []}\r\n```\r\n```yaml\r\nx: 1\r\n```\r\n";
        let src = Source::find(body);
        assert_eq!(src.format, Format::Json);
        assert_eq!(src.text, "{\"nodes\": []}");
        assert_eq!(src.line_offset, 3);
    }

    #[test]
    fn finds_a_yaml_fence_with_tilde() {
        let src = Source::find("~~~yml\nnodes: []\n~~~\n");
        assert_eq!(src.format, Format::Yaml);
        assert_eq!(src.text, "nodes: []");
    }

    #[test]
    fn ignores_fences_of_other_languages() {
        let src = Source::find("```bash\necho hi\n```\n{\"nodes\": []}");
        // No json/yaml fence: the whole document is the spec (and it is not JSON at its start).
        assert_eq!(src.format, Format::Yaml);
        assert_eq!(src.line_offset, 0);
    }

    #[test]
    fn whole_document_json() {
        let src = Source::find("  {\"nodes\": []}");
        assert_eq!(src.format, Format::Json);
    }

    #[test]
    fn json_syntax_error_reports_document_line_and_column() {
        let body = "# Title\n\n```json\n{\n  \"nodes\": [\n    {\"id\": \"a\" \"type\": \"agent\"}\n  ]\n}\n```";
        let err = parse_document(body).unwrap_err();
        assert_eq!(
            err.location,
            Some(Location {
                line: 6,
                column: 16
            })
        );
        assert!(
            err.message.contains("expected `,` or `}`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn yaml_syntax_error_reports_document_line() {
        let body = "```yaml\nnodes:\n  - id: a\n    type: agent\n   bad: [\n```";
        let err = parse_document(body).unwrap_err();
        let loc = err.location.expect("yaml errors carry a location");
        assert!(loc.line >= 4, "{loc:?}");
    }

    #[test]
    fn unknown_node_type_names_the_allowed_ones() {
        let err = parse_document(r#"{"nodes":[{"id":"a","type":"agnet"}]}"#).unwrap_err();
        assert!(
            err.message.contains("unknown variant `agnet`"),
            "{}",
            err.message
        );
        assert!(err.message.contains("`agent`"));
        assert!(err.message.contains("`parallel`"));
        assert_eq!(err.location.map(|l| l.line), Some(1));
    }

    #[test]
    fn misspelled_key_is_refused_with_the_allowed_keys() {
        let err = parse_document(r#"{"nodes":[{"id":"a","type":"agent","dependancies":[]}]}"#)
            .unwrap_err();
        assert!(
            err.message.contains("unknown field `dependancies`"),
            "{}",
            err.message
        );
        assert!(err.message.contains("`dependencies`"));
    }

    #[test]
    fn prose_is_not_a_spec() {
        let err = parse_document("Please build me a shop.").unwrap_err();
        assert!(
            err.message.contains("no workflow spec found"),
            "{}",
            err.message
        );
    }

    #[test]
    fn empty_document_is_refused() {
        let err = parse_document("```json\n\n```").unwrap_err();
        assert_eq!(err.message, "the workflow spec is empty");
    }

    #[test]
    fn yaml_and_json_give_the_same_spec() {
        let json = r#"{"nodes":[{"id":"t","type":"agent","config":{"agentType":"code-generator","testTypes":["unit-tests"]},"priority":"high"}],"workerTemplate":{"retries":2}}"#;
        let yaml = "nodes:\n  - id: t\n    type: agent\n    priority: high\n    config:\n      agentType: code-generator\n      testTypes: [unit-tests]\nworkerTemplate:\n  retries: 2\n";
        assert_eq!(
            parse_document(json).unwrap().0,
            parse_document(yaml).unwrap().0
        );
    }

    #[test]
    fn locate_finds_key_values_and_skips_partial_words() {
        let src = Source::find(
            "x\n```json\n{\"nodes\":[\n {\"id\": \"api\", \"dependencies\": [\"api-v2\"]},\n {\"id\": \"api\"}]}\n```",
        );
        assert_eq!(
            src.locate(Some("id"), "api", 0),
            Some(Location { line: 4, column: 9 })
        );
        assert_eq!(
            src.locate(Some("id"), "api", 1),
            Some(Location { line: 5, column: 9 })
        );
        assert_eq!(src.locate(None, "api-v2", 0).map(|l| l.line), Some(4));
        assert_eq!(src.locate(None, "missing", 0), None);
    }

    #[test]
    fn template_resolution_prefers_node_then_spec_then_default() {
        let spec = WorkerTemplate {
            runner: Some("self-hosted".into()),
            timeout: Some(10),
            ..Default::default()
        };
        let node = WorkerTemplate {
            timeout: Some(5),
            ..Default::default()
        };
        let t = ResolvedTemplate::resolve(Some(&spec), Some(&node));
        assert_eq!(t.runner, "self-hosted");
        assert_eq!(t.timeout, 5);
        assert_eq!(t.retries, ResolvedTemplate::DEFAULT_RETRIES);
        assert!(!t.cache);
    }
}
