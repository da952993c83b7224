//! When to retry and how long to wait: jittered exponential backoff that honours `Retry-After`, within a number
//! of attempts and a total time.

use std::time::{Duration, SystemTime};

use http::StatusCode;

/// How the middleware retries a call with the same key.
///
/// A call is retried on a connection error or timeout, on the library's 409 `in-flight`, and on the statuses of
/// [`RetryPolicy::retry_statuses`] (429, 502, 503, 504 by default): answers that say "not now" without having
/// run the request to completion. Any other answer, 422 `key-reused` and every other 4xx included, is final.
///
/// The wait before retry *n* (1 for the first retry) is `initial_backoff * 2^(n-1)`, capped at `max_backoff`,
/// with "equal jitter" (a uniformly random point in its upper half) so that many clients do not retry in step.
/// A `Retry-After` from the server is honoured: the wait is at least that long, capped at `max_retry_after`.
/// The call gives up after `max_attempts` attempts, or when the next wait would end beyond `max_elapsed` from
/// the first send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) max_elapsed: Duration,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) jitter: bool,
    pub(crate) retry_statuses: Vec<StatusCode>,
}

impl Default for RetryPolicy {
    /// 5 attempts within 60 s; backoff from 250 ms doubling to 10 s, jittered; `Retry-After` capped at 30 s.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
            jitter: true,
            retry_statuses: vec![
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ],
        }
    }
}

impl RetryPolicy {
    /// The most attempts of one call, the first included (at least 1; 1 means never retry).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The longest a call may take from its first send to its last wait's end.
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = elapsed;
        self
    }

    /// The wait before the first retry when the server gave no `Retry-After`; it doubles at each retry.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest exponential backoff.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The longest wait a `Retry-After` can impose (a server asking for an hour gets this instead).
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// Whether the backoff is jittered (default true; turn it off for exact timings in tests).
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The statuses retried besides the library's 409 `in-flight` (default 429, 502, 503, 504). 4xx statuses
    /// other than 408, 425 and 429 are refused here: the same request would get the same answer.
    pub fn retry_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.retry_statuses = statuses
            .into_iter()
            .filter(|status| !status.is_client_error() || matches!(status.as_u16(), 408 | 425 | 429))
            .collect();
        self
    }

    /// The wait before retry number `retry` (1-based), given the server's `Retry-After` and a random fraction in
    /// `[0, 1)` for the jitter.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>, random: f64) -> Duration {
        let doubling = 2u32.saturating_pow(retry.saturating_sub(1).min(31));
        let backoff = self.initial_backoff.saturating_mul(doubling).min(self.max_backoff);
        let backoff = if self.jitter { backoff.mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0)) } else { backoff };
        match retry_after {
            Some(asked) => asked.min(self.max_retry_after).max(backoff),
            None => backoff,
        }
    }
}

/// A `Retry-After` value (RFC 9110 section 10.2.3): delay-seconds, or an HTTP date turned into the time from
/// `now` (zero if it passed). `None` for anything else.
pub(crate) fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact() -> RetryPolicy {
        RetryPolicy::default().jitter(false)
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let policy = exact().initial_backoff(Duration::from_millis(100)).max_backoff(Duration::from_millis(700));
        let delays: Vec<u128> = (1..=5).map(|retry| policy.delay(retry, None, 0.0).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 700, 700]);
        assert_eq!(policy.delay(u32::MAX, None, 0.0), Duration::from_millis(700), "no overflow");
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let policy = RetryPolicy::default().initial_backoff(Duration::from_millis(1000));
        assert_eq!(policy.delay(1, None, 0.0), Duration::from_millis(500));
        assert_eq!(policy.delay(1, None, 0.5), Duration::from_millis(750));
        assert!(policy.delay(1, None, 0.999_999) <= Duration::from_millis(1000));
    }

    #[test]
    fn retry_after_is_a_floor_within_its_cap() {
        let policy = exact().max_retry_after(Duration::from_secs(5));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(3)), 0.0), Duration::from_secs(3));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(3600)), 0.0), Duration::from_secs(5));
        assert_eq!(policy.delay(1, Some(Duration::ZERO), 0.0), Duration::from_millis(250), "backoff still applies");
    }

    #[test]
    fn client_errors_cannot_be_made_retryable_except_the_transient_ones() {
        let policy = RetryPolicy::default().retry_statuses([
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::BAD_REQUEST,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::SERVICE_UNAVAILABLE,
        ]);
        assert_eq!(policy.retry_statuses, [StatusCode::REQUEST_TIMEOUT, StatusCode::SERVICE_UNAVAILABLE]);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after(b"7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(b" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(b"Wed, 21 Oct 2015 07:28:10 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after(b"Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO), "in the past");
        assert_eq!(parse_retry_after(b"soon", now), None);
        assert_eq!(parse_retry_after(b"-1", now), None);
        assert_eq!(parse_retry_after(b"99999999999999999999999", now), Some(Duration::from_secs(u64::MAX)));
    }
}
