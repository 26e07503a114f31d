//! The LLM client against the fake LLM server: structured-output step-down, re-asks, throttling,
//! retries, typed errors, and the output policy on what comes back.

use crate::support::fake_llm::{FakeLlm, Reply};
use parallel_orchestrator::llm::{
    Generation, LlmClient, LlmConfig, LlmError, Message, ResponseFormatMode, answer_schema,
};
use parallel_orchestrator::policy::{OutputPolicy, Violation};
use parallel_orchestrator::secret::Secret;
use std::time::{Duration, Instant};

const KEY: &str = "sk-test-key";

fn config(fake: &FakeLlm) -> LlmConfig {
    let mut c = LlmConfig::new(fake.url(), "test/model-1", Secret::new(KEY));
    c.initial_backoff = Duration::from_millis(10);
    c.max_backoff = Duration::from_millis(40);
    c.request_timeout = Duration::from_secs(5);
    c.max_attempts = 3;
    c
}

fn client(fake: &FakeLlm) -> LlmClient {
    LlmClient::new(config(fake)).expect("client")
}

fn prompt() -> Vec<Message> {
    vec![
        Message::system("You write code. Answer with JSON."),
        Message::user("Add a README."),
    ]
}

async fn ask(client: &LlmClient) -> Result<Generation, LlmError> {
    client.generate(prompt()).await
}

#[tokio::test]
async fn happy_path_sends_json_schema_and_reads_the_answer() {
    let fake = FakeLlm::start();
    fake.push(Reply::answer(
        "Added a README",
        &[("README.md", "# Hello\n")],
    ));
    // A trailing slash on the base URL must not produce `//chat/completions`.
    let mut cfg = config(&fake);
    cfg.base_url = format!("{}/", fake.url());
    let client = LlmClient::new(cfg).unwrap();

    let g = ask(&client).await.unwrap();
    assert_eq!(g.answer.summary, "Added a README");
    assert_eq!(g.answer.files.len(), 1);
    assert_eq!(g.answer.files[0].path, "README.md");
    assert_eq!(g.answer.files[0].content, "# Hello\n");
    assert_eq!(g.requests, 1);
    assert_eq!(g.format_used, ResponseFormatMode::JsonSchema);
    assert_eq!(g.usage.total_tokens, 120);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/chat/completions");
    assert_eq!(r.authorization.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.model(), Some("test/model-1"));
    assert_eq!(r.messages().len(), 2);
    assert_eq!(r.last("user"), Some("Add a README."));
    assert_eq!(r.last("system"), Some("You write code. Answer with JSON."));
    let rf = &r.body["response_format"];
    assert_eq!(rf["type"], "json_schema");
    assert_eq!(rf["json_schema"]["name"], "worker_answer");
    assert_eq!(rf["json_schema"]["strict"], true);
    assert_eq!(rf["json_schema"]["schema"], answer_schema());
    assert!(r.body.get("max_tokens").is_none());
}

#[tokio::test]
async fn llama_cpp_500_on_json_schema_steps_down_once_and_is_remembered() {
    let fake = FakeLlm::start();
    fake.reject_json_schema(500);
    let client = client(&fake);

    let g = ask(&client).await.unwrap();
    assert_eq!(g.format_used, ResponseFormatMode::JsonObject);
    assert_eq!(g.requests, 2, "one rejected json_schema, one json_object");
    assert_eq!(
        fake.formats(),
        vec![Some("json_schema".into()), Some("json_object".into())]
    );
    assert_eq!(
        fake.requests()[1].body["response_format"]["schema"],
        answer_schema()
    );
    assert_eq!(client.mode(), ResponseFormatMode::JsonObject);

    // The next call starts with the mode that worked: no second rejection.
    let g = ask(&client).await.unwrap();
    assert_eq!(g.requests, 1);
    assert_eq!(fake.request_count(), 3);
    assert_eq!(fake.formats()[2].as_deref(), Some("json_object"));
}

#[tokio::test]
async fn steps_down_to_plain_text_and_reads_a_fence() {
    let fake = FakeLlm::start();
    fake.reject_json_schema(500).reject_json_object(400);
    fake.set_default(Reply::fenced("plain works", &[("a.txt", "a")]));
    let client = client(&fake);

    let g = ask(&client).await.unwrap();
    assert_eq!(g.format_used, ResponseFormatMode::Plain);
    assert_eq!(g.answer.summary, "plain works");
    assert_eq!(g.requests, 3, "no storm: one request per mode");
    assert_eq!(
        fake.formats(),
        vec![Some("json_schema".into()), Some("json_object".into()), None]
    );
    assert!(fake.requests()[2].body.get("response_format").is_none());

    let g = ask(&client).await.unwrap();
    assert_eq!(g.requests, 1);
    assert_eq!(fake.formats()[3], None);
}

#[tokio::test]
async fn a_400_naming_response_format_steps_down_without_retrying() {
    let fake = FakeLlm::start();
    fake.reject_json_schema(400);
    let g = ask(&client(&fake)).await.unwrap();
    assert_eq!(g.format_used, ResponseFormatMode::JsonObject);
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn fenced_json_with_prose_is_parsed() {
    let fake = FakeLlm::start();
    fake.push(Reply::fenced(
        "fenced",
        &[("src/lib.rs", "pub fn f() {}\n")],
    ));
    let g = ask(&client(&fake)).await.unwrap();
    assert_eq!(g.answer.summary, "fenced");
    assert_eq!(g.answer.files[0].content, "pub fn f() {}\n");
    assert_eq!(g.requests, 1);
}

#[tokio::test]
async fn malformed_answer_is_re_asked_once_with_the_reason() {
    let fake = FakeLlm::start();
    fake.push(Reply::wrong_shape());
    fake.push(Reply::answer("second try", &[("a.txt", "a")]));
    let g = ask(&client(&fake)).await.unwrap();
    assert_eq!(g.answer.summary, "second try");
    assert_eq!(g.requests, 2);

    let second = &fake.requests()[1];
    let msgs = second.messages();
    assert_eq!(
        msgs.len(),
        4,
        "original two, the bad answer, the correction"
    );
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[2]["content"], r#"{"summary": 42, "changes": []}"#);
    let correction = second.last("user").unwrap();
    assert!(correction.contains("`summary` is a number"), "{correction}");
    assert!(correction.contains("`files` is missing"), "{correction}");
    assert!(correction.contains("only the JSON object"), "{correction}");
}

#[tokio::test]
async fn malformed_twice_fails_with_an_excerpt() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::malformed());
    let err = ask(&client(&fake)).await.unwrap_err();
    assert_eq!(fake.request_count(), 2, "exactly one re-ask");
    let LlmError::MalformedAnswer { reason, excerpt } = &err else {
        panic!("expected MalformedAnswer, got {err:?}");
    };
    assert!(reason.contains("no valid JSON object"), "{reason}");
    assert!(excerpt.starts_with("Sure! I have made"), "{excerpt}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("the model did not answer with the required json object"),
        "{msg}"
    );
}

#[tokio::test]
async fn throttling_storm_is_waited_out_honouring_the_headers() {
    let fake = FakeLlm::start();
    fake.push_all([
        Reply::rate_limited(1),
        Reply::rate_limited(1),
        Reply::rate_limited_reset("1s"),
        Reply::answer("after the storm", &[]),
    ]);
    let started = Instant::now();
    let g = ask(&client(&fake)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(g.answer.summary, "after the storm");
    assert_eq!(g.requests, 4);
    assert_eq!(g.usage.total_tokens, 120, "429s carry no usage");
    assert!(elapsed >= Duration::from_secs(3), "waited only {elapsed:?}");
    assert!(elapsed < Duration::from_secs(8), "waited {elapsed:?}");
    assert!(g.waited >= Duration::from_secs(3));
}

#[tokio::test]
async fn throttling_beyond_the_budget_fails_with_how_long_it_waited() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::rate_limited(1));
    let mut cfg = config(&fake);
    cfg.max_wait = Duration::from_millis(2500);
    let started = Instant::now();
    let err = LlmClient::new(cfg)
        .unwrap()
        .generate(prompt())
        .await
        .unwrap_err();
    let LlmError::RateLimited {
        waited, throttled, ..
    } = &err
    else {
        panic!("expected RateLimited, got {err:?}");
    };
    assert!(*waited >= Duration::from_secs(1) && *waited <= Duration::from_millis(2500));
    assert!((2..=3).contains(throttled), "{throttled}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(err.to_string().contains("lower parallelism_level"), "{err}");

    // A server asking for more than the whole budget is not waited on at all.
    let fake = FakeLlm::start();
    fake.set_default(Reply::rate_limited(3600));
    let started = Instant::now();
    let err = client(&fake).generate(prompt()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(fake.request_count(), 1);
    assert!(err.to_string().contains("asks to wait 1h00m more"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limited_server_serves_every_worker_eventually() {
    let fake = FakeLlm::start();
    fake.concurrency_limit(2, 1)
        .latency(Duration::from_millis(300));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        // Separate clients, like separate matrix jobs sharing one token.
        let client = client(&fake);
        tasks.push(tokio::spawn(async move {
            client
                .generate(vec![Message::user(format!("task {i}"))])
                .await
        }));
    }
    for t in tasks {
        let g = t.await.unwrap().expect("every worker succeeds");
        assert_eq!(g.answer.summary, "default answer");
    }
    assert!(fake.peak_concurrency() <= 2, "{}", fake.peak_concurrency());
    assert!(fake.request_count() > 8, "some requests were throttled");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unauthorized_says_what_to_do() {
    let fake = FakeLlm::start();
    fake.require_key("the-right-key");
    let err = ask(&client(&fake)).await.unwrap_err();
    assert_eq!(fake.request_count(), 1, "401 is not retried");
    assert!(
        matches!(err, LlmError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("refused the api key (http 401: Bad credentials)"),
        "{msg}"
    );
    assert!(msg.contains("llm_api_key"), "{msg}");
    assert!(!msg.contains(KEY), "the key never appears in messages");
}

#[tokio::test]
async fn wrong_url_is_a_not_found_naming_the_url() {
    let fake = FakeLlm::start();
    let mut cfg = config(&fake);
    cfg.base_url = format!("{}/inference", fake.url());
    let err = LlmClient::new(cfg)
        .unwrap()
        .generate(prompt())
        .await
        .unwrap_err();
    assert_eq!(fake.request_count(), 1);
    let msg = err.to_string();
    assert!(matches!(err, LlmError::NotFound { .. }), "{err:?}");
    assert!(msg.contains("/inference/chat/completions"), "{msg}");
    assert!(msg.contains("check llm_base_url"), "{msg}");

    let fake = FakeLlm::start();
    fake.push(Reply::status(
        404,
        r#"{"error":{"code":"unknown_model","message":"Unknown model: test/model-1"}}"#,
    ));
    let msg = ask(&client(&fake)).await.unwrap_err().to_string();
    assert!(msg.contains("check llm_model"), "{msg}");
    assert!(msg.contains("`test/model-1`"), "{msg}");
}

#[tokio::test]
async fn context_length_is_a_typed_error_and_a_smaller_prompt_then_works() {
    let fake = FakeLlm::start();
    fake.context_limit(200);
    let client = client(&fake);
    let big = vec![Message::system("s"), Message::user("x".repeat(500))];
    let err = client.generate(big).await.unwrap_err();
    assert_eq!(fake.request_count(), 1, "not retried by the client");
    let LlmError::ContextLengthExceeded { message } = &err else {
        panic!("expected ContextLengthExceeded, got {err:?}");
    };
    assert!(
        message.contains("maximum context length is 200"),
        "{message}"
    );

    let small = vec![Message::system("s"), Message::user("x".repeat(100))];
    client.generate(small).await.unwrap();
    assert_eq!(fake.request_count(), 2);

    // The queued variant and GitHub Models' 413 `tokens_limit_reached` map the same way.
    let fake = FakeLlm::start();
    fake.push(Reply::ContextLengthExceeded);
    fake.push(Reply::status(
        413,
        r#"{"error":{"code":"tokens_limit_reached","message":"Request body too large for gpt-4.1-mini model. Max size: 8000 tokens."}}"#,
    ));
    let client = self::client(&fake);
    assert!(matches!(
        ask(&client).await,
        Err(LlmError::ContextLengthExceeded { .. })
    ));
    let err = ask(&client).await.unwrap_err();
    assert!(err.to_string().contains("Max size: 8000 tokens"), "{err}");
}

#[tokio::test]
async fn cut_off_answer_is_re_asked_shorter_once() {
    let fake = FakeLlm::start();
    fake.push(Reply::Length(
        r#"{"summary":"long","files":[{"path":"a","content":"aaaa"#.into(),
    ));
    fake.push(Reply::answer("short", &[("a", "a")]));
    let g = ask(&client(&fake)).await.unwrap();
    assert_eq!(g.answer.summary, "short");
    assert_eq!(g.requests, 2);
    let again = fake.requests()[1].last("user").unwrap().to_string();
    assert!(again.contains("cut off"), "{again}");
    assert!(again.contains("fewer and smaller files"), "{again}");
    // The half answer is not sent back (it would only eat context).
    assert_eq!(fake.requests()[1].messages().len(), 3);

    let fake = FakeLlm::start();
    fake.set_default(Reply::Length("{\"summary\":".into()));
    let err = ask(&client(&fake)).await.unwrap_err();
    assert_eq!(fake.request_count(), 2);
    assert!(
        matches!(
            err,
            LlmError::Truncated {
                completion_tokens: 20
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_utf8_body_is_a_clear_failure_and_nothing_is_used() {
    let fake = FakeLlm::start();
    fake.set_default(Reply::InvalidUtf8);
    let err = ask(&client(&fake)).await.unwrap_err();
    assert_eq!(
        fake.request_count(),
        3,
        "retried like any unusable body, max_attempts times"
    );
    let LlmError::BadResponse { attempts, reason } = &err else {
        panic!("expected BadResponse, got {err:?}");
    };
    assert_eq!(*attempts, 3);
    assert!(reason.contains("not valid utf-8"), "{reason}");
    assert!(
        err.to_string().contains("nothing from them was used"),
        "{err}"
    );

    // One bad body, then a good one: the retry recovers.
    let fake = FakeLlm::start();
    fake.push(Reply::InvalidUtf8);
    let g = ask(&client(&fake)).await.unwrap();
    assert_eq!(g.requests, 2);
}

#[tokio::test]
async fn unusable_bodies_and_server_errors_are_retried() {
    let fake = FakeLlm::start();
    fake.push_all([
        Reply::NonJsonBody,
        Reply::CutJson,
        Reply::answer("third time lucky", &[]),
    ]);
    let g = ask(&client(&fake)).await.unwrap();
    assert_eq!(g.answer.summary, "third time lucky");
    assert_eq!(g.requests, 3);

    let fake = FakeLlm::start();
    fake.push_all([
        Reply::TruncatedBody,
        Reply::status(503, "upstream overloaded"),
        Reply::answer("ok", &[]),
    ]);
    let g = ask(&client(&fake)).await.unwrap();
    assert_eq!(g.requests, 3);
    assert_eq!(g.format_used, ResponseFormatMode::JsonSchema);

    let fake = FakeLlm::start();
    fake.set_default(Reply::status(502, "<html>bad gateway</html>"));
    let err = ask(&client(&fake)).await.unwrap_err();
    assert_eq!(fake.request_count(), 3);
    let msg = err.to_string();
    assert!(
        matches!(err, LlmError::Unavailable { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(msg.contains("http 502"), "{msg}");
}

#[tokio::test]
async fn a_500_after_the_mode_has_worked_is_an_outage_not_a_step_down() {
    let fake = FakeLlm::start();
    let client = client(&fake);
    ask(&client).await.unwrap();
    fake.push(Reply::server_error(r#"{"error":{"message":"boom"}}"#));
    let g = ask(&client).await.unwrap();
    assert_eq!(g.format_used, ResponseFormatMode::JsonSchema);
    assert_eq!(
        fake.formats(),
        vec![Some("json_schema".into()); 3],
        "retried in the same mode"
    );
}

#[tokio::test]
async fn timeouts_are_retried_then_reported() {
    let fake = FakeLlm::start();
    fake.latency(Duration::from_millis(800));
    let mut cfg = config(&fake);
    cfg.request_timeout = Duration::from_millis(200);
    cfg.max_attempts = 2;
    let err = LlmClient::new(cfg)
        .unwrap()
        .generate(prompt())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Unavailable { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("request timeout"), "{err}");
}

#[tokio::test]
async fn usage_is_summed_over_every_request() {
    let fake = FakeLlm::start();
    fake.set_usage(1000, 50);
    fake.push_all([
        Reply::rate_limited(0),
        Reply::malformed(),
        Reply::answer("ok", &[("a", "b")]),
    ]);
    let g = ask(&client(&fake)).await.unwrap();
    assert_eq!(g.requests, 3);
    assert_eq!(g.usage.prompt_tokens, 2000);
    assert_eq!(g.usage.completion_tokens, 100);
    assert_eq!(g.usage.total_tokens, 2100);
}

#[tokio::test]
async fn a_refusal_is_reported_as_such() {
    let fake = FakeLlm::start();
    fake.push(Reply::Refusal("I can't help with that.".into()));
    let err = ask(&client(&fake)).await.unwrap_err();
    assert_eq!(fake.request_count(), 1);
    assert!(matches!(err, LlmError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("I can't help with that."));
}

#[tokio::test]
async fn oversize_and_malicious_answers_are_stopped_by_the_policy() {
    let fake = FakeLlm::start();
    fake.push(Reply::oversize(10 * 1024 * 1024));
    fake.push(Reply::malicious());
    let client = client(&fake);
    let policy = OutputPolicy::new();

    let big = ask(&client).await.unwrap();
    assert_eq!(big.answer.files[0].content.len(), 10 * 1024 * 1024);
    let refused = policy.check_answer(&big.answer.files).unwrap_err();
    assert!(
        refused
            .violations
            .iter()
            .any(|v| matches!(v, Violation::FileTooLarge { .. })),
        "{refused}"
    );
    assert!(
        refused
            .violations
            .iter()
            .any(|v| matches!(v, Violation::TotalTooLarge { .. })),
        "{refused}"
    );

    let evil = ask(&client).await.unwrap();
    let refused = policy.check_answer(&evil.answer.files).unwrap_err();
    let msg = refused.to_string();
    for needle in [
        "`../../etc/passwd` contains a `..` component",
        "`.github/workflows/pwn.yml` is inside `.github/`",
        "`.git/hooks/pre-commit` is inside a `.git` directory",
        "`/abs/path` is absolute",
        "`SRC/OK.rs` is the same file as `src/ok.rs`",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }
    assert_eq!(refused.violations.len(), 5, "{msg}");
}
