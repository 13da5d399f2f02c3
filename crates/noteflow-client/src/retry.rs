//! Which errors are worth retrying, and how long to wait before the next try.

use std::time::Duration;

use tonic::{Code, Status};

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The server may answer if asked again shortly (it is restarting, overloaded or briefly
    /// unreachable): retry with backoff.
    Transient,
    /// Asking again gives the same answer: stop at once.
    Fatal,
}

/// The one place that decides which status codes are retried. UNAVAILABLE, DEADLINE_EXCEEDED and
/// RESOURCE_EXHAUSTED are transient; everything else (NOT_FOUND, INVALID_ARGUMENT,
/// PERMISSION_DENIED, UNAUTHENTICATED, FAILED_PRECONDITION, INTERNAL, UNKNOWN, ...) is fatal.
pub fn classify(code: Code) -> ErrorClass {
    match code {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
            ErrorClass::Transient
        }
        _ => ErrorClass::Fatal,
    }
}

/// The code to classify a failed call by. A status the server sent is taken as it is. A status
/// made on this side from a transport error (it carries that error as its source: the connection
/// was refused, reset or closed mid-call) means the server could not be reached, whatever code the
/// transport library picked for it (hyper reports a connection closed mid-call as CANCELLED), so it
/// counts as UNAVAILABLE.
pub fn effective_code(status: &Status) -> Code {
    use std::error::Error;
    match status.code() {
        Code::Cancelled | Code::Unknown | Code::Internal if status.source().is_some() => {
            Code::Unavailable
        }
        code => code,
    }
}

/// The server's hint of how long to wait before retrying (`grpc-retry-pushback-ms`), if it sent one.
pub fn retry_hint(status: &Status) -> Option<Duration> {
    status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// A failed call's code and message, for errors and events.
pub(crate) fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Exponential backoff with jitter for consecutive transient failures.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Consecutive transient failures tolerated; the next one gives up. A success resets the count.
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of a wait (a server's hint may exceed it, up to `max_hint`).
    pub max_backoff: Duration,
    /// Largest server hint honoured.
    pub max_hint: Duration,
    /// Each wait is scaled by a random factor in `1 ± jitter`, so clients do not retry in lockstep.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            // 1 s, 2 s, 4 s: long enough to ride out a server restart (process start, model
            // load and database recovery take a few seconds on a small machine).
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            max_hint: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based). A server's hint replaces the computed
    /// backoff (capped at `max_hint`); jitter applies to both.
    pub fn delay(&self, retry: u32, hint: Option<Duration>) -> Duration {
        let base = match hint {
            Some(hint) => hint.min(self.max_hint),
            None => {
                let doublings = retry.saturating_sub(1).min(30);
                self.initial_backoff
                    .saturating_mul(1u32 << doublings)
                    .min(self.max_backoff)
            }
        };
        jittered(base, self.jitter)
    }
}

/// `base` scaled by a random factor in `1 ± jitter` (jitter clamped to 0..=1).
pub fn jittered(base: Duration, jitter: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 1.0);
    let factor = 1.0 + jitter * (2.0 * fastrand::f64() - 1.0);
    base.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_exactly_the_three_retried_ones() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
        ] {
            assert_eq!(classify(code), ErrorClass::Transient, "{code:?}");
        }
        for code in [
            Code::Ok,
            Code::Cancelled,
            Code::Unknown,
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::DataLoss,
            Code::Unauthenticated,
        ] {
            assert_eq!(classify(code), ErrorClass::Fatal, "{code:?}");
        }
    }

    #[test]
    fn a_local_transport_failure_counts_as_unavailable_but_a_server_status_does_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let local = Status::from_error(Box::new(io));
        assert!(std::error::Error::source(&local).is_some());
        let local_cancel = {
            let mut s = Status::cancelled("operation was canceled");
            s.set_source(std::sync::Arc::new(std::io::Error::other("closed")));
            s
        };
        assert_eq!(effective_code(&local_cancel), Code::Unavailable);
        assert_eq!(
            classify(effective_code(&local_cancel)),
            ErrorClass::Transient
        );
        assert_eq!(
            effective_code(&Status::cancelled("the server cancelled")),
            Code::Cancelled
        );
        assert_eq!(effective_code(&Status::not_found("gone")), Code::NotFound);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_within_the_jitter() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            jitter: 0.2,
            ..RetryPolicy::default()
        };
        for (retry, base) in [(1, 100.0), (2, 200.0), (3, 400.0), (4, 500.0), (40, 500.0)] {
            for _ in 0..50 {
                let ms = policy.delay(retry, None).as_secs_f64() * 1e3;
                assert!(
                    ms >= base * 0.8 - 1e-6 && ms <= base * 1.2 + 1e-6,
                    "retry {retry}: {ms} ms"
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let policy = RetryPolicy::default();
        let waits: std::collections::BTreeSet<u128> =
            (0..20).map(|_| policy.delay(1, None).as_micros()).collect();
        assert!(waits.len() > 10, "{waits:?}");
    }

    #[test]
    fn a_server_hint_replaces_the_backoff_and_is_capped() {
        let policy = RetryPolicy {
            jitter: 0.0,
            max_hint: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.delay(1, Some(Duration::from_millis(2500))),
            Duration::from_millis(2500)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(600))),
            Duration::from_secs(10)
        );

        let mut status = Status::resource_exhausted("queue full");
        status
            .metadata_mut()
            .insert("grpc-retry-pushback-ms", "1500".parse().unwrap());
        assert_eq!(retry_hint(&status), Some(Duration::from_millis(1500)));
        assert_eq!(retry_hint(&Status::unavailable("down")), None);
    }
}
