//! What can go wrong talking to the model, each with what to do about it.

use super::wait::human;
use std::time::Duration;

/// An LLM call that did not produce a usable answer. Messages are lowercase and end with the
/// next step for the user.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The client could not be built from its configuration.
    #[error("invalid llm configuration: {0}")]
    Config(String),

    /// 401/403: the key was refused.
    #[error("the llm endpoint refused the api key (http {status}: {message}); {hint}")]
    Unauthorized {
        status: u16,
        message: String,
        hint: String,
    },

    /// 404: the URL or the model does not exist.
    #[error("the llm endpoint answered 404 for {url} with model `{model}` ({message}); {hint}")]
    NotFound {
        url: String,
        model: String,
        message: String,
        hint: String,
    },

    /// The prompt does not fit the model's context window. The caller should shrink its prompt
    /// (e.g. a smaller repository view) and ask again; the client never retries this itself.
    #[error(
        "the prompt is longer than the model's context window ({message}); send less context or choose a model with a larger window"
    )]
    ContextLengthExceeded { message: String },

    /// Still throttled after waiting as long as allowed.
    #[error(
        "the llm endpoint is still rate limiting after {} of waiting ({throttled} requests throttled; {reason}); lower parallelism_level, raise the wait limit, or use a provider with higher limits", human(*.waited)
    )]
    RateLimited {
        waited: Duration,
        throttled: u32,
        reason: String,
    },

    /// Server errors, timeouts or connection failures that outlasted the retries.
    #[error(
        "the llm endpoint at {url} kept failing after {attempts} attempts (last: {last}); check llm_base_url and the provider's status, then re-run the worker"
    )]
    Unavailable {
        url: String,
        attempts: u32,
        last: String,
    },

    /// The server kept answering 200 with a body that is not a chat completion (not JSON, not
    /// UTF-8, cut short, no choices). Nothing from such a body is ever used.
    #[error(
        "the llm endpoint sent {attempts} unusable responses (last: {reason}); nothing from them was used; check that llm_base_url points to an openai-compatible api"
    )]
    BadResponse { attempts: u32, reason: String },

    /// Any other 4xx: the server rejected the request itself.
    #[error(
        "the llm endpoint rejected the request (http {status}: {message}); check llm_model and that the server supports the chat completions api"
    )]
    BadRequest { status: u16, message: String },

    /// The model declined to answer.
    #[error("the model refused the task: {message}; rephrase the task or try another model")]
    Refused { message: String },

    /// The answer was cut off at the output limit, also after asking for a shorter one.
    #[error(
        "the model's answer was cut off at its output limit twice ({completion_tokens} completion tokens); split the task into smaller ones or use a model with a larger output limit"
    )]
    Truncated { completion_tokens: u64 },

    /// The answer could not be read as the required JSON object, also after one re-ask.
    #[error(
        "the model did not answer with the required json object, also after being asked again: {reason}; answer began: \"{excerpt}\"; try a more capable model"
    )]
    MalformedAnswer { reason: String, excerpt: String },
}

impl LlmError {
    /// Whether asking again later could help (throttling, outages, garbage from the server).
    /// Configuration, authorization, context-length and answer problems are not transient.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Unavailable { .. }
                | LlmError::BadResponse { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_actionable() {
        let e = LlmError::RateLimited {
            waited: Duration::from_secs(1800),
            throttled: 40,
            reason: "server asked for 3600s more".into(),
        };
        let m = e.to_string();
        assert!(
            m.starts_with("the llm endpoint is still rate limiting after 30m00s"),
            "{m}"
        );
        assert!(m.contains("lower parallelism_level"), "{m}");
        let e = LlmError::Truncated {
            completion_tokens: 4096,
        };
        assert!(e.to_string().contains("4096 completion tokens"));
        assert!(!e.is_transient());
    }
}
