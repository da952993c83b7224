//! What a call through the middleware reports when it does not end in a response the caller should read.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::problem::{Problem, ProblemType};

/// A boxed error from a [`crate::KeyJournal`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A call that failed, with the key it was sent with (so it can be looked up or resumed) and its attempts.
///
/// The middleware returns it inside `reqwest_middleware::Error::Middleware`; get it back with
/// [`ClientError::of`].
#[derive(Debug)]
pub struct ClientError {
    key: String,
    attempts: u32,
    kind: ErrorKind,
}

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server refused the request with one of the library's problems (422 `key-reused`, 400 `key-invalid`,
    /// 413 `body-too-large`, ...): sending it again cannot help, so it was not retried.
    Refused(Problem),
    /// Every attempt failed with something worth retrying, until the attempts or the time ran out. The request
    /// may or may not have run: send it again later with the same key (or look the key up) to find out.
    GaveUp {
        /// Which bound ended the retries.
        reason: GiveUpReason,
        /// What the last attempt got.
        last: Failure,
    },
    /// The journal could not save the key before the first send: nothing was sent.
    Journal(BoxError),
    /// The request cannot be sent as built (an invalid URL, a redirect loop): nothing to retry.
    Request(reqwest::Error),
}

/// The bound that ended a call's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// [`crate::RetryPolicy::max_attempts`] attempts were made.
    Attempts,
    /// The next wait would have ended beyond [`crate::RetryPolicy::max_elapsed`].
    Deadline,
    /// The request body is a stream that cannot be sent twice.
    BodyNotReplayable,
}

/// What one failed attempt got.
#[derive(Debug)]
pub enum Failure {
    /// No complete response: the connection failed, was reset, timed out, or the body was cut.
    Transport(reqwest::Error),
    /// A response that says "not now" (409 `in-flight`, 429, 503, ...).
    Status {
        /// Its status.
        status: StatusCode,
        /// Its problem document, if it had one.
        problem: Option<Problem>,
        /// Its `Retry-After`, as a delay.
        retry_after: Option<Duration>,
    },
}

impl ClientError {
    pub(crate) fn new(key: String, attempts: u32, kind: ErrorKind) -> Self {
        Self { key, attempts, kind }
    }

    /// The middleware's error inside a `reqwest_middleware::Error`, if that is what it is.
    pub fn of(error: &reqwest_middleware::Error) -> Option<&Self> {
        match error {
            reqwest_middleware::Error::Middleware(error) => error.downcast_ref(),
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }

    /// The `Idempotency-Key` the call was sent with.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How many attempts were sent (0 when the journal failed before the first).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the call failed.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The library problem that refused the call, if that is how it ended.
    pub fn problem(&self) -> Option<&Problem> {
        match &self.kind {
            ErrorKind::Refused(problem) => Some(problem),
            ErrorKind::GaveUp { last: Failure::Status { problem, .. }, .. } => problem.as_ref(),
            _ => None,
        }
    }

    /// Whether the server said the key was used for a different request (422 `key-reused`).
    pub fn is_key_reused(&self) -> bool {
        self.problem().is_some_and(|problem| problem.kind == Some(ProblemType::KeyReused))
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = self.attempts;
        match &self.kind {
            ErrorKind::Refused(problem) => write!(f, "the server refused the call ({problem})"),
            ErrorKind::GaveUp { reason, last } => {
                let why = match reason {
                    GiveUpReason::Attempts => "after the last allowed attempt",
                    GiveUpReason::Deadline => "as the time allowed for the call ran out",
                    GiveUpReason::BodyNotReplayable => "since a streaming body cannot be sent again",
                };
                write!(f, "gave up {why} ({attempts} attempts); last: ")?;
                match last {
                    Failure::Transport(error) => write!(f, "{error}"),
                    Failure::Status { problem: Some(problem), .. } => write!(f, "{problem}"),
                    Failure::Status { status, .. } => write!(f, "{status}"),
                }?;
                write!(f, "; the request may have run: retry later with the same idempotency key")
            }
            ErrorKind::Journal(error) => write!(f, "the key journal failed before the first send: {error}"),
            ErrorKind::Request(error) => write!(f, "the request cannot be sent: {error}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::GaveUp { last: Failure::Transport(error), .. } | ErrorKind::Request(error) => Some(error),
            ErrorKind::Journal(error) => Some(&**error),
            _ => None,
        }
    }
}
