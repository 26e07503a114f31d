//! How long to wait: server hints (`retry-after`, `x-ratelimit-reset-*`) and back-off with jitter.
//! Pure functions; the one place that actually sleeps is `LlmClient::pause`.

use http::HeaderMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wait a throttled (429) or overloaded (503) response asks for, if it says.
///
/// `retry-after` wins (seconds or an HTTP date). Otherwise OpenAI-style
/// `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens`: the one whose
/// `x-ratelimit-remaining-*` is 0, or the longer of the two when that cannot be told.
pub fn server_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(d) = header_str(headers, "retry-after").and_then(|v| parse_retry_after(v, now)) {
        return Some(d);
    }
    let reset = |kind: &str| {
        header_str(headers, &format!("x-ratelimit-reset-{kind}")).and_then(parse_go_duration)
    };
    let exhausted = |kind: &str| {
        header_str(headers, &format!("x-ratelimit-remaining-{kind}"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            == Some(0)
    };
    let (requests, tokens) = (reset("requests"), reset("tokens"));
    match (exhausted("requests"), exhausted("tokens")) {
        (true, false) if requests.is_some() => requests,
        (false, true) if tokens.is_some() => tokens,
        _ => match (requests, tokens) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `retry-after`: delay-seconds (decimals tolerated) or an IMF-fixdate HTTP date.
/// A date in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// OpenAI's reset durations, Go `time.Duration` style: `1s`, `6m0s`, `20ms`, `1h2m3.5s`, `0.5s`.
pub fn parse_go_duration(value: &str) -> Option<Duration> {
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total.min(1e9)))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only HTTP date form servers send today.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let mut parts = value.split_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let s: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Exponential back-off for the `attempt`-th retry (0-based): `initial * 2^attempt`, capped at
/// `max`, then "equal jitter": a random point in the upper half, so parallel workers spread out.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let base = initial
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(max);
    let half = base / 2;
    half + random_upto(base - half)
}

/// Jitter added on top of a server's hint, so that a hundred workers told "retry after 60 s" do
/// not all come back in the same instant: up to a fifth of the wait plus up to 250 ms, at most 10 s.
pub fn hint_jitter(wait: Duration) -> Duration {
    random_upto((wait / 5).min(Duration::from_secs(10)) + Duration::from_millis(250))
}

fn random_upto(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

/// A duration for log lines: `0.25s`, `12.0s`, `6m05s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 120.0 {
        format!("{secs:.1}s")
    } else {
        let s = d.as_secs();
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration("3 days"), None);
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        let t = parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT").unwrap();
        assert_eq!(t, UNIX_EPOCH);
        let t = parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_835_438_400
        );
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(parse_http_date("garbage"), None);
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 20 ", now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn hints_from_headers() {
        let now = SystemTime::now();
        assert_eq!(server_hint(&headers(&[]), now), None);
        let h = headers(&[("retry-after", "7"), ("x-ratelimit-reset-requests", "1m0s")]);
        assert_eq!(server_hint(&h, now), Some(Duration::from_secs(7)));
        let h = headers(&[
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(server_hint(&h, now), Some(Duration::from_secs(360)));
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-remaining-tokens", "5000"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(server_hint(&h, now), Some(Duration::from_secs(1)));
        let h = headers(&[("x-ratelimit-reset-tokens", "20ms")]);
        assert_eq!(server_hint(&h, now), Some(Duration::from_millis(20)));
        let h = headers(&[("retry-after", "soon"), ("x-ratelimit-reset-tokens", "2s")]);
        assert_eq!(server_hint(&h, now), Some(Duration::from_secs(2)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let i = Duration::from_secs(1);
        let max = Duration::from_secs(30);
        for attempt in 0..40 {
            let b = backoff(i, max, attempt);
            let base = (i * 2u32.pow(attempt.min(5))).min(max);
            assert!(b >= base / 2 && b <= base, "attempt {attempt}: {b:?}");
        }
    }

    #[test]
    fn jitter_is_bounded() {
        for _ in 0..100 {
            assert!(hint_jitter(Duration::from_secs(60)) <= Duration::from_millis(12_250));
            assert!(hint_jitter(Duration::ZERO) <= Duration::from_millis(250));
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(250)), "0.25s");
        assert_eq!(human(Duration::from_secs(12)), "12.0s");
        assert_eq!(human(Duration::from_secs(365)), "6m05s");
        assert_eq!(human(Duration::from_secs(3599)), "59m59s");
        assert_eq!(human(Duration::from_secs(3600)), "1h00m");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 60)), "3h01m");
    }
}
