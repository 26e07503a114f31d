//! The LLM side of a worker: an OpenAI-compatible chat-completions client and the answer format.
//!
//! - [`LlmClient::generate`] sends the conversation, asks for the answer as JSON (a strict JSON
//!   schema first, stepping down to `json_object` and then to plain text on servers that refuse
//!   it), waits out throttling, retries outages, re-asks once on an unusable or cut-off answer.
//! - [`ModelAnswer`] is what comes back: a summary and files. The files are *not* checked here;
//!   run them through [`crate::policy::OutputPolicy`] before anything reaches GitHub.

mod answer;
mod client;
mod error;
pub mod wait;

pub use answer::{
    ANSWER_INSTRUCTIONS, AnswerFile, AnswerProblem, ModelAnswer, answer_schema, extract_json,
    parse_answer, validate,
};
pub use client::{
    DEFAULT_BASE_URL, DEFAULT_MODEL, Generation, LlmClient, LlmConfig, Message, ResponseFormatMode,
    Role, Usage,
};
pub use error::LlmError;
