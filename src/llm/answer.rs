//! The worker's answer: its shape, its JSON schema, and how it is read out of a model's text.
//!
//! Reading is lenient about *where* the JSON sits (bare, in a ```` ```json ```` fence, or the
//! first balanced object in prose) and about extra keys, but strict about the two required
//! keys and their types. Every problem found is described in words a model can act on, because
//! the client sends that description back when it re-asks.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// What the model answers: a summary for the pull request and the files to write.
///
/// Extra keys in the model's object are accepted and ignored (models like to add some);
/// `summary` and `files` are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAnswer {
    pub summary: String,
    pub files: Vec<AnswerFile>,
}

/// One file of the answer: a path relative to the repository root and its full new content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerFile {
    pub path: String,
    pub content: String,
}

/// The JSON schema of [`ModelAnswer`], in the form OpenAI's strict structured outputs accept
/// (every property required, `additionalProperties: false`).
pub fn answer_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "summary": {
                "type": "string",
                "description": "What was done and why, in a few sentences of Markdown, for the pull request."
            },
            "files": {
                "type": "array",
                "description": "Every file to create or replace, with its complete new content.",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {
                            "type": "string",
                            "description": "Path relative to the repository root, with forward slashes, e.g. src/lib.rs."
                        },
                        "content": {
                            "type": "string",
                            "description": "The complete content of the file."
                        }
                    },
                    "required": ["path", "content"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["summary", "files"],
        "additionalProperties": false
    })
}

/// Instructions on the answer format, for the caller's system prompt. Servers without structured
/// output only know the shape from the prompt, and OpenAI's `json_object` mode refuses a
/// conversation that never says "JSON", so every prompt should carry this text.
pub const ANSWER_INSTRUCTIONS: &str = "Answer with one JSON object and nothing else: \
{\"summary\": \"<what you did and why, a few sentences>\", \"files\": [{\"path\": \"<path relative to \
the repository root, forward slashes>\", \"content\": \"<the complete new content of the file>\"}]}. \
List only files you create or change, each once, with its full content. Do not touch .git or .github.";

/// Why a model's text could not be read as a [`ModelAnswer`]. `Display` is a sentence meant
/// for both the user and the model (it is sent back on the re-ask).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerProblem {
    /// The message had no text at all.
    Empty,
    /// No JSON object could be found in the text.
    NoJson { detail: String },
    /// A JSON value was found but it is not an object.
    NotAnObject { found: &'static str },
    /// The object does not match the schema; one entry per problem, e.g. "`files[1].path` is missing".
    Schema(Vec<String>),
}

impl fmt::Display for AnswerProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerProblem::Empty => f.write_str("the answer was empty"),
            AnswerProblem::NoJson { detail } => {
                write!(f, "the answer contains no valid JSON object ({detail})")
            }
            AnswerProblem::NotAnObject { found } => {
                write!(f, "the answer is a JSON {found}, not an object")
            }
            AnswerProblem::Schema(problems) => {
                write!(
                    f,
                    "the JSON object does not match the required shape: {}",
                    problems.join("; ")
                )
            }
        }
    }
}

impl std::error::Error for AnswerProblem {}

/// Read a [`ModelAnswer`] out of a model's text: the whole text as JSON, else the first
/// ```` ```json ```` fence (or a bare ```` ``` ```` fence holding an object), else the first
/// balanced `{…}` that parses.
pub fn parse_answer(text: &str) -> Result<ModelAnswer, AnswerProblem> {
    let value = extract_json(text)?;
    validate(&value)
}

/// Find the JSON value in a model's text (see [`parse_answer`] for the order tried).
pub fn extract_json(text: &str) -> Result<Value, AnswerProblem> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AnswerProblem::Empty);
    }
    let whole_err = match serde_json::from_str::<Value>(trimmed) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if let Some(block) = first_fence(trimmed) {
        match serde_json::from_str::<Value>(block.trim()) {
            Ok(v) => return Ok(v),
            Err(e) => {
                // A fence was clearly meant as the answer: say what is wrong inside it,
                // unless a balanced object elsewhere parses.
                if let Some(v) = first_balanced_object(trimmed) {
                    return Ok(v);
                }
                return Err(AnswerProblem::NoJson {
                    detail: format!("the ```json block does not parse: {e}"),
                });
            }
        }
    }
    if let Some(v) = first_balanced_object(trimmed) {
        return Ok(v);
    }
    let detail = if trimmed.starts_with('{') {
        format!("it does not parse: {whole_err}")
    } else {
        "expected a {\"summary\": …, \"files\": […]} object".to_string()
    };
    Err(AnswerProblem::NoJson { detail })
}

/// Check a JSON value against the answer schema, collecting every problem.
pub fn validate(value: &Value) -> Result<ModelAnswer, AnswerProblem> {
    let Some(obj) = value.as_object() else {
        return Err(AnswerProblem::NotAnObject {
            found: json_kind(value),
        });
    };
    let mut problems = Vec::new();
    let summary = match obj.get("summary") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(format!(
                "`summary` is {}, expected a string",
                with_article(other)
            ));
            None
        }
        None => {
            problems.push("`summary` is missing".to_string());
            None
        }
    };
    let mut files = Vec::new();
    match obj.get("files") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let Some(file) = item.as_object() else {
                    problems.push(format!(
                        "`files[{i}]` is {}, expected an object with path and content",
                        with_article(item)
                    ));
                    continue;
                };
                let path = string_field(file, "path", i, &mut problems);
                let content = string_field(file, "content", i, &mut problems);
                if let (Some(path), Some(content)) = (path, content) {
                    files.push(AnswerFile { path, content });
                }
            }
        }
        Some(other) => problems.push(format!(
            "`files` is {}, expected an array",
            with_article(other)
        )),
        None => problems.push("`files` is missing".to_string()),
    }
    match (summary, problems.is_empty()) {
        (Some(summary), true) => Ok(ModelAnswer { summary, files }),
        _ => Err(AnswerProblem::Schema(problems)),
    }
}

fn string_field(
    file: &serde_json::Map<String, Value>,
    key: &str,
    i: usize,
    problems: &mut Vec<String>,
) -> Option<String> {
    match file.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(format!(
                "`files[{i}].{key}` is {}, expected a string",
                with_article(other)
            ));
            None
        }
        None => {
            problems.push(format!("`files[{i}].{key}` is missing"));
            None
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn with_article(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The body of the first ```` ```json ```` fence, or of the first bare ```` ``` ```` fence whose
/// body starts with `{`. An unclosed fence runs to the end of the text.
fn first_fence(text: &str) -> Option<&str> {
    let mut rest = text;
    let mut offset = 0;
    while let Some(pos) = rest.find("```") {
        let after = &rest[pos + 3..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let info = after[..line_end].trim();
        let body_start = (line_end + 1).min(after.len());
        let body_all = &after[body_start..];
        let (body, consumed) = match body_all.find("```") {
            Some(end) => (&body_all[..end], body_start + end + 3),
            None => (body_all, after.len()),
        };
        let is_json = info.eq_ignore_ascii_case("json") || info.eq_ignore_ascii_case("jsonc");
        if is_json || (info.is_empty() && body.trim_start().starts_with('{')) {
            return Some(body);
        }
        offset += pos + 3 + consumed;
        rest = &text[offset..];
    }
    None
}

/// The first `{…}` in the text that is balanced (braces outside strings) and parses as JSON.
/// At most 64 starting points are tried, so a long text full of braces stays cheap.
fn first_balanced_object(text: &str) -> Option<Value> {
    let bytes = text.as_bytes();
    let mut tried = 0;
    let mut start = 0;
    while let Some(rel) = text[start..].find('{') {
        let open = start + rel;
        tried += 1;
        if tried > 64 {
            return None;
        }
        if let Some(close) = balanced_end(bytes, open)
            && let Ok(v) = serde_json::from_str::<Value>(&text[open..=close])
            && v.is_object()
        {
            return Some(v);
        }
        start = open + 1;
    }
    None
}

/// Index of the `}` closing the `{` at `open`, skipping braces inside JSON strings.
fn balanced_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The first `max_chars` characters of `text`, with `…` when cut; for error messages.
pub(crate) fn excerpt(text: &str, max_chars: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    match trimmed.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"summary":"did it","files":[{"path":"a.txt","content":"hi"}]}"#;

    fn good() -> ModelAnswer {
        ModelAnswer {
            summary: "did it".into(),
            files: vec![AnswerFile {
                path: "a.txt".into(),
                content: "hi".into(),
            }],
        }
    }

    #[test]
    fn bare_json() {
        assert_eq!(parse_answer(GOOD).unwrap(), good());
        assert_eq!(parse_answer(&format!("\n  {GOOD}  \n")).unwrap(), good());
    }

    #[test]
    fn fenced_json_with_prose() {
        let text = format!("Here you go:\n```json\n{GOOD}\n```\nHope it helps {{:}}");
        assert_eq!(parse_answer(&text).unwrap(), good());
        let upper = format!("```JSON\n{GOOD}\n```");
        assert_eq!(parse_answer(&upper).unwrap(), good());
        let bare = format!("text\n```\n{GOOD}\n```");
        assert_eq!(parse_answer(&bare).unwrap(), good());
    }

    #[test]
    fn fence_after_another_fence() {
        let text = format!("```rust\nfn main() {{}}\n```\nand\n```json\n{GOOD}\n```");
        assert_eq!(parse_answer(&text).unwrap(), good());
    }

    #[test]
    fn unclosed_fence() {
        let text = format!("```json\n{GOOD}");
        assert_eq!(parse_answer(&text).unwrap(), good());
    }

    #[test]
    fn balanced_object_in_prose() {
        let text = format!("Sure! {{not json}} The answer is {GOOD} — done.");
        assert_eq!(parse_answer(&text).unwrap(), good());
    }

    #[test]
    fn braces_inside_strings_do_not_confuse() {
        let text = r#"ok: {"summary":"a } b {","files":[{"path":"x.rs","content":"fn f() { \"}\" }"}]} end"#;
        let a = parse_answer(text).unwrap();
        assert_eq!(a.summary, "a } b {");
        assert_eq!(a.files[0].content, "fn f() { \"}\" }");
    }

    #[test]
    fn extra_keys_accepted() {
        let text =
            r#"{"summary":"s","files":[{"path":"p","content":"c","mode":"100644"}],"notes":1}"#;
        let a = parse_answer(text).unwrap();
        assert_eq!(a.files.len(), 1);
    }

    #[test]
    fn missing_and_wrong_types_all_reported() {
        let text = r#"{"files":[{"path":1},"x"]}"#;
        let err = parse_answer(text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`summary` is missing"), "{msg}");
        assert!(msg.contains("`files[0].path` is a number"), "{msg}");
        assert!(msg.contains("`files[0].content` is missing"), "{msg}");
        assert!(msg.contains("`files[1]` is a string"), "{msg}");
    }

    #[test]
    fn files_wrong_type() {
        let err = parse_answer(r#"{"summary":"s","files":"a.txt"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("`files` is a string, expected an array")
        );
    }

    #[test]
    fn not_json() {
        assert_eq!(parse_answer("   ").unwrap_err(), AnswerProblem::Empty);
        assert!(matches!(
            parse_answer("I cannot do that.").unwrap_err(),
            AnswerProblem::NoJson { .. }
        ));
        assert!(matches!(
            parse_answer("[1,2]").unwrap_err(),
            AnswerProblem::NotAnObject { found: "array" }
        ));
        let cut = r#"{"summary":"s","files":[{"path":"a","content":"unterminated"#;
        let err = parse_answer(cut).unwrap_err();
        assert!(err.to_string().contains("does not parse"), "{err}");
    }

    #[test]
    fn broken_fence_reports_parse_error() {
        let err = parse_answer("```json\n{\"summary\": \n```").unwrap_err();
        assert!(
            err.to_string().contains("```json block does not parse"),
            "{err}"
        );
    }

    #[test]
    fn schema_is_strict_mode_compatible() {
        let s = answer_schema();
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"], serde_json::json!(["summary", "files"]));
        let item = &s["properties"]["files"]["items"];
        assert_eq!(item["additionalProperties"], false);
        assert_eq!(item["required"], serde_json::json!(["path", "content"]));
    }

    #[test]
    fn excerpt_is_char_safe() {
        assert_eq!(excerpt("héllo\nwörld", 7), "héllo w…");
        assert_eq!(excerpt("short", 10), "short");
    }
}
