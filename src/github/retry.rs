//! What to do with GitHub's answer: done, wait and retry, or give up. Pure, so every rule is
//! unit-tested; the client only sleeps and logs what this decides.
//!
//! Why not octocrab's own retry middleware: it retries 5xx at once and retries POSTs blindly,
//! and a POST that GitHub applied before the connection broke must not be sent twice (two
//! worker issues for one task). Here a non-idempotent write that may have landed is handed back
//! to the caller as [`Outcome::Ambiguous`], to check and resume.

use std::time::Duration;

/// Limits for waiting on GitHub.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries of 5xx answers and broken connections, per request.
    pub max_server_retries: u32,
    /// First back-off after a 5xx or a broken connection; doubles each time.
    pub server_backoff: Duration,
    /// Wait after a secondary rate limit without `retry-after` (GitHub: "at least one
    /// minute"); doubles on each further hit.
    pub secondary_wait: Duration,
    /// Longest single wait for a secondary limit.
    pub max_secondary_wait: Duration,
    /// The primary limit resets hourly: wait for the reset only when it is this close.
    pub max_primary_wait: Duration,
    /// All waiting of one request together.
    pub max_total_wait: Duration,
    /// A factor on every wait, GitHub's own `retry-after` and reset times included. 1 in
    /// production; tests run whole rate-limit storms in milliseconds with a small one.
    pub wait_scale: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_server_retries: 4,
            server_backoff: Duration::from_secs(1),
            secondary_wait: Duration::from_secs(60),
            max_secondary_wait: Duration::from_secs(300),
            max_primary_wait: Duration::from_secs(600),
            max_total_wait: Duration::from_secs(1200),
            wait_scale: 1.0,
        }
    }
}

impl RetryPolicy {
    /// Scales every wait by `factor` (tests run whole scenarios in milliseconds this way).
    pub fn scaled(mut self, factor: f64) -> Self {
        let s = |d: Duration| d.mul_f64(factor);
        self.server_backoff = s(self.server_backoff);
        self.secondary_wait = s(self.secondary_wait);
        self.max_secondary_wait = s(self.max_secondary_wait);
        self.max_primary_wait = s(self.max_primary_wait);
        self.max_total_wait = s(self.max_total_wait);
        self.wait_scale *= factor;
        self
    }
}

/// What came back from one attempt, as far as the decision needs it.
#[derive(Debug, Clone, Default)]
pub struct Answer<'a> {
    /// `None` when no HTTP answer came (connection refused, reset, timed out).
    pub status: Option<u16>,
    pub retry_after: Option<&'a str>,
    pub ratelimit_remaining: Option<&'a str>,
    pub ratelimit_reset: Option<&'a str>,
    /// The body's `message`, if any.
    pub message: Option<&'a str>,
}

/// Where the request stands in its retries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attempts {
    /// 5xx / transport failures so far.
    pub server_failures: u32,
    /// Secondary rate limits so far.
    pub secondary_hits: u32,
    pub waited: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A final answer (success or an error to report): hand it to the caller.
    Final,
    /// Wait this long, then send the same request again.
    Retry { after: Duration, reason: String },
    /// Rate limited for longer than we wait.
    GiveUpRateLimited { reason: String },
    /// Still failing after every retry.
    GiveUpUnavailable { reason: String },
    /// A write that GitHub may have applied failed without a clear answer.
    Ambiguous { reason: String },
}

/// Decides about one answer. `idempotent`: sending the request twice does no harm (GET, PUT
/// labels, PATCH a body, a create that answers 422 when it exists).
pub fn decide(
    answer: &Answer,
    idempotent: bool,
    attempts: Attempts,
    policy: &RetryPolicy,
    now_epoch: u64,
) -> Outcome {
    let status = answer.status;
    let rate_limited = matches!(status, Some(403 | 429))
        && (answer.ratelimit_remaining == Some("0")
            || answer.retry_after.is_some()
            || status == Some(429)
            || answer
                .message
                .is_some_and(|m| m.to_ascii_lowercase().contains("rate limit")));
    if rate_limited {
        // GitHub refused before doing anything: always safe to send again.
        let (wait, reason) = if let Some(secs) = answer.retry_after.and_then(parse_seconds) {
            let code = status.unwrap_or(429);
            (
                Duration::from_secs(secs).mul_f64(policy.wait_scale),
                format!("GitHub secondary rate limit (HTTP {code}, retry-after {secs} s)"),
            )
        } else if answer.ratelimit_remaining == Some("0") {
            let reset = answer
                .ratelimit_reset
                .and_then(parse_seconds)
                .unwrap_or(now_epoch + 60);
            let wait =
                Duration::from_secs(reset.saturating_sub(now_epoch) + 1).mul_f64(policy.wait_scale);
            if wait > policy.max_primary_wait {
                return Outcome::GiveUpRateLimited {
                    reason: format!(
                        "GitHub's API rate limit for this token is used up until {} (in {} min); \
                         rerun the job after that, or use a token with a larger allowance",
                        format_epoch_utc(reset),
                        reset.saturating_sub(now_epoch).div_ceil(60)
                    ),
                };
            }
            (
                wait,
                "GitHub primary rate limit used up (x-ratelimit-remaining: 0)".to_string(),
            )
        } else {
            let doubling = 2u32.saturating_pow(attempts.secondary_hits.min(16));
            let wait = policy
                .secondary_wait
                .saturating_mul(doubling)
                .min(policy.max_secondary_wait);
            let code = status.unwrap_or(429);
            (
                wait,
                format!("GitHub secondary rate limit (HTTP {code}, no retry-after)"),
            )
        };
        if attempts.waited + wait > policy.max_total_wait {
            return Outcome::GiveUpRateLimited {
                reason: format!(
                    "{reason}: still limited after waiting {} s in all; rerun the job later",
                    attempts.waited.as_secs()
                ),
            };
        }
        // A little jitter so 100 jobs that were told the same time do not return at once.
        let jitter = wait.mul_f64(fastrand::f64() * 0.1);
        return Outcome::Retry {
            after: wait + jitter,
            reason,
        };
    }

    let server_trouble = match status {
        None => true,
        Some(s) => matches!(s, 500 | 502 | 503 | 504),
    };
    if !server_trouble {
        return Outcome::Final;
    }
    let what = match status {
        None => "no answer from GitHub (connection failed or timed out)".to_string(),
        Some(s) => format!("GitHub answered HTTP {s}"),
    };
    if !idempotent {
        return Outcome::Ambiguous { reason: what };
    }
    if attempts.server_failures >= policy.max_server_retries {
        return Outcome::GiveUpUnavailable {
            reason: format!(
                "{what}, {} times in a row; GitHub may be having an outage (https://www.githubstatus.com)",
                attempts.server_failures + 1
            ),
        };
    }
    let wait = policy
        .server_backoff
        .saturating_mul(2u32.saturating_pow(attempts.server_failures.min(16)));
    let jitter = wait.mul_f64(fastrand::f64() * 0.25);
    Outcome::Retry {
        after: wait + jitter,
        reason: what,
    }
}

fn parse_seconds(s: &str) -> Option<u64> {
    s.trim().parse::<u64>().ok()
}

/// `HH:MM:SS UTC` of an epoch second (the day does not matter for a wait under an hour).
pub fn format_epoch_utc(epoch: u64) -> String {
    let secs = epoch % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> RetryPolicy {
        RetryPolicy::default()
    }

    fn wait_of(o: Outcome) -> Duration {
        match o {
            Outcome::Retry { after, .. } => after,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn success_and_plain_errors_are_final() {
        for status in [200, 201, 204, 304, 404, 410, 422, 401] {
            let a = Answer {
                status: Some(status),
                ..Default::default()
            };
            assert_eq!(
                decide(&a, true, Attempts::default(), &p(), 0),
                Outcome::Final,
                "{status}"
            );
        }
        // A 403 that is not a rate limit is a permission problem: final.
        let a = Answer {
            status: Some(403),
            message: Some("Resource not accessible by integration"),
            ..Default::default()
        };
        assert_eq!(
            decide(&a, true, Attempts::default(), &p(), 0),
            Outcome::Final
        );
    }

    #[test]
    fn retry_after_is_honoured_for_403_and_429_even_for_writes() {
        for status in [403, 429] {
            let a = Answer {
                status: Some(status),
                retry_after: Some("7"),
                ..Default::default()
            };
            let w = wait_of(decide(&a, false, Attempts::default(), &p(), 0));
            assert!(
                w >= Duration::from_secs(7) && w <= Duration::from_millis(7700),
                "{w:?}"
            );
        }
    }

    #[test]
    fn secondary_limit_without_retry_after_waits_a_minute_then_doubles_up_to_the_cap() {
        let a = Answer {
            status: Some(403),
            message: Some("You have exceeded a secondary rate limit. Please wait a few minutes"),
            ..Default::default()
        };
        let w0 = wait_of(decide(&a, true, Attempts::default(), &p(), 0));
        assert!(
            w0 >= Duration::from_secs(60) && w0 < Duration::from_secs(67),
            "{w0:?}"
        );
        let w1 = wait_of(decide(
            &a,
            true,
            Attempts {
                secondary_hits: 1,
                ..Default::default()
            },
            &p(),
            0,
        ));
        assert!(w1 >= Duration::from_secs(120), "{w1:?}");
        let w9 = wait_of(decide(
            &a,
            true,
            Attempts {
                secondary_hits: 9,
                ..Default::default()
            },
            &p(),
            0,
        ));
        assert!(w9 <= Duration::from_secs(330), "{w9:?}");
    }

    #[test]
    fn primary_limit_waits_for_a_near_reset_and_fails_clearly_for_a_far_one() {
        let near = Answer {
            status: Some(403),
            ratelimit_remaining: Some("0"),
            ratelimit_reset: Some("1030"),
            message: Some("API rate limit exceeded for installation"),
            ..Default::default()
        };
        let w = wait_of(decide(&near, true, Attempts::default(), &p(), 1000));
        assert!(
            w >= Duration::from_secs(31) && w < Duration::from_secs(35),
            "{w:?}"
        );
        let far = Answer {
            ratelimit_reset: Some("4600"),
            ..near
        };
        match decide(&far, true, Attempts::default(), &p(), 1000) {
            Outcome::GiveUpRateLimited { reason } => {
                assert!(
                    reason.contains("used up until 01:16:40 UTC (in 60 min)"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn total_wait_is_capped() {
        let a = Answer {
            status: Some(429),
            retry_after: Some("60"),
            ..Default::default()
        };
        let attempts = Attempts {
            waited: Duration::from_secs(1190),
            ..Default::default()
        };
        assert!(matches!(
            decide(&a, true, attempts, &p(), 0),
            Outcome::GiveUpRateLimited { .. }
        ));
    }

    #[test]
    fn server_errors_back_off_exponentially_then_give_up() {
        let a = Answer {
            status: Some(502),
            ..Default::default()
        };
        let w0 = wait_of(decide(&a, true, Attempts::default(), &p(), 0));
        let w2 = wait_of(decide(
            &a,
            true,
            Attempts {
                server_failures: 2,
                ..Default::default()
            },
            &p(),
            0,
        ));
        assert!(
            w0 >= Duration::from_secs(1) && w0 < Duration::from_secs(2),
            "{w0:?}"
        );
        assert!(
            w2 >= Duration::from_secs(4) && w2 < Duration::from_secs(6),
            "{w2:?}"
        );
        let last = decide(
            &a,
            true,
            Attempts {
                server_failures: 4,
                ..Default::default()
            },
            &p(),
            0,
        );
        assert!(
            matches!(last, Outcome::GiveUpUnavailable { .. }),
            "{last:?}"
        );
        let dropped = Answer::default();
        assert!(matches!(
            decide(&dropped, true, Attempts::default(), &p(), 0),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn a_failed_non_idempotent_write_is_ambiguous_not_retried() {
        for a in [
            Answer {
                status: Some(502),
                ..Default::default()
            },
            Answer::default(),
        ] {
            assert!(matches!(
                decide(&a, false, Attempts::default(), &p(), 0),
                Outcome::Ambiguous { .. }
            ));
        }
    }

    #[test]
    fn scaling_shrinks_every_wait() {
        let s = RetryPolicy::default().scaled(0.001);
        assert_eq!(s.secondary_wait, Duration::from_millis(60));
        assert_eq!(s.max_server_retries, 4);
        let a = Answer {
            status: Some(429),
            retry_after: Some("10"),
            ..Default::default()
        };
        let w = wait_of(decide(&a, true, Attempts::default(), &s, 0));
        assert!(
            w >= Duration::from_millis(10) && w < Duration::from_millis(12),
            "{w:?}"
        );
    }
}
