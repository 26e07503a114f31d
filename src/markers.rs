//! The machine-readable parts of issue bodies: the task marker of a worker issue, and the
//! dashboard region of the parent, which is the only part of the parent's body ever changed.

use crate::plan::Task;
use serde::{Deserialize, Serialize};

pub const TASK_PREFIX: &str = "<!-- parallel-orchestrator:task ";
pub const DASHBOARD_START: &str = "<!-- parallel-orchestrator:dashboard:start -->";
pub const DASHBOARD_END: &str = "<!-- parallel-orchestrator:dashboard:end -->";
pub const SPEC_ERROR: &str = "<!-- parallel-orchestrator:spec-error -->";
pub const STATE_PREFIX: &str = "<!-- parallel-orchestrator:state ";
pub const INTEGRATION_PREFIX: &str = "<!-- parallel-orchestrator:integration ";

/// Run state kept in the dashboard region between rounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// When the dashboard was last drawn (epoch seconds), to throttle workers' refreshes.
    pub updated: u64,
    /// The state fingerprint that last started a wave, so the same state never starts two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched: Option<String>,
    /// The run's parallelism level, so a worker's redraw estimates the ETA as aggregate does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
}

/// What the integration PR has taken in, kept in its body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationState {
    /// Task ids merged, with the branch head that was merged.
    #[serde(default)]
    pub merged: std::collections::BTreeMap<String, String>,
    /// Task ids whose branch conflicted, with the head that conflicted (tried again when it moves).
    #[serde(default)]
    pub conflicts: std::collections::BTreeMap<String, String>,
}

/// `<!-- {prefix}{json} -->` with `<` and `>` escaped inside the JSON.
pub fn encode_json_marker(prefix: &str, value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).expect("markers serialize");
    format!(
        "{prefix}{} -->",
        json.replace('<', "\\u003c").replace('>', "\\u003e")
    )
}

pub fn decode_json_marker<T: serde::de::DeserializeOwned>(prefix: &str, text: &str) -> Option<T> {
    let start = text.find(prefix)? + prefix.len();
    let end = start + text[start..].find("-->")?;
    serde_json::from_str(text[start..end].trim()).ok()
}

/// What a worker issue carries: its parent and its whole task, so a worker needs nothing but
/// the issue number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMarker {
    pub parent: u64,
    #[serde(flatten)]
    pub task: Task,
    /// Other tasks of the run (its own node's first), so the worker knows what not to do
    /// without listing every issue: 100 workers listing 250 issues would spend GitHub's hourly
    /// request allowance for a job token on reads alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub siblings: Vec<Sibling>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    pub id: String,
    pub title: String,
}

/// Most siblings carried in one marker (the prompt notes how many more there are).
pub const MAX_SIBLINGS: usize = 100;

impl TaskMarker {
    /// The marker as an HTML comment. `<` and `>` are escaped inside the JSON (`\u003c`), so
    /// no text from the spec can end the comment early and smuggle Markdown out of it.
    pub fn encode(&self) -> String {
        encode_json_marker(TASK_PREFIX, self)
    }

    /// The first task marker in `body`, if it parses.
    pub fn decode(body: &str) -> Option<TaskMarker> {
        decode_json_marker(TASK_PREFIX, body)
    }
}

/// Byte range of the dashboard region's content (between the markers), if the body has one.
/// The first end marker, and the last start marker before it, so an orphaned start marker
/// above (a hand edit) never makes us swallow the text in between.
fn region(body: &str) -> Option<(usize, usize)> {
    let end = body.find(DASHBOARD_END)?;
    let start = body[..end].rfind(DASHBOARD_START)? + DASHBOARD_START.len();
    Some((start, end))
}

/// The body with the dashboard region's content replaced by `content`, or the region appended
/// at the end. Everything outside the region is kept byte for byte.
pub fn replace_dashboard(body: &str, content: &str) -> String {
    let content = content.trim_matches('\n');
    match region(body) {
        Some((start, end)) => format!("{}\n{content}\n{}", &body[..start], &body[end..]),
        None => {
            let sep = if body.is_empty() || body.ends_with("\n\n") || body.ends_with("\r\n\r\n") {
                ""
            } else if body.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{body}{sep}{DASHBOARD_START}\n{content}\n{DASHBOARD_END}\n")
        }
    }
}

/// The current dashboard content, if any.
pub fn dashboard_content(body: &str) -> Option<&str> {
    region(body).map(|(s, e)| body[s..e].trim_matches('\n'))
}

/// The body with the region's content blanked out line for line, so the spec is never read
/// from the dashboard and line numbers stay those of the body.
pub fn without_dashboard(body: &str) -> String {
    match region(body) {
        Some((start, end)) => {
            let blank: String = body[start..end].chars().filter(|&c| c == '\n').collect();
            format!("{}{blank}{}", &body[..start], &body[end..])
        }
        None => body.to_string(),
    }
}

/// Markdown fence that `text` cannot close: longer than any run of backticks inside it.
pub fn fenced(info: &str, text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{info}\n{}\n{fence}", text.trim_end())
}

/// Text from an untrusted source, made safe to put in an issue body we write: @mentions
/// defused (a spec must not ping people from 100 issues) and HTML comments opened in it closed
/// off (they could hide a fake marker).
pub fn defuse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<char> = None;
    for c in text.chars() {
        out.push(c);
        if c == '@' && prev.is_none_or(|p| !p.is_ascii_alphanumeric()) {
            // A zero-width space after `@` keeps the text readable but not a mention.
            out.push('\u{200B}');
        }
        prev = Some(c);
    }
    out.replace("<!--", "&lt;!--")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Origin, Task};
    use crate::spec::{Priority, ResolvedTemplate};

    fn task(title: &str) -> Task {
        Task {
            id: "n/x".into(),
            node: "n".into(),
            title: title.into(),
            description: "do it".into(),
            origin: Origin::Component,
            agent_type: None,
            language: None,
            priority: Priority::Medium,
            dependencies: vec![],
            allowed_paths: vec![],
            template: ResolvedTemplate::resolve(None, None),
        }
    }

    #[test]
    fn task_marker_round_trips_and_cannot_be_closed_early() {
        let m = TaskMarker {
            parent: 7,
            task: task("evil --> <script>"),
            siblings: vec![Sibling {
                id: "n/y".into(),
                title: "<!-- y -->".into(),
            }],
        };
        let text = m.encode();
        assert!(
            text.starts_with("<!-- parallel-orchestrator:task {\"parent\":7,\"id\":\"n/x\""),
            "{text}"
        );
        assert_eq!(text.matches("-->").count(), 1, "{text}");
        assert!(!text.contains("<script>"));
        let body = format!("Prose\n\n{text}\n");
        assert_eq!(TaskMarker::decode(&body), Some(m));
        assert_eq!(TaskMarker::decode("no marker"), None);
        assert_eq!(
            TaskMarker::decode("<!-- parallel-orchestrator:task {broken -->"),
            None
        );
    }

    #[test]
    fn dashboard_is_appended_then_replaced_leaving_the_rest_byte_for_byte() {
        let body = "Intro\r\n\r\n```json\r\n{}\r\n```\r\nTail text";
        let once = replace_dashboard(body, "v1");
        assert!(once.starts_with(body));
        assert_eq!(dashboard_content(&once), Some("v1"));
        let twice = replace_dashboard(&once, "v2\nmore");
        assert_eq!(twice, once.replace("\nv1\n", "\nv2\nmore\n"));
        // Text after the region survives too.
        let with_after = format!("{twice}After the region\r\n");
        let thrice = replace_dashboard(&with_after, "v3");
        assert!(thrice.ends_with("After the region\r\n"));
        assert!(thrice.starts_with(body));
        assert_eq!(dashboard_content(&thrice), Some("v3"));
    }

    #[test]
    fn an_orphaned_start_marker_is_left_alone() {
        let body = format!("a\n{DASHBOARD_START}\nuser text\n");
        let out = replace_dashboard(&body, "d");
        assert!(out.starts_with(&body));
        let again = replace_dashboard(&out, "e");
        assert!(
            again.starts_with(&body),
            "the user's text after the orphan stays"
        );
        assert_eq!(dashboard_content(&again), Some("e"));
    }

    #[test]
    fn without_dashboard_keeps_line_numbers() {
        let body = replace_dashboard("top\n", "```json\n{\"nodes\":[]}\n```");
        let blanked = without_dashboard(&body);
        assert_eq!(blanked.lines().count(), body.lines().count());
        assert!(!blanked.contains("nodes"));
    }

    #[test]
    fn fences_outgrow_backticks_in_the_text() {
        assert_eq!(fenced("text", "a"), "```text\na\n```");
        assert_eq!(fenced("", "x ```` y"), "`````\nx ```` y\n`````");
    }

    #[test]
    fn defuse_breaks_mentions_and_comments_only() {
        assert_eq!(
            defuse("ping @octocat and mail a@b.c"),
            "ping @\u{200B}octocat and mail a@b.c"
        );
        assert_eq!(
            defuse("<!-- parallel-orchestrator:task {} -->"),
            "&lt;!-- parallel-orchestrator:task {} -->"
        );
    }
}
