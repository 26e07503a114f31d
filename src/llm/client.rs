//! The chat-completions client: structured output that degrades across servers, throttling that
//! is waited out, bounded retries for outages, and one re-ask for unusable answers.

use super::answer::{ModelAnswer, excerpt, parse_answer};
use super::error::LlmError;
use super::wait::{backoff, hint_jitter, human, server_hint};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::ops::AddAssign;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info, warn};

/// GitHub Models' OpenAI-compatible endpoint.
pub const DEFAULT_BASE_URL: &str = "https://models.github.ai/inference";
/// A "low" tier model on GitHub Models (15 requests a minute, 5 concurrent on the free plan).
pub const DEFAULT_MODEL: &str = "openai/gpt-4.1-mini";

/// Shortest wait after a 429, whatever the server says: a server answering `retry-after: 0` in
/// a loop would otherwise be hammered (the jitter comes on top).
const MIN_THROTTLE_WAIT: Duration = Duration::from_secs(1);
/// Longest wait taken on a 5xx's `retry-after` (a throttling 429 may ask for more, up to `max_wait`).
const MAX_OUTAGE_HINT: Duration = Duration::from_secs(300);
/// How much of an unusable answer is echoed back to the model when re-asking.
const MAX_ECHO_CHARS: usize = 32 * 1024;

/// Who says a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// How the answer's JSON shape is requested, from strictest to none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormatMode {
    /// `response_format: {"type":"json_schema","json_schema":{"name":…,"strict":true,"schema":…}}`
    /// (OpenAI, GitHub Models, Azure, vLLM, llama.cpp's llama-server).
    JsonSchema,
    /// `response_format: {"type":"json_object","schema":…}`: JSON mode, with the schema in
    /// llama-cpp-python's extension (servers without it ignore the key or reject it, which steps
    /// down again).
    JsonObject,
    /// No `response_format`; the JSON is read from the text (a ```` ```json ```` fence or the
    /// first balanced object).
    Plain,
}

impl ResponseFormatMode {
    /// The next, less demanding mode; `None` after `Plain`.
    pub fn lower(self) -> Option<Self> {
        match self {
            Self::JsonSchema => Some(Self::JsonObject),
            Self::JsonObject => Some(Self::Plain),
            Self::Plain => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JsonSchema => "json_schema",
            Self::JsonObject => "json_object",
            Self::Plain => "plain",
        }
    }

    fn response_format(self) -> Option<Value> {
        match self {
            Self::JsonSchema => Some(serde_json::json!({
                "type": "json_schema",
                "json_schema": {
                    "name": "worker_answer",
                    "strict": true,
                    "schema": super::answer::answer_schema(),
                }
            })),
            Self::JsonObject => Some(serde_json::json!({
                "type": "json_object",
                "schema": super::answer::answer_schema(),
            })),
            Self::Plain => None,
        }
    }
}

impl fmt::Display for ResponseFormatMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Token counts, summed over every request that got an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.total_tokens += o.total_tokens;
    }
}

/// A successful [`LlmClient::generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub answer: ModelAnswer,
    /// Summed over every request that got a completion (re-asks included).
    pub usage: Usage,
    /// HTTP requests sent, including throttled, failed and re-asked ones.
    pub requests: u32,
    /// The mode of the request whose answer was used.
    pub format_used: ResponseFormatMode,
    /// Total time spent sleeping (throttling and back-off).
    pub waited: Duration,
}

/// Where and how to call the model. Build with [`LlmConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Base URL; requests go to `{base_url}/chat/completions` (a trailing `/` is fine, and a URL
    /// that already ends in `/chat/completions` is used as is).
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …`; an empty key sends no header (local servers).
    pub api_key: Secret,
    /// Whole-request timeout (a long answer takes minutes). Default 300 s.
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout. Default 15 s.
    pub connect_timeout: Duration,
    /// Total time one `generate` may spend waiting on throttling (429) before giving up with
    /// [`LlmError::RateLimited`]. When the server asks for a wait longer than what is left, the
    /// client gives up at once instead of sleeping uselessly. Default 30 min.
    pub max_wait: Duration,
    /// Tries per request for server errors, timeouts, connection failures and unusable bodies.
    /// Default 4.
    pub max_attempts: u32,
    /// First back-off (doubles each retry, with jitter). Default 1 s.
    pub initial_backoff: Duration,
    /// Longest back-off when the server gives no hint. Default 60 s.
    pub max_backoff: Duration,
    /// Cap on every single sleep, server hints included. `None` (default) in production; tests
    /// set a few milliseconds so that waits stay short.
    pub wait_cap: Option<Duration>,
    /// The mode tried first. Default [`ResponseFormatMode::JsonSchema`].
    pub response_format: ResponseFormatMode,
    /// `max_tokens` to send; `None` (default) lets the server choose (and keeps reasoning models,
    /// which refuse `max_tokens`, working).
    pub max_tokens: Option<u32>,
    /// `temperature` to send; `None` (default) sends none (some models accept only the default).
    pub temperature: Option<f32>,
    /// Largest response body read. Default 32 MiB.
    pub max_response_bytes: usize,
}

impl LlmConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, api_key: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key,
            request_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(15),
            max_wait: Duration::from_secs(30 * 60),
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            wait_cap: None,
            response_format: ResponseFormatMode::JsonSchema,
            max_tokens: None,
            temperature: None,
            max_response_bytes: 32 * 1024 * 1024,
        }
    }

    /// The full chat-completions URL.
    pub fn endpoint(&self) -> String {
        let base = self.base_url.trim().trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        }
    }
}

/// An OpenAI-compatible chat-completions client. Cheap to clone; clones share the connection
/// pool and the remembered response-format mode.
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: LlmConfig,
    url: String,
    http: reqwest::Client,
    /// The mode to start with, and whether a request in that mode has succeeded.
    mode: Mutex<(ResponseFormatMode, bool)>,
}

impl fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmClient")
            .field("url", &self.inner.url)
            .field("model", &self.inner.config.model)
            .field("mode", &self.mode())
            .finish()
    }
}

/// Per-`generate` accounting.
#[derive(Default)]
struct CallState {
    usage: Usage,
    requests: u32,
    throttled: u32,
    throttle_waited: Duration,
    waited: Duration,
}

/// One chat completion that came back with a 2xx and a readable body.
#[derive(Debug)]
struct Completion {
    content: Option<String>,
    refusal: Option<String>,
    finish_reason: Option<String>,
    usage: Usage,
    mode: ResponseFormatMode,
}

/// What an error response says, from whichever of the common shapes it uses.
struct ErrorInfo {
    message: String,
    code: Option<String>,
    kind: Option<String>,
    raw_lower: String,
}

enum FailureKind {
    Server,
    Body,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        let url = config.endpoint();
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            LlmError::Config(format!(
                "llm_base_url `{}` is not a url: {e}",
                config.base_url
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::Config(format!(
                "llm_base_url `{}` must start with https:// (or http:// for a local server)",
                config.base_url
            )));
        }
        if config.model.trim().is_empty() {
            return Err(LlmError::Config(
                "llm_model is empty; set it, e.g. openai/gpt-4.1-mini".into(),
            ));
        }
        if config.max_attempts == 0 {
            return Err(LlmError::Config("max_attempts must be at least 1".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("parallel-orchestrator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build the http client: {e}")))?;
        let mode = Mutex::new((config.response_format, false));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                url,
                http,
                mode,
            }),
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.inner.config
    }

    /// The mode the next request starts with (the last one that worked, once one has).
    pub fn mode(&self) -> ResponseFormatMode {
        self.mode_state().0
    }

    fn mode_state(&self) -> (ResponseFormatMode, bool) {
        *self.inner.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, mode: ResponseFormatMode) {
        let mut m = self.inner.mode.lock().unwrap_or_else(|p| p.into_inner());
        if *m != (mode, true) {
            info!(
                "llm: response_format {mode} works with this server; using it for later requests"
            );
        }
        *m = (mode, true);
    }

    /// Ask the model and read its answer.
    ///
    /// One unusable answer (no JSON, wrong shape) is answered with a message saying what was
    /// wrong, once; one answer cut off at the output limit is answered with a request for a
    /// shorter one, once. Throttling is waited out up to `max_wait`; outages are retried
    /// `max_attempts` times. See [`LlmError`] for what ends a call.
    pub async fn generate(&self, messages: Vec<Message>) -> Result<Generation, LlmError> {
        let started = Instant::now();
        let mut conversation = messages;
        let mut st = CallState::default();
        let mut reasked_malformed = false;
        let mut reasked_truncated = false;
        loop {
            let c = self.complete(&conversation, &mut st).await?;
            let text = c.content.clone().unwrap_or_default();
            if c.finish_reason.as_deref() == Some("length") {
                if reasked_truncated {
                    return Err(LlmError::Truncated {
                        completion_tokens: c.usage.completion_tokens,
                    });
                }
                reasked_truncated = true;
                warn!(
                    "llm: the answer was cut off at the output limit ({} completion tokens); asking once for a shorter answer",
                    c.usage.completion_tokens
                );
                conversation.push(Message::user(
                    "Your previous answer was cut off because it exceeded the output limit, so it \
                     could not be used. Answer again with a shorter answer: fewer and smaller files, \
                     only what the task strictly needs, and a short summary. Answer with only the \
                     JSON object {\"summary\": …, \"files\": [{\"path\": …, \"content\": …}]}.",
                ));
                continue;
            }
            if text.trim().is_empty() {
                if let Some(refusal) = c.refusal.filter(|r| !r.trim().is_empty()) {
                    return Err(LlmError::Refused {
                        message: excerpt(&refusal, 300),
                    });
                }
                if c.finish_reason.as_deref() == Some("content_filter") {
                    return Err(LlmError::Refused {
                        message: "the provider's content filter stopped the answer".into(),
                    });
                }
            }
            match parse_answer(&text) {
                Ok(answer) => {
                    info!(
                        "llm: answer with {} file(s) in {} ({} request(s), {} tokens, response_format {})",
                        answer.files.len(),
                        human(started.elapsed()),
                        st.requests,
                        st.usage.total_tokens,
                        c.mode
                    );
                    return Ok(Generation {
                        answer,
                        usage: st.usage,
                        requests: st.requests,
                        format_used: c.mode,
                        waited: st.waited,
                    });
                }
                Err(problem) => {
                    if reasked_malformed {
                        return Err(LlmError::MalformedAnswer {
                            reason: problem.to_string(),
                            excerpt: excerpt(&text, 200),
                        });
                    }
                    reasked_malformed = true;
                    warn!("llm: the answer cannot be used ({problem}); asking once more");
                    conversation.push(Message::assistant(echo(&text)));
                    conversation.push(Message::user(format!(
                        "Your previous answer could not be used: {problem}. Answer again with only \
                         the JSON object {{\"summary\": string, \"files\": [{{\"path\": string, \
                         \"content\": string}}]}} — no prose before or after it, no code fence."
                    )));
                }
            }
        }
    }

    /// One chat completion: send, wait out throttling, retry outages, step down the format.
    async fn complete(
        &self,
        messages: &[Message],
        st: &mut CallState,
    ) -> Result<Completion, LlmError> {
        let cfg = &self.inner.config;
        let (mut mode, mut confirmed) = self.mode_state();
        let mut failures = 0u32;
        loop {
            st.requests += 1;
            let body = ChatRequest {
                model: &cfg.model,
                messages,
                response_format: mode.response_format(),
                max_tokens: cfg.max_tokens,
                temperature: cfg.temperature,
            };
            debug!(
                "llm: request {} to {} (response_format {mode})",
                st.requests, self.inner.url
            );
            let mut req = self.inner.http.post(&self.inner.url).json(&body);
            if !cfg.api_key.expose().is_empty() {
                req = req.bearer_auth(cfg.api_key.expose());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    failures += 1;
                    let reason = describe_transport(&e, cfg.request_timeout);
                    self.after_failure(failures, FailureKind::Server, &reason, None, st)
                        .await?;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = match read_body(resp, cfg.max_response_bytes).await {
                Ok(b) => b,
                Err(reason) => {
                    failures += 1;
                    let kind = if (200..300).contains(&status) {
                        FailureKind::Body
                    } else {
                        FailureKind::Server
                    };
                    self.after_failure(failures, kind, &reason, None, st)
                        .await?;
                    continue;
                }
            };

            if (200..300).contains(&status) {
                match parse_completion(&bytes) {
                    Ok(mut c) => {
                        c.mode = mode;
                        st.usage += c.usage;
                        self.remember(mode);
                        return Ok(c);
                    }
                    Err(reason) => {
                        failures += 1;
                        self.after_failure(failures, FailureKind::Body, &reason, None, st)
                            .await?;
                        continue;
                    }
                }
            }

            let info = ErrorInfo::parse(&bytes);
            let hint = server_hint(&headers, SystemTime::now());
            match status {
                429 => {
                    if info.is_context_length() {
                        return Err(LlmError::ContextLengthExceeded {
                            message: info.message,
                        });
                    }
                    self.throttled(&info, hint, st).await?;
                }
                403 if hint.is_some() || info.raw_lower.contains("rate limit") => {
                    self.throttled(&info, hint, st).await?;
                }
                401 | 403 => {
                    return Err(LlmError::Unauthorized {
                        status,
                        message: info.message,
                        hint: self.auth_hint(),
                    });
                }
                404 => {
                    let hint = if info.raw_lower.contains("model") {
                        format!(
                            "the model is probably unknown to this endpoint: check llm_model (github models ids look like {DEFAULT_MODEL}), then llm_base_url"
                        )
                    } else {
                        "the url is probably wrong: check llm_base_url (requests go to <llm_base_url>/chat/completions), then llm_model".to_string()
                    };
                    return Err(LlmError::NotFound {
                        url: self.inner.url.clone(),
                        model: cfg.model.clone(),
                        message: info.message,
                        hint,
                    });
                }
                413 => {
                    return Err(LlmError::ContextLengthExceeded {
                        message: info.message,
                    });
                }
                400..=499 if status != 408 && info.is_context_length() => {
                    return Err(LlmError::ContextLengthExceeded {
                        message: info.message,
                    });
                }
                400..=499
                    if status != 408
                        && mode != ResponseFormatMode::Plain
                        && info.mentions_format() =>
                {
                    mode = self.step_down(mode, status, &info);
                    confirmed = false;
                }
                400..=499 if status != 408 => {
                    return Err(LlmError::BadRequest {
                        status,
                        message: info.message,
                    });
                }
                500 if mode != ResponseFormatMode::Plain
                    && (info.mentions_format() || !confirmed) =>
                {
                    // llama-cpp-python answers 500 to a json_schema response_format. A 500 on a
                    // mode that has not worked yet is taken as that refusal: stepping down costs
                    // one request, retrying the same request would cost a storm.
                    mode = self.step_down(mode, status, &info);
                    confirmed = false;
                }
                _ => {
                    failures += 1;
                    let reason = format!("http {status}: {}", info.message);
                    let hint = hint.map(|h| h.min(MAX_OUTAGE_HINT));
                    self.after_failure(failures, FailureKind::Server, &reason, hint, st)
                        .await?;
                }
            }
        }
    }

    fn step_down(
        &self,
        mode: ResponseFormatMode,
        status: u16,
        info: &ErrorInfo,
    ) -> ResponseFormatMode {
        let lower = mode.lower().unwrap_or(ResponseFormatMode::Plain);
        info!(
            "llm: the server does not take response_format {mode} (http {status}: {}); trying {lower} instead",
            excerpt(&info.message, 160)
        );
        lower
    }

    /// A 429: wait as the server says (or back off), within the `max_wait` budget.
    async fn throttled(
        &self,
        info: &ErrorInfo,
        hint: Option<Duration>,
        st: &mut CallState,
    ) -> Result<(), LlmError> {
        let cfg = &self.inner.config;
        st.throttled += 1;
        let server_says = excerpt(&info.message, 160);
        if info.code.as_deref() == Some("insufficient_quota")
            || info.kind.as_deref() == Some("insufficient_quota")
        {
            return Err(LlmError::RateLimited {
                waited: st.throttle_waited,
                throttled: st.throttled,
                reason: format!(
                    "the account's quota is used up, waiting will not help: {server_says}"
                ),
            });
        }
        let wait = match hint {
            Some(h) => {
                let h = h.max(MIN_THROTTLE_WAIT);
                h + hint_jitter(h)
            }
            None => backoff(
                cfg.initial_backoff.max(MIN_THROTTLE_WAIT),
                cfg.max_backoff,
                st.throttled - 1,
            )
            .max(MIN_THROTTLE_WAIT),
        };
        let remaining = cfg.max_wait.saturating_sub(st.throttle_waited);
        if wait > remaining {
            let reason = match hint {
                Some(h) => format!(
                    "the server asks to wait {} more, {} of the {} wait budget is left; server said: {server_says}",
                    human(h),
                    human(remaining),
                    human(cfg.max_wait)
                ),
                None => format!(
                    "the {} wait budget is used up; server said: {server_says}",
                    human(cfg.max_wait)
                ),
            };
            return Err(LlmError::RateLimited {
                waited: st.throttle_waited,
                throttled: st.throttled,
                reason,
            });
        }
        let wait = self.capped(wait);
        let why = match hint {
            Some(h) => format!("throttled (http 429, server asks for {})", human(h)),
            None => "throttled (http 429, no retry hint, backing off)".to_string(),
        };
        self.pause(
            wait,
            &format!(
                "{why}; {} of {} wait budget used",
                human(st.throttle_waited),
                human(cfg.max_wait)
            ),
        )
        .await;
        st.throttle_waited += wait;
        st.waited += wait;
        Ok(())
    }

    /// A server error, timeout, connection failure or unusable body: back off, or give up after
    /// `max_attempts`.
    async fn after_failure(
        &self,
        failures: u32,
        kind: FailureKind,
        reason: &str,
        hint: Option<Duration>,
        st: &mut CallState,
    ) -> Result<(), LlmError> {
        let cfg = &self.inner.config;
        if failures >= cfg.max_attempts {
            return Err(match kind {
                FailureKind::Body => LlmError::BadResponse {
                    attempts: failures,
                    reason: reason.to_string(),
                },
                FailureKind::Server => LlmError::Unavailable {
                    url: self.inner.url.clone(),
                    attempts: failures,
                    last: reason.to_string(),
                },
            });
        }
        let wait = self.capped(
            hint.unwrap_or_else(|| backoff(cfg.initial_backoff, cfg.max_backoff, failures - 1)),
        );
        self.pause(
            wait,
            &format!(
                "{reason}; attempt {failures} of {} failed",
                cfg.max_attempts
            ),
        )
        .await;
        st.waited += wait;
        Ok(())
    }

    fn capped(&self, wait: Duration) -> Duration {
        match self.inner.config.wait_cap {
            Some(cap) => wait.min(cap),
            None => wait,
        }
    }

    /// The only place the client sleeps: logs the reason and the length once, then waits.
    async fn pause(&self, wait: Duration, why: &str) {
        warn!("llm: {why}; waiting {}", human(wait));
        tokio::time::sleep(wait).await;
    }

    fn auth_hint(&self) -> String {
        let host = reqwest::Url::parse(&self.inner.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        if host.ends_with("models.github.ai") || host.ends_with("models.inference.ai.azure.com") {
            "for github models the workflow job needs `permissions: models: read` (llm_api_key defaults to the job's github_token), or pass a token with github models access as llm_api_key".into()
        } else if self.inner.config.api_key.expose().is_empty() {
            format!("llm_api_key is empty; set it to a key for {host}")
        } else {
            format!("check that llm_api_key is a valid key for {host} and has access to the model")
        }
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

/// Read the whole body, refusing more than `max` bytes. A connection dropped mid-body is an error.
async fn read_body(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > max {
                    return Err(format!("the response body is larger than {max} bytes"));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(format!(
                    "the response body was cut short ({})",
                    error_chain(&e)
                ));
            }
        }
    }
}

/// Read a chat completion out of a 2xx body.
///
/// The body must be UTF-8 JSON (RFC 8259). A body with invalid UTF-8 is refused as a whole, not
/// decoded lossily: a lossy decode would put U+FFFD into files that then reach GitHub. The
/// caller treats the refusal like any unusable body (retried, then [`LlmError::BadResponse`]).
fn parse_completion(bytes: &[u8]) -> Result<Completion, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "the response body is not valid utf-8 (bad byte at offset {})",
            e.valid_up_to()
        )
    })?;
    if text.trim().is_empty() {
        return Err("the response body is empty".into());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        if e.is_eof() {
            format!("the response body was cut short ({e})")
        } else {
            format!(
                "the response body is not json ({e}); it began: \"{}\"",
                excerpt(text, 80)
            )
        }
    })?;
    let Some(choice) = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    else {
        if v.get("error").is_some() {
            let info = ErrorInfo::parse(bytes);
            return Err(format!(
                "the server answered 200 with an error: {}",
                info.message
            ));
        }
        return Err("the response has no choices".into());
    };
    let message = choice.get("message");
    let content = message
        .and_then(|m| m.get("content"))
        .and_then(content_text);
    let refusal = message
        .and_then(|m| m.get("refusal"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let usage = v.get("usage").map(parse_usage).unwrap_or_default();
    Ok(Completion {
        content,
        refusal,
        finish_reason,
        usage,
        mode: ResponseFormatMode::Plain,
    })
}

/// `content` as a string, or the text parts of a content array joined.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let text: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str).or_else(|| p.as_str()))
                .collect();
            Some(text)
        }
        _ => None,
    }
}

fn parse_usage(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (p, c) = (n("prompt_tokens"), n("completion_tokens"));
    let t = v
        .get("total_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(p + c);
    Usage {
        prompt_tokens: p,
        completion_tokens: c,
        total_tokens: t,
    }
}

impl ErrorInfo {
    /// `{"error":{"message","code","type"}}` (OpenAI, Azure, GitHub Models, llama.cpp),
    /// `{"error":"…"}`, `{"message":…}`, `{"detail":…}` (FastAPI), or any text.
    fn parse(bytes: &[u8]) -> Self {
        let raw = String::from_utf8_lossy(bytes);
        let raw_lower = raw.to_lowercase();
        let v: Option<Value> = serde_json::from_str(&raw).ok();
        let err = v.as_ref().and_then(|v| v.get("error"));
        let as_text = |x: &Value| match x {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        };
        let message = err
            .and_then(|e| e.get("message").or(Some(e)).and_then(as_text))
            .or_else(|| v.as_ref().and_then(|v| v.get("message")).and_then(as_text))
            .or_else(|| v.as_ref().and_then(|v| v.get("detail")).and_then(as_text))
            .map(|m| excerpt(&m, 300))
            .unwrap_or_else(|| {
                if raw.trim().is_empty() {
                    "empty body".to_string()
                } else {
                    excerpt(&raw, 200)
                }
            });
        let code = err.and_then(|e| e.get("code")).and_then(as_text);
        let kind = err.and_then(|e| e.get("type")).and_then(as_text);
        Self {
            message,
            code,
            kind,
            raw_lower,
        }
    }

    fn is_context_length(&self) -> bool {
        const CODES: [&str; 4] = [
            "context_length_exceeded",
            "tokens_limit_reached",
            "exceed_context_size_error",
            "string_above_max_length",
        ];
        const PHRASES: [&str; 7] = [
            "maximum context length",
            "context length",
            "context window",
            "context size",
            "too many tokens",
            "prompt is too long",
            "request too large",
        ];
        let code_hit = |c: &Option<String>| c.as_deref().is_some_and(|c| CODES.contains(&c));
        code_hit(&self.code)
            || code_hit(&self.kind)
            || PHRASES.iter().any(|p| self.raw_lower.contains(p))
    }

    fn mentions_format(&self) -> bool {
        [
            "response_format",
            "response format",
            "json_schema",
            "json_object",
            "structured output",
            "grammar",
        ]
        .iter()
        .any(|p| self.raw_lower.contains(p))
    }
}

fn describe_transport(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!(
            "no complete answer within {} (request timeout)",
            human(timeout)
        )
    } else if e.is_connect() {
        format!("cannot connect: {}", error_chain(e))
    } else {
        error_chain(e)
    }
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let t = src.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = src.source();
    }
    s
}

/// The unusable answer as echoed back on the re-ask, cut to a bounded size.
fn echo(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => format!("{}\n[… cut]", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_joins_cleanly() {
        let c = |b: &str| LlmConfig::new(b, "m", Secret::new("k")).endpoint();
        assert_eq!(
            c("https://x/inference"),
            "https://x/inference/chat/completions"
        );
        assert_eq!(
            c("https://x/inference/"),
            "https://x/inference/chat/completions"
        );
        assert_eq!(c("https://x/v1//"), "https://x/v1/chat/completions");
        assert_eq!(
            c("https://x/v1/chat/completions"),
            "https://x/v1/chat/completions"
        );
    }

    #[test]
    fn config_is_checked() {
        let bad = LlmClient::new(LlmConfig::new("ftp://x", "m", Secret::new("k")));
        assert!(matches!(bad, Err(LlmError::Config(_))));
        let bad = LlmClient::new(LlmConfig::new("not a url", "m", Secret::new("k")));
        assert!(matches!(bad, Err(LlmError::Config(_))));
        let bad = LlmClient::new(LlmConfig::new(DEFAULT_BASE_URL, " ", Secret::new("k")));
        assert!(matches!(bad, Err(LlmError::Config(_))));
        let ok = LlmClient::new(LlmConfig::new(
            DEFAULT_BASE_URL,
            DEFAULT_MODEL,
            Secret::new("k"),
        ))
        .unwrap();
        assert_eq!(ok.mode(), ResponseFormatMode::JsonSchema);
        assert!(!format!("{ok:?}").contains("Secret"));
    }

    #[test]
    fn request_body_shapes() {
        let msgs = [Message::system("s"), Message::user("u")];
        let body = |mode: ResponseFormatMode| {
            serde_json::to_value(ChatRequest {
                model: "m",
                messages: &msgs,
                response_format: mode.response_format(),
                max_tokens: None,
                temperature: None,
            })
            .unwrap()
        };
        let b = body(ResponseFormatMode::JsonSchema);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["response_format"]["type"], "json_schema");
        assert_eq!(b["response_format"]["json_schema"]["name"], "worker_answer");
        assert_eq!(b["response_format"]["json_schema"]["strict"], true);
        assert!(b.get("max_tokens").is_none() && b.get("temperature").is_none());
        let b = body(ResponseFormatMode::JsonObject);
        assert_eq!(b["response_format"]["type"], "json_object");
        assert!(b["response_format"]["schema"].is_object());
        assert!(
            body(ResponseFormatMode::Plain)
                .get("response_format")
                .is_none()
        );
    }

    #[test]
    fn completion_bodies() {
        let ok = br#"{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
        let c = parse_completion(ok).unwrap();
        assert_eq!(c.content.as_deref(), Some("hi"));
        assert_eq!(c.usage.total_tokens, 5);
        let parts = br#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#;
        assert_eq!(
            parse_completion(parts).unwrap().content.as_deref(),
            Some("ab")
        );
        let bad_utf8 = b"{\"choices\":[{\"message\":{\"content\":\"\xff\xfe\"}}]}";
        assert!(
            parse_completion(bad_utf8)
                .unwrap_err()
                .contains("not valid utf-8")
        );
        assert!(
            parse_completion(b"<html>bad gateway</html>")
                .unwrap_err()
                .contains("not json")
        );
        assert!(
            parse_completion(br#"{"choices":[{"mess"#)
                .unwrap_err()
                .contains("cut short")
        );
        assert!(parse_completion(b"").unwrap_err().contains("empty"));
        assert!(
            parse_completion(br#"{"choices":[]}"#)
                .unwrap_err()
                .contains("no choices")
        );
        let err200 = br#"{"error":{"message":"model overloaded"}}"#;
        assert!(
            parse_completion(err200)
                .unwrap_err()
                .contains("model overloaded")
        );
    }

    #[test]
    fn error_bodies() {
        let e = ErrorInfo::parse(br#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded","type":"invalid_request_error"}}"#);
        assert!(e.is_context_length());
        assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
        let e = ErrorInfo::parse(br#"{"error":{"code":"tokens_limit_reached","message":"Request body too large for gpt-4o model. Max size: 8000 tokens."}}"#);
        assert!(e.is_context_length());
        let e = ErrorInfo::parse(br#"{"error":{"code":500,"message":"response_format type must be one of \"text\" or \"json_object\"","type":"server_error"}}"#);
        assert!(e.mentions_format() && !e.is_context_length());
        assert_eq!(e.code.as_deref(), Some("500"));
        let e = ErrorInfo::parse(
            br#"{"detail":[{"loc":["body","response_format","type"],"msg":"bad"}]}"#,
        );
        assert!(e.mentions_format());
        let e = ErrorInfo::parse(b"upstream connect error");
        assert_eq!(e.message, "upstream connect error");
        assert!(!e.mentions_format() && !e.is_context_length());
        assert_eq!(ErrorInfo::parse(b"").message, "empty body");
        let e = ErrorInfo::parse(br#"{"error":"Unauthorized"}"#);
        assert_eq!(e.message, "Unauthorized");
    }

    #[test]
    fn auth_hints_fit_the_provider() {
        let gh = LlmClient::new(LlmConfig::new(
            DEFAULT_BASE_URL,
            DEFAULT_MODEL,
            Secret::new("k"),
        ))
        .unwrap();
        assert!(gh.auth_hint().contains("`permissions: models: read`"));
        let other = LlmClient::new(LlmConfig::new(
            "https://api.openai.com/v1",
            "gpt-4.1",
            Secret::new("k"),
        ))
        .unwrap();
        assert!(other.auth_hint().contains("valid key for api.openai.com"));
        let local = LlmClient::new(LlmConfig::new(
            "http://localhost:8080",
            "m",
            Secret::new(""),
        ))
        .unwrap();
        assert!(local.auth_hint().contains("llm_api_key is empty"));
    }

    #[test]
    fn modes_step_down_in_order() {
        use ResponseFormatMode::*;
        assert_eq!(JsonSchema.lower(), Some(JsonObject));
        assert_eq!(JsonObject.lower(), Some(Plain));
        assert_eq!(Plain.lower(), None);
        assert_eq!(serde_json::to_value(JsonObject).unwrap(), "json_object");
    }

    #[test]
    fn echo_is_bounded() {
        let long = "x".repeat(MAX_ECHO_CHARS + 10);
        assert!(echo(&long).ends_with("[… cut]"));
        assert_eq!(echo("short"), "short");
    }
}
