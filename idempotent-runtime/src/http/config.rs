//! The application-wide configuration, registered once as actix app data.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::http::Uri;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::attempt::{BoundedStore, DEFAULT_STORE_TIMEOUT};
use crate::http::issued_key::KeyIssuer;
use crate::http::problem::{ProblemDetails, ProblemStyle};
use crate::http::replay_hook::{ReplayHook, ReplayedResponse};
use crate::http::scope::UserResolver;
use crate::http::scope_digests::{ScopeDigests, Transition};
use crate::http::store_policy::StorePolicy;
use crate::http::usual_duration::UsualDurations;
use crate::record_id::ScopeSecret;
use crate::store::Store;

pub use crate::attempt::{DEFAULT_LEASE, DEFAULT_TTL};
/// The default cap on request bodies of idempotent routes.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 1024 * 1024;
/// The default cap on stored response bodies; larger responses pass through and only their completion is stored.
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 1024 * 1024;
/// The default `Retry-After` of a 503 `store-unavailable`.
pub const DEFAULT_STORE_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The header a replayed response carries.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Headers never stored: hop-by-hop headers (RFC 9110 section 7.6.1), headers that describe this transmission
/// rather than the response (`Date`, `Content-Length`), and `Set-Cookie`, which would hand one session's cookie to
/// whoever replays the key.
const NEVER_STORED: [HeaderName; 11] = [
    actix_web::http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    actix_web::http::header::PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-authorization"),
    actix_web::http::header::TE,
    actix_web::http::header::TRAILER,
    actix_web::http::header::TRANSFER_ENCODING,
    actix_web::http::header::UPGRADE,
    actix_web::http::header::DATE,
    actix_web::http::header::SET_COOKIE,
    actix_web::http::header::CONTENT_LENGTH,
];

/// The idempotency configuration of an application: the store, defaults for routes, and the user resolver.
///
/// Build it once and register it as app data; every `#[idempotent]` route reads it:
///
/// ```
/// use actix_web::{App, HttpRequest};
/// use idempotent_runtime::{Idempotency, MemoryStore};
///
/// fn user_of(request: &HttpRequest) -> Option<String> {
///     request.headers().get("x-user")?.to_str().ok().map(str::to_owned)
/// }
///
/// let idempotency = Idempotency::builder(MemoryStore::new()).user_resolver(user_of).build();
/// let app = App::new().app_data(idempotency.clone());
/// # drop(app);
/// ```
///
/// A route used without it answers 500 `misconfigured` and logs the fix once.
#[derive(Clone)]
pub struct Idempotency {
    settings: Arc<Settings>,
}

pub(crate) struct Settings {
    /// The store as the application registered it ([`Idempotency::store`]).
    pub(crate) store: Arc<dyn Store>,
    /// The same store as the runtime calls it: every operation bounded by the store timeout (kept in step by
    /// [`IdempotencyBuilder::store_timeout`]).
    pub(crate) calls: Arc<dyn Store>,
    pub(crate) default_ttl: Duration,
    pub(crate) default_lease: Duration,
    pub(crate) max_request_body: usize,
    pub(crate) max_response_body: usize,
    pub(crate) key_header: HeaderName,
    pub(crate) user_resolver: Option<UserResolver>,
    pub(crate) denied_headers: Vec<HeaderName>,
    pub(crate) store_retry_after: Duration,
    pub(crate) key_reused_status: actix_web::http::StatusCode,
    pub(crate) problems: ProblemStyle,
    pub(crate) replay_hook: Option<ReplayHook>,
    pub(crate) store_policy: StorePolicy,
    /// Signs and verifies server-issued keys (`issue_keys`, `issued_only` routes).
    pub(crate) key_issuer: Option<KeyIssuer>,
    /// Whether scope digests are keyed, and the upgrade between unkeyed and keyed ones.
    pub(crate) scope_digests: ScopeDigests,
    /// How long each route's requests usually take: the `Retry-After` of its 409s.
    pub(crate) usual_durations: UsualDurations,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings = &self.settings;
        f.debug_struct("Idempotency")
            .field("default_ttl", &settings.default_ttl)
            .field("default_lease", &settings.default_lease)
            .field("max_request_body", &settings.max_request_body)
            .field("max_response_body", &settings.max_response_body)
            .field("key_header", &settings.key_header)
            .field("user_resolver", &settings.user_resolver.is_some())
            .field("denied_headers", &settings.denied_headers)
            .field("problem_type_base", &settings.problems.type_base)
            .field("store_policy", &settings.store_policy)
            .field("scope_secret", &settings.scope_digests.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl Idempotency {
    /// Starts a configuration on the given store: a store of its own (`MemoryStore::new()`,
    /// `PostgresStore::new(pool)`), or one shared with other code (an `Arc<dyn Store>`, e.g. tests that inspect it).
    pub fn builder(store: impl Store) -> IdempotencyBuilder {
        let store = store.into_shared();
        IdempotencyBuilder {
            settings: Settings {
                calls: BoundedStore::shared(Arc::clone(&store), DEFAULT_STORE_TIMEOUT),
                store,
                default_ttl: DEFAULT_TTL,
                default_lease: DEFAULT_LEASE,
                max_request_body: DEFAULT_MAX_REQUEST_BODY,
                max_response_body: DEFAULT_MAX_RESPONSE_BODY,
                key_header: HeaderName::from_static("idempotency-key"),
                user_resolver: None,
                denied_headers: Vec::new(),
                store_retry_after: DEFAULT_STORE_RETRY_AFTER,
                key_reused_status: actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                problems: ProblemStyle::DEFAULT,
                replay_hook: None,
                store_policy: StorePolicy::Final,
                key_issuer: None,
                scope_digests: ScopeDigests::default(),
                usual_durations: UsualDurations::default(),
            },
        }
    }

    /// The store routes claim their keys in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.settings.store
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }
}

impl Settings {
    /// Whether a response header may be stored and replayed.
    pub(crate) fn may_store_header(&self, name: &HeaderName) -> bool {
        !NEVER_STORED.contains(name) && !self.denied_headers.contains(name)
    }
}

/// Builds an [`Idempotency`]; every setting has a default.
#[must_use = "call .build() and register the result as app data"]
pub struct IdempotencyBuilder {
    settings: Settings,
}

impl IdempotencyBuilder {
    /// How long completed responses are replayed on routes without `ttl` (default 24 hours).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.settings.default_ttl = ttl;
        self
    }

    /// How long an in-flight claim is protected on routes without `lease` (default 30 seconds).
    pub fn default_lease(mut self, lease: Duration) -> Self {
        self.settings.default_lease = lease;
        self
    }

    /// The request body cap of routes without `max_request_body` (default 1 MiB); larger bodies get 413.
    pub fn max_request_body(mut self, bytes: usize) -> Self {
        self.settings.max_request_body = bytes;
        self
    }

    /// The stored response body cap of routes without `max_response_body` (default 1 MiB).
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.settings.max_response_body = bytes;
        self
    }

    /// The header `key = "header"` reads (default `Idempotency-Key`).
    pub fn key_header(mut self, name: HeaderName) -> Self {
        self.settings.key_header = name;
        self
    }

    /// How `scope = "user"` finds the user of a request; `None` answers 401. Required by routes with user scope
    /// (the default scope).
    pub fn user_resolver(mut self, resolver: impl Fn(&HttpRequest) -> Option<String> + Send + Sync + 'static) -> Self {
        self.settings.user_resolver = Some(Arc::new(resolver));
        self
    }

    /// A response header never to store nor replay (in addition to hop-by-hop headers, `Date` and `Set-Cookie`).
    pub fn deny_response_header(mut self, name: HeaderName) -> Self {
        self.settings.denied_headers.push(name);
        self
    }

    /// The `Retry-After` of a 503 `store-unavailable` (default 1 second).
    pub fn store_retry_after(mut self, after: Duration) -> Self {
        self.settings.store_retry_after = after;
        self
    }

    /// The status of a `key-reused` problem (a key sent again with a different request); 422 by default, as in the
    /// IETF draft. Some APIs prefer 409 or 400.
    pub fn key_reused_status(mut self, status: actix_web::http::StatusCode) -> Self {
        self.settings.key_reused_status = status;
        self
    }

    /// The base of every problem `type` URI (default [`crate::PROBLEM_TYPE_BASE`]), so that `type` points at the
    /// app's own documentation: with `"https://api.example.com/errors/"`, a reused key's problem has the type
    /// `https://api.example.com/errors/key-reused`. The slugs ([`crate::ProblemKind::slug`]) stay the same.
    pub fn problem_type_base(mut self, base: impl Into<String>) -> Self {
        self.settings.problems.type_base = std::borrow::Cow::Owned(base.into());
        self
    }

    /// Adds `Link: <uri>; rel="describedby"` to every answer of the library (400, 401, 409, 413, 422, 500, 503), so
    /// a client can find the app's idempotency documentation, as the IETF draft suggests for a missing key.
    pub fn docs_link(mut self, uri: Uri) -> Self {
        // A `Uri` is printable ASCII without spaces, so the header value is always valid.
        let value = HeaderValue::try_from(format!("<{uri}>; rel=\"describedby\"")).ok();
        self.settings.problems.link = value;
        self
    }

    /// Renders every answer of the library (400 `key-missing` / `key-invalid`, 401, 409, 413, 422, 500, 503, the
    /// body of a `response-not-stored` replay) in the app's own error format, instead of `application/problem+json`.
    ///
    /// The renderer gets the [`ProblemDetails`] (kind, status, `type` URI, title, detail, headers) and returns the
    /// response; the library then sets the status and its own headers on it (`Cache-Control: no-store`,
    /// `Retry-After`, `Link`), so clients see the same statuses and headers whatever the format. The renderer also
    /// sees the request ([`ProblemDetails::request`]), so it can render a page for a browser's form route and keep
    /// the library's document elsewhere ([`ProblemDetails::problem_json`]). For example, Stripe's error format:
    ///
    /// ```
    /// use actix_web::HttpResponse;
    /// use idempotent_runtime::{Idempotency, MemoryStore, ProblemKind};
    ///
    /// let idempotency = Idempotency::builder(MemoryStore::new())
    ///     .render_problems(|problem| {
    ///         let kind = match problem.kind() {
    ///             ProblemKind::KeyReused | ProblemKind::InFlight => "idempotency_error",
    ///             ProblemKind::StoreUnavailable => "api_error",
    ///             _ => "invalid_request_error",
    ///         };
    ///         HttpResponse::build(problem.status()).json(serde_json::json!({
    ///             "error": {"type": kind, "code": problem.kind().slug(), "message": problem.detail()}
    ///         }))
    ///     })
    ///     .build();
    /// # drop(idempotency);
    /// ```
    pub fn render_problems(
        mut self,
        renderer: impl Fn(&ProblemDetails<'_>) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.settings.problems.renderer = Some(Arc::new(renderer));
        self
    }

    /// Called with every replayed response before it is sent: the hook may add or change headers of this
    /// response (say, a request id) and record metrics; it cannot change the status or the body, and the stored
    /// record is never touched.
    ///
    /// ```
    /// use actix_web::http::header::{HeaderName, HeaderValue};
    /// use idempotent_runtime::{Idempotency, MemoryStore};
    ///
    /// let idempotency = Idempotency::builder(MemoryStore::new())
    ///     .on_replay(|replayed| {
    ///         let served_by = HeaderValue::from_static("replica-3");
    ///         replayed.headers_mut().insert(HeaderName::from_static("x-served-by"), served_by);
    ///     })
    ///     .build();
    /// # drop(idempotency);
    /// ```
    pub fn on_replay(mut self, hook: impl Fn(&mut ReplayedResponse<'_>) + Send + Sync + 'static) -> Self {
        self.settings.replay_hook = Some(Arc::new(hook));
        self
    }

    /// Which handler responses are stored on routes without `store_responses` (default [`StorePolicy::Final`]:
    /// all but 5xx, 408, 425 and 429). [`StorePolicy::All`] is Stripe's store-everything.
    pub fn store_responses(mut self, policy: StorePolicy) -> Self {
        self.settings.store_policy = policy;
        self
    }

    /// Issues keys through [`crate::issue_keys`] and verifies them on `issued_only` routes and in the status
    /// lookup. Required by both: without it they answer 500 `misconfigured`.
    pub fn key_issuer(mut self, issuer: KeyIssuer) -> Self {
        self.settings.key_issuer = Some(issuer);
        self
    }

    /// Keys the scope digests records are stored under with a deployment secret (HMAC-SHA256), so that whoever
    /// reads the table cannot test guessed user ids against it. Every process of the app must share the secret.
    ///
    /// On an app that already has records, a plain switch would make them unreachable: a retry of a request
    /// stored without the secret would run its handler again. Upgrade with
    /// [`reading_unkeyed_scopes_until`](Self::reading_unkeyed_scopes_until) (all processes switched at once) or
    /// with [`claiming_unkeyed_scopes`](Self::claiming_unkeyed_scopes) first (a rolling deploy).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use idempotent_runtime::{Idempotency, MemoryStore, ScopeSecret};
    ///
    /// let secret = ScopeSecret::new(b"from the secret store, 32 bytes or more").unwrap();
    /// // Deployed on 2026-12-06; records written before live 24 h: read them for a day and a little more.
    /// let upgraded = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_515_200);
    /// let idempotency = Idempotency::builder(MemoryStore::new())
    ///     .scope_secret(secret)
    ///     .reading_unkeyed_scopes_until(upgraded + Duration::from_secs(25 * 3600))
    ///     .build();
    /// # drop(idempotency);
    /// ```
    pub fn scope_secret(mut self, secret: ScopeSecret) -> Self {
        self.settings.scope_digests.secret = Some(secret);
        self
    }

    /// The upgrade to a [`scope_secret`](Self::scope_secret): until `until`, a request first looks for its
    /// record under the unkeyed digest and answers from it (a replay, 409 in flight, 422 for a reused key, or a
    /// wait with `on_conflict = "wait"`); only when there is none does it claim under the keyed digest. A fresh
    /// claim that finds an unkeyed record made at the same moment releases itself and answers from that one.
    ///
    /// Set `until` to when the last process without the secret stopped serving plus the longest ttl of the app's
    /// routes: no unkeyed record outlives it. After `until` the setting does nothing and may be removed. Without
    /// a secret it does nothing.
    pub fn reading_unkeyed_scopes_until(mut self, until: SystemTime) -> Self {
        self.settings.scope_digests.transition = Transition::ReadingUnkeyedUntil(until);
        self
    }

    /// Step 1 of a rolling upgrade to a [`scope_secret`](Self::scope_secret): new records are still claimed
    /// under the unkeyed digest, as by processes without the secret, but a record under the keyed digest is
    /// answered from first, and a fresh claim that finds a keyed record made at the same moment releases itself.
    /// Deploy this everywhere, then [`reading_unkeyed_scopes_until`](Self::reading_unkeyed_scopes_until): while
    /// the two steps run side by side, of two concurrent first requests of a key at most one runs its handler.
    /// Without a secret it does nothing.
    pub fn claiming_unkeyed_scopes(mut self) -> Self {
        self.settings.scope_digests.transition = Transition::ClaimingUnkeyed;
        self
    }

    /// How long the runtime waits for any one store operation (claim, heartbeat, complete, release, read,
    /// lookup, a transactional claim; a wait for a duplicate gets its own time on top) before answering 503
    /// `store-unavailable` with `Retry-After`, the handler not run (default [`DEFAULT_STORE_TIMEOUT`]). It
    /// holds for every store, including third-party ones without timeouts of their own; a store's own, shorter
    /// timeout still answers first.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.settings.calls = BoundedStore::shared(Arc::clone(&self.settings.store), timeout);
        self
    }

    /// The configuration, ready to register with `App::app_data`.
    pub fn build(self) -> Idempotency {
        Idempotency { settings: Arc::new(self.settings) }
    }
}
