//! Keeping to a partner's rate limit: spacing sends, telling a "too fast"
//! answer, and how long to wait before trying again (RFC 9110 §10.2.3
//! Retry-After). No IO: the caller keeps the next free slot in its state
//! store and sleeps.

use std::time::{Duration, SystemTime};

use crate::config::RateLimit;
use crate::headers::Headers;

/// Most retries of one message after "too fast" answers.
pub const MAX_RATE_LIMIT_RETRIES: u32 = 5;

/// Longest wait before one retry, whatever Retry-After asks.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The status code of "too fast" when the rule names none (RFC 6585 §4).
pub const DEFAULT_RATE_LIMIT_STATUS: u16 = 429;

/// The time between two sends that keeps to `limit`.
pub fn spacing(limit: &RateLimit) -> Duration {
    Duration::from_secs(u64::from(limit.interval_seconds.max(1))) / limit.limit.max(1)
}

/// Claims a send slot: with the next free slot as stored (milliseconds since
/// the epoch, `None` when nothing was sent yet) and the time now, returns
/// the slot to send in and the next free slot to store.
pub fn claim_slot(stored_next: Option<u64>, now_ms: u64, spacing: Duration) -> (u64, u64) {
    let slot = stored_next.unwrap_or(0).max(now_ms);
    let spacing_ms = u64::try_from(spacing.as_millis()).unwrap_or(u64::MAX);
    (slot, slot.saturating_add(spacing_ms))
}

/// Whether a response says we send too fast: HTTP 429, HTTP 503 with a
/// Retry-After, or the rate limit's own failure rule.
pub fn is_too_fast(limit: Option<&RateLimit>, status: u16, headers: &Headers, body: &[u8]) -> bool {
    status == DEFAULT_RATE_LIMIT_STATUS
        || (status == 503 && headers.get("Retry-After").is_some())
        || limit.is_some_and(|limit| {
            crate::auth::matches_failure(&limit.fail, DEFAULT_RATE_LIMIT_STATUS, status, body)
        })
}

/// How long to wait before retry number `retry` (1-based): the response's
/// Retry-After (seconds or an HTTP date), else 1 s, 2 s, 4 s …; at most
/// [`MAX_RATE_LIMIT_WAIT`].
pub fn wait_before_retry(headers: &Headers, retry: u32, now: SystemTime) -> Duration {
    let asked = headers.get("Retry-After").and_then(|value| {
        let value = value.trim();
        match value.parse::<u64>() {
            Ok(seconds) => Some(Duration::from_secs(seconds)),
            Err(_) => httpdate::parse_http_date(value)
                .ok()
                .map(|at| at.duration_since(now).unwrap_or_default()),
        }
    });
    let backoff = Duration::from_secs(1 << retry.saturating_sub(1).min(5));
    asked.unwrap_or(backoff).min(MAX_RATE_LIMIT_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FailureRule;

    fn limit(limit: u32, interval_seconds: u32) -> RateLimit {
        RateLimit {
            limit,
            interval_seconds,
            fail: FailureRule::default(),
        }
    }

    #[test]
    fn slots_are_spaced_by_the_interval_over_the_limit() {
        let spacing = spacing(&limit(4, 2));
        assert_eq!(spacing, Duration::from_millis(500));
        assert_eq!(claim_slot(None, 10_000, spacing), (10_000, 10_500));
        // A slot already taken ahead of now: the next one follows it.
        assert_eq!(claim_slot(Some(10_500), 10_100, spacing), (10_500, 11_000));
        // Long idle: send now.
        assert_eq!(claim_slot(Some(9_000), 10_000, spacing), (10_000, 10_500));
    }

    #[test]
    fn too_fast_is_429_a_503_with_retry_after_or_the_configured_rule() {
        let mut with_retry = Headers::new();
        with_retry.push("Retry-After", "3");
        let none = Headers::new();
        assert!(is_too_fast(None, 429, &none, b""));
        assert!(is_too_fast(None, 503, &with_retry, b""));
        assert!(!is_too_fast(None, 503, &none, b""));
        let mut rule = limit(1, 1);
        rule.fail = FailureRule {
            status_code: Some(420),
            path: Some("/error".into()),
            values: vec!["slow down".into()],
        };
        assert!(is_too_fast(Some(&rule), 420, &none, b""));
        assert!(is_too_fast(
            Some(&rule),
            200,
            &none,
            br#"{"error":"slow down"}"#
        ));
        assert!(!is_too_fast(
            Some(&rule),
            200,
            &none,
            br#"{"error":"other"}"#
        ));
    }

    #[test]
    fn waits_follow_retry_after_in_seconds_or_as_a_date_and_are_bounded() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut headers = Headers::new();
        headers.push("Retry-After", "7");
        assert_eq!(wait_before_retry(&headers, 1, now), Duration::from_secs(7));
        let mut dated = Headers::new();
        dated.push(
            "Retry-After",
            httpdate::fmt_http_date(now + Duration::from_secs(12)),
        );
        assert_eq!(wait_before_retry(&dated, 1, now), Duration::from_secs(12));
        let mut long = Headers::new();
        long.push("Retry-After", "86400");
        assert_eq!(wait_before_retry(&long, 1, now), MAX_RATE_LIMIT_WAIT);
        assert_eq!(
            wait_before_retry(&Headers::new(), 3, now),
            Duration::from_secs(4)
        );
    }
}
