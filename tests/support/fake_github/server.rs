//! The HTTP side: an axum server on a listener whose connections can be killed from a
//! handler (to drop a connection without an answer), the request pipeline (latency, auth,
//! rate limit, injected faults, routing), GitHub's headers, and the JSON Lines recording.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::api::{self, Reply, Req};
use super::render::ApiError;
use super::state::State;
use super::util::{now_secs, parse_query};
use super::{FaultKind, RequestRecord};

pub struct Shared {
    pub state: Mutex<State>,
    pub recording: Mutex<File>,
    pub recording_path: PathBuf,
    pub request_counter: AtomicU64,
    pub started: std::time::Instant,
    pub in_flight: AtomicUsize,
    pub peak_in_flight: AtomicUsize,
    pub writes_in_flight: AtomicUsize,
    pub peak_writes_in_flight: AtomicUsize,
}

/// Counts a request in flight (and a write, for non-GET) for the peak-concurrency helpers.
struct InFlight<'a> {
    shared: &'a Shared,
    write: bool,
}

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared, write: bool) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        if write {
            let now = shared.writes_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            shared
                .peak_writes_in_flight
                .fetch_max(now, Ordering::SeqCst);
        }
        InFlight { shared, write }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.write {
            self.shared.writes_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ------------------------------------------------------------------ killable connections

/// Connection info handed to the handler: setting the flag makes the connection fail its
/// next write, so hyper closes the socket without sending the response.
#[derive(Clone, Debug)]
pub struct ConnKill(Arc<AtomicBool>);

pub struct KillListener(pub TcpListener);

pub struct KillStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl Listener for KillListener {
    type Io = KillStream;
    type Addr = ConnKill;

    async fn accept(&mut self) -> (KillStream, ConnKill) {
        loop {
            if let Ok((stream, _)) = self.0.accept().await {
                let _ = stream.set_nodelay(true);
                let kill = Arc::new(AtomicBool::new(false));
                return (
                    KillStream {
                        inner: stream,
                        kill: kill.clone(),
                    },
                    ConnKill(kill),
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn local_addr(&self) -> std::io::Result<ConnKill> {
        Ok(ConnKill(Arc::new(AtomicBool::new(false))))
    }
}

impl Connected<IncomingStream<'_, KillListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, KillListener>) -> Self {
        stream.remote_addr().clone()
    }
}

fn killed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "fake_github: connection dropped on purpose",
    )
}

impl AsyncRead for KillStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ------------------------------------------------------------------ serving

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let app = Router::new().fallback(handle).with_state(shared);
    let _ = axum::serve(
        KillListener(listener),
        app.into_make_service_with_connect_info::<ConnKill>(),
    )
    .await;
}

async fn handle(
    AxState(shared): AxState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnKill>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    // Processing runs in its own task so that a client giving up (a timeout) does not cancel
    // a write half-way: like a real server, the fake finishes what it started.
    let task = tokio::spawn(process(
        shared,
        parts.method,
        parts.uri,
        parts.headers,
        bytes,
    ));
    match task.await {
        Ok((response, drop_connection)) => {
            if drop_connection {
                conn.0.store(true, Ordering::SeqCst);
            }
            response
        }
        Err(e) => {
            let mut r = Response::new(Body::from(format!("fake_github panicked: {e}")));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

const SECONDARY_MESSAGE: &str = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.";
const SECONDARY_DOC: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";
const PRIMARY_DOC: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit";

fn primary_exhausted(reset: i64) -> ApiError {
    let mut e = ApiError {
        status: 403,
        body: json!({
            "message": "API rate limit exceeded for installation ID 4242. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000 and timestamp.",
            "documentation_url": PRIMARY_DOC,
            "status": "403"
        }),
        headers: vec![],
    };
    e.headers.push(("x-ratelimit-remaining".into(), "0".into()));
    e.headers
        .push(("x-ratelimit-reset".into(), reset.to_string()));
    e
}

/// The answer an injected status fault gives; None for kinds that are not a status.
fn fault_reply(kind: &FaultKind) -> Option<ApiError> {
    let with = |status: u16, body: Value, headers: Vec<(String, String)>| {
        Some(ApiError {
            status,
            body,
            headers,
        })
    };
    match kind {
        FaultKind::SecondaryRateLimit { retry_after } => with(
            403,
            json!({"message": SECONDARY_MESSAGE, "documentation_url": SECONDARY_DOC, "status": "403"}),
            vec![("retry-after".into(), retry_after.to_string())],
        ),
        FaultKind::TooManyRequests { retry_after } => with(
            429,
            json!({"message": SECONDARY_MESSAGE, "documentation_url": SECONDARY_DOC, "status": "429"}),
            vec![("retry-after".into(), retry_after.to_string())],
        ),
        FaultKind::BadGateway => with(502, json!({"message": "Server Error"}), vec![]),
        FaultKind::ServiceUnavailable => with(
            503,
            json!({"message": "Service Unavailable", "documentation_url": super::render::DOC_URL, "status": "503"}),
            vec![],
        ),
        FaultKind::PrimaryRateLimit { reset_in } => {
            Some(primary_exhausted(now_secs() + *reset_in as i64))
        }
        FaultKind::DropConnection | FaultKind::Delay(_) | FaultKind::DropAfterApply => None,
    }
}

struct Outcome {
    status: Option<u16>,
    body: Option<Value>,
    headers: Vec<(String, String)>,
    fault: Option<String>,
    drop_connection: bool,
}

async fn process(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
) -> (Response, bool) {
    let method = method.as_str().to_uppercase();
    let at_ms = shared.started.elapsed().as_millis() as u64;
    let _in_flight = InFlight::enter(&shared, method != "GET");
    let path = uri.path().to_string();
    let query = parse_query(uri.query());
    let parsed: Result<Value, String> = if bytes.is_empty() {
        Ok(Value::Null)
    } else {
        serde_json::from_slice(&bytes).map_err(|_| String::from_utf8_lossy(&bytes).into_owned())
    };
    let request_body = match &parsed {
        Ok(v) => v.clone(),
        Err(raw) => Value::String(raw.clone()),
    };

    let latency = shared.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let counts = path != "/rate_limit";
    let early: Option<Outcome> = {
        let mut st = shared.lock();
        let token_ok = match (&auth, &st.cfg.required_token) {
            (None, _) => Err("Requires authentication"),
            (Some(a), Some(t)) if !a.ends_with(&format!(" {t}")) => Err("Bad credentials"),
            _ => Ok(()),
        };
        if !headers.contains_key("user-agent") {
            Some(error_outcome(
                ApiError {
                    status: 403,
                    body: json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes."}),
                    headers: vec![],
                },
                Some("no_user_agent"),
            ))
        } else if let Err(msg) = token_ok {
            Some(error_outcome(
                ApiError::message(401, msg),
                Some("unauthenticated"),
            ))
        } else if counts && st.rate.used >= st.rate.limit {
            let reset = st.rate.reset;
            Some(error_outcome(
                primary_exhausted(reset),
                Some("primary_rate_limit"),
            ))
        } else if method != "GET" && st.write_limit_exceeded() {
            let retry_after = st.write_limit.map(|w| w.2).unwrap_or(60);
            Some(error_outcome(
                fault_reply(&FaultKind::SecondaryRateLimit { retry_after }).unwrap(),
                Some("secondary_rate_limit"),
            ))
        } else {
            if counts {
                st.rate.used += 1;
            }
            None
        }
    };

    let outcome = match early {
        Some(o) => o,
        None => {
            let fault = shared.lock().take_fault(&method, &path);
            match fault {
                Some(kind) if fault_reply(&kind).is_some() => {
                    error_outcome(fault_reply(&kind).unwrap(), Some(kind.name()))
                }
                Some(FaultKind::DropConnection) => Outcome {
                    status: None,
                    body: None,
                    headers: vec![],
                    fault: Some("drop_connection".into()),
                    drop_connection: true,
                },
                other => {
                    if let Some(FaultKind::Delay(d)) = &other {
                        tokio::time::sleep(*d).await;
                    }
                    let reply = match &parsed {
                        Err(_) => Reply::from(ApiError::message(400, "Problems parsing JSON")),
                        Ok(body) => {
                            let mut st = shared.lock();
                            let req = Req {
                                method: &method,
                                path: &path,
                                query: &query,
                                body,
                            };
                            api::dispatch(&mut st, &req)
                        }
                    };
                    Outcome {
                        status: Some(reply.status),
                        body: reply.body,
                        headers: reply.headers,
                        fault: other.as_ref().map(|k| k.name().to_string()),
                        drop_connection: matches!(other, Some(FaultKind::DropAfterApply)),
                    }
                }
            }
        }
    };

    // log, record, answer
    let (limit, remaining, used, reset) = {
        let mut st = shared.lock();
        st.log.push(RequestRecord {
            method: method.clone(),
            path: path.clone(),
            query: uri.query().unwrap_or("").to_string(),
            status: outcome.status,
            fault: outcome.fault.clone(),
            at_ms,
        });
        let r = &st.rate;
        (r.limit, r.limit.saturating_sub(r.used), r.used, r.reset)
    };
    record(&shared, &method, &path, &query, &request_body, &outcome);

    let n = shared.request_counter.fetch_add(1, Ordering::SeqCst);
    let mut response = match &outcome.body {
        Some(b) => Response::new(Body::from(serde_json::to_vec(b).unwrap_or_default())),
        None => Response::new(Body::empty()),
    };
    *response.status_mut() = StatusCode::from_u16(outcome.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    let mut set = |k: &str, v: String| {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(k),
            HeaderValue::from_str(&v),
        ) {
            h.insert(name, value);
        }
    };
    if outcome.body.is_some() {
        set("content-type", "application/json; charset=utf-8".into());
    }
    set("x-github-api-version-selected", "2022-11-28".into());
    set("x-github-media-type", "github.v3; format=json".into());
    set(
        "x-github-request-id",
        format!("FAKE:{n:04X}:{:06X}", std::process::id()),
    );
    set("x-ratelimit-limit", limit.to_string());
    set("x-ratelimit-remaining", remaining.to_string());
    set("x-ratelimit-used", used.to_string());
    set("x-ratelimit-reset", reset.to_string());
    set("x-ratelimit-resource", "core".into());
    for (k, v) in &outcome.headers {
        set(k, v.clone());
    }
    (response, outcome.drop_connection)
}

fn error_outcome(e: ApiError, fault: Option<&str>) -> Outcome {
    Outcome {
        status: Some(e.status),
        body: Some(e.body),
        headers: e.headers,
        fault: fault.map(str::to_string),
        drop_connection: false,
    }
}

/// Appends one exchange to the recording in the format of shared/github-api/README.md, plus
/// `fault` (the injected fault, if any) which the validator ignores.
fn record(
    shared: &Shared,
    method: &str,
    path: &str,
    query: &[(String, String)],
    request_body: &Value,
    o: &Outcome,
) {
    let mut q = Map::new();
    for (k, v) in query {
        match q.get_mut(k) {
            Some(Value::Array(a)) => a.push(json!(v)),
            Some(prev) => *prev = json!([prev.clone(), v]),
            None => {
                q.insert(k.clone(), json!(v));
            }
        }
    }
    let mut line = json!({
        "method": method,
        "path": path,
        "query": q,
        "status": o.status,
        "request_body": request_body,
        "response_body": o.body,
    });
    if let Some(f) = &o.fault {
        line["fault"] = json!(f);
    }
    let mut text = serde_json::to_string(&line).unwrap_or_default();
    text.push('\n');
    let mut file = shared.recording.lock().unwrap_or_else(|p| p.into_inner());
    let _ = file.write_all(text.as_bytes());
}

impl State {
    /// Counts a write against the secondary write limit; true when it is over the limit
    /// (then it is not counted: it will not be applied).
    pub fn write_limit_exceeded(&mut self) -> bool {
        let Some((max, window, _)) = self.write_limit else {
            return false;
        };
        let now = std::time::Instant::now();
        while self
            .recent_writes
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.recent_writes.pop_front();
        }
        if self.recent_writes.len() >= max {
            return true;
        }
        self.recent_writes.push_back(now);
        false
    }

    /// Takes one use of the first fault rule matching this request.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let i = self.faults.iter().position(|f| {
            f.times > 0
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
        })?;
        self.faults[i].times -= 1;
        let kind = self.faults[i].kind.clone();
        if self.faults[i].times == 0 {
            self.faults.remove(i);
        }
        Some(kind)
    }
}
