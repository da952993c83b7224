//! The middleware: one key per call, the same key on every attempt, retries only where they are safe and useful.

use std::sync::{Arc, Mutex, PoisonError};

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Extensions, Method, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::call::IdempotentCall;
use crate::clock::{Clock, TokioClock};
use crate::error::{ClientError, ErrorKind, Failure, GiveUpReason};
use crate::journal::{KeyJournal, Operation};
use crate::policy::{RetryPolicy, parse_retry_after};
use crate::problem::{Problem, ProblemType};

/// The header the key travels in.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A `reqwest-middleware` middleware that makes non-idempotent calls safe to retry, and retries them.
///
/// For each request whose method is keyed (POST and PATCH by default) or that already carries an
/// `Idempotency-Key`:
///
/// - the key is the caller's header if present, else the one a [`KeyJournal`] saved for the call's
///   [`Operation`], else a fresh UUID v4; it is saved in the journal (if any) before the first send;
/// - the request is sent, and sent again **with the same key** after a connection error, a timeout, a response
///   cut short, the library's 409 `in-flight`, or a status of [`RetryPolicy::retry_statuses`] (429, 502, 503,
///   504), waiting as the [`RetryPolicy`] says (honouring `Retry-After`);
/// - a final answer is returned as the response, its body read in full (so a body cut mid-way is retried
///   too), with an [`IdempotentCall`] extension naming the key and the attempts; the library's other problem
///   answers (422 `key-reused`, 400, 413, ...) are returned as a [`ClientError`] and never retried.
///
/// Requests of other methods without a key pass through untouched.
#[derive(Clone)]
pub struct IdempotencyMiddleware {
    policy: RetryPolicy,
    methods: Vec<Method>,
    header: HeaderName,
    clock: Arc<dyn Clock>,
    journal: Option<Arc<dyn KeyJournal>>,
    random: Arc<Mutex<fastrand::Rng>>,
}

impl std::fmt::Debug for IdempotencyMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyMiddleware")
            .field("policy", &self.policy)
            .field("methods", &self.methods)
            .field("header", &self.header)
            .field("journal", &self.journal.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for IdempotencyMiddleware {
    fn default() -> Self {
        Self::new()
    }
}

impl IdempotencyMiddleware {
    /// Keys POST and PATCH, with the default [`RetryPolicy`], real time, and no journal.
    pub fn new() -> Self {
        Self {
            policy: RetryPolicy::default(),
            methods: vec![Method::POST, Method::PATCH],
            header: IDEMPOTENCY_KEY,
            clock: Arc::new(TokioClock),
            journal: None,
            random: Arc::new(Mutex::new(fastrand::Rng::new())),
        }
    }

    /// How calls are retried.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The methods that get a key when the caller sent none (default POST and PATCH; GET, PUT, DELETE are
    /// idempotent by definition, but a server may still want keys on them).
    pub fn with_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// The key header, for servers that read another one (default `Idempotency-Key`).
    pub fn with_key_header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }

    /// Where the keys of named operations are saved before the first send (see [`KeyJournal`]).
    pub fn with_journal(mut self, journal: Arc<dyn KeyJournal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The clock the waits and the time budget use (a [`crate::ManualClock`] in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the jitter, for reproducible waits.
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.random = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
        self
    }

    fn random(&self) -> f64 {
        self.random.lock().unwrap_or_else(PoisonError::into_inner).f64()
    }

    /// The key of this call: the caller's, the journal's for its operation, or a fresh one.
    async fn key_for(&self, request: &Request, operation: Option<&Operation>) -> Result<String, ClientError> {
        if let Some(given) = request.headers().get(&self.header) {
            // Not ours to judge: the server answers a malformed key with 400 `key-invalid`.
            return Ok(String::from_utf8_lossy(given.as_bytes()).into_owned());
        }
        if let (Some(journal), Some(operation)) = (&self.journal, operation) {
            let saved = journal.saved_key(operation.name()).await;
            if let Some(key) = saved.map_err(|error| ClientError::new(String::new(), 0, ErrorKind::Journal(error)))? {
                return Ok(key);
            }
        }
        Ok(uuid::Uuid::new_v4().to_string())
    }

    async fn finished(&self, operation: Option<&Operation>, key: &str) {
        if let (Some(journal), Some(operation)) = (&self.journal, operation)
            && let Err(error) = journal.finished(operation.name(), key).await
        {
            tracing::warn!(operation = operation.name(), %error, "the key journal could not forget a finished call");
        }
    }

    /// What one attempt's outcome means for the call.
    async fn judge(&self, outcome: reqwest_middleware::Result<Response>) -> Verdict {
        let response = match outcome {
            Ok(response) => response,
            Err(reqwest_middleware::Error::Reqwest(error)) if error.is_builder() || error.is_redirect() => {
                return Verdict::Broken(error);
            }
            Err(reqwest_middleware::Error::Reqwest(error)) => return Verdict::Retry(Failure::Transport(error), None),
            Err(other) => return Verdict::Foreign(other),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| parse_retry_after(value.as_bytes(), self.clock.system_now()));
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        // The whole body, inside the middleware: a response cut mid-body is a failed attempt, retried like any.
        let (response, body) = match buffer(response).await {
            Ok(buffered) => buffered,
            Err(error) => return Verdict::Retry(Failure::Transport(error), None),
        };
        let problem = Problem::parse(status, content_type.as_ref().map(HeaderValue::as_bytes), &body, retry_after);
        let kind = problem.as_ref().and_then(|problem| problem.kind);
        let retryable = self.policy.retry_statuses.contains(&status)
            || (status == StatusCode::CONFLICT && kind == Some(ProblemType::InFlight));
        if retryable {
            return Verdict::Retry(Failure::Status { status, problem, retry_after }, retry_after);
        }
        match problem {
            // One of the library's own refusals: the same request would get the same answer.
            Some(problem) if kind.is_some() && (status.is_client_error() || status.is_server_error()) => {
                Verdict::Refused(problem)
            }
            _ => Verdict::Done(response),
        }
    }
}

/// What an attempt's outcome means.
enum Verdict {
    /// A final answer for the caller.
    Done(Response),
    /// The library refused the request; retrying cannot help.
    Refused(Problem),
    /// Worth another attempt, after at least the server's `Retry-After`.
    Retry(Failure, Option<std::time::Duration>),
    /// The request cannot be sent as built.
    Broken(reqwest::Error),
    /// Another middleware's error, passed on as it is.
    Foreign(reqwest_middleware::Error),
}

/// Reads the whole body and gives back an equivalent response (same status, headers, URL and extensions).
async fn buffer(response: Response) -> Result<(Response, bytes::Bytes), reqwest::Error> {
    use reqwest::ResponseBuilderExt as _;
    let url = response.url().clone();
    let (mut parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let bytes = http_body_util::BodyExt::collect(body).await?.to_bytes();
    // The conversion to `http::Response` drops the URL; the builder extension is the public way to put it back.
    let (with_url, ()) = http::Response::builder().url(url).body(()).unwrap_or_default().into_parts();
    parts.extensions.extend(with_url.extensions);
    Ok((Response::from(http::Response::from_parts(parts, bytes.clone())), bytes))
}

#[async_trait::async_trait]
impl Middleware for IdempotencyMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.methods.contains(request.method()) && !request.headers().contains_key(&self.header) {
            return next.run(request, extensions).await;
        }
        let operation = extensions.get::<Operation>().cloned();
        let key = self.key_for(&request, operation.as_ref()).await.map_err(reqwest_middleware::Error::middleware)?;
        let Ok(value) = HeaderValue::from_str(&key) else {
            // A caller's key that is not a valid header value cannot have come from a header: unreachable, but
            // sending the request as it is lets the server say what is wrong.
            return next.run(request, extensions).await;
        };
        request.headers_mut().insert(self.header.clone(), value);
        if let (Some(journal), Some(operation)) = (&self.journal, &operation) {
            journal.started(operation.name(), &key).await.map_err(|error| {
                reqwest_middleware::Error::middleware(ClientError::new(key.clone(), 0, ErrorKind::Journal(error)))
            })?;
        }

        let started = self.clock.now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            // A streaming body cannot be sent twice: its one attempt takes the request itself.
            let (this, last_chance) = match request.try_clone() {
                Some(copy) => (copy, false),
                None => {
                    let stand_in = placeholder(&request);
                    (std::mem::replace(&mut request, stand_in), true)
                }
            };
            let give_up = |reason, last| {
                reqwest_middleware::Error::middleware(ClientError::new(
                    key.clone(),
                    attempts,
                    ErrorKind::GaveUp { reason, last },
                ))
            };
            let (failure, retry_after) = match self.judge(next.clone().run(this, extensions).await).await {
                Verdict::Done(mut response) => {
                    self.finished(operation.as_ref(), &key).await;
                    response.extensions_mut().insert(IdempotentCall::new(key.clone(), attempts));
                    return Ok(response);
                }
                Verdict::Refused(problem) => {
                    self.finished(operation.as_ref(), &key).await;
                    let error = ClientError::new(key.clone(), attempts, ErrorKind::Refused(problem));
                    return Err(reqwest_middleware::Error::middleware(error));
                }
                Verdict::Broken(error) => {
                    let error = ClientError::new(key.clone(), attempts, ErrorKind::Request(error));
                    return Err(reqwest_middleware::Error::middleware(error));
                }
                Verdict::Foreign(error) => return Err(error),
                Verdict::Retry(failure, retry_after) => (failure, retry_after),
            };
            if last_chance {
                return Err(give_up(GiveUpReason::BodyNotReplayable, failure));
            }
            if attempts >= self.policy.max_attempts {
                return Err(give_up(GiveUpReason::Attempts, failure));
            }
            let delay = self.policy.delay(attempts, retry_after, self.random());
            let elapsed = self.clock.now().saturating_duration_since(started);
            if elapsed.saturating_add(delay) > self.policy.max_elapsed {
                return Err(give_up(GiveUpReason::Deadline, failure));
            }
            tracing::debug!(attempt = attempts, ?delay, "idempotent call failed; retrying with the same key");
            self.clock.sleep(delay).await;
        }
    }
}

/// A stand-in left behind when a request whose body cannot be cloned is sent for its only attempt.
fn placeholder(request: &Request) -> Request {
    Request::new(request.method().clone(), request.url().clone())
}
