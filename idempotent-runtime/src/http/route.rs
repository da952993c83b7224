//! The per-route options that `#[idempotent(...)]` compiles into a constant.

use std::time::Duration;

use actix_web::HttpRequest;

use crate::http::config::Settings;
use crate::http::key_source::KeySpec;
use crate::http::scope::ScopeSpec;
use crate::http::store_policy::StorePolicy;

/// A route's own fingerprint of the body: `fingerprint = path::to_fn`.
///
/// It gets the request (for its headers) and the body bytes as received, and returns the bytes that stand for
/// the body in the fingerprint. Two requests whose bytes are equal are the same request (given the same method,
/// path and query).
pub type FingerprintFn = fn(&HttpRequest, &[u8]) -> Vec<u8>;

/// One route's options; unset values fall back to the application's [`crate::Idempotency`].
///
/// Built in a `const` context by the macro, so every option is checked and parsed at compile time. It holds
/// nothing mutable, so the macro's options are a constant: what the flow learns about a route at run time lives
/// in the app's settings.
#[derive(Debug)]
pub struct RouteOptions {
    pub(crate) ttl: Option<Duration>,
    pub(crate) lease: Option<Duration>,
    pub(crate) scope: ScopeSpec,
    pub(crate) key: KeySpec,
    pub(crate) required: bool,
    /// `store_responses` (or the deprecated `store_server_errors`); `None` follows the app's policy.
    pub(crate) store_policy: Option<StorePolicy>,
    /// `fingerprint_headers`: lowercase names of request headers that are part of the fingerprint.
    pub(crate) fingerprint_headers: &'static [&'static str],
    /// `fingerprint = path`: what of the body counts, as the app decides.
    pub(crate) fingerprint_fn: Option<FingerprintFn>,
    /// `namespace`: replaces the route pattern in the record's identity and fingerprint.
    pub(crate) namespace: Option<&'static str>,
    /// `fail_open`: run the handler unprotected when the store is unavailable, instead of answering 503.
    pub(crate) fail_open: bool,
    pub(crate) max_request_body: Option<usize>,
    pub(crate) max_response_body: Option<usize>,
    /// `on_conflict = "wait"`: how long a duplicate waits for the original's result before its 409.
    pub(crate) wait: Option<Duration>,
    /// `issued_only = true`: only keys the server issued to the caller are accepted.
    pub(crate) issued_only: bool,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteOptions {
    /// The defaults of the contract (docs/contract.md, section 1): user scope, the `Idempotency-Key` header, key
    /// required, the app's store policy.
    pub const fn new() -> Self {
        Self {
            ttl: None,
            lease: None,
            scope: ScopeSpec::User,
            key: KeySpec::Header,
            required: true,
            store_policy: None,
            fingerprint_headers: &[],
            fingerprint_fn: None,
            namespace: None,
            fail_open: false,
            max_request_body: None,
            max_response_body: None,
            wait: None,
            issued_only: false,
        }
    }

    /// `ttl = "..."`.
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// `lease = "..."`.
    pub const fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// `scope = ...`.
    pub const fn scope(mut self, scope: ScopeSpec) -> Self {
        self.scope = scope;
        self
    }

    /// `key = "..."`.
    pub const fn key(mut self, key: KeySpec) -> Self {
        self.key = key;
        self
    }

    /// `required = ...`.
    pub const fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// `store_server_errors = ...`: `true` is `store_responses = "all"`, `false` is `store_responses = "final"`.
    #[deprecated(
        since = "0.1.0",
        note = "write `store_responses = \"all\"` (store 5xx too) or `store_responses = \"final\"` (the default)"
    )]
    pub const fn store_server_errors(mut self, store: bool) -> Self {
        self.store_policy = Some(if store { StorePolicy::All } else { StorePolicy::Final });
        self
    }

    /// `store_responses = ...`: which handler responses are stored; the others release the key.
    pub const fn store_responses(mut self, policy: StorePolicy) -> Self {
        self.store_policy = Some(policy);
        self
    }

    /// `fingerprint_headers = [...]`: these request headers (lowercase names) are part of the fingerprint.
    pub const fn fingerprint_headers(mut self, names: &'static [&'static str]) -> Self {
        self.fingerprint_headers = names;
        self
    }

    /// `fingerprint = path`: the function's bytes replace the body in the fingerprint.
    pub const fn fingerprint(mut self, function: FingerprintFn) -> Self {
        self.fingerprint_fn = Some(function);
        self
    }

    /// `namespace = "..."`: a stable name that replaces the route pattern in the record's identity.
    pub const fn namespace(mut self, namespace: &'static str) -> Self {
        self.namespace = Some(namespace);
        self
    }

    /// `fail_open = ...`: with `true`, a store that is unavailable lets the handler run unprotected.
    pub const fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// `max_request_body = "..."`.
    pub const fn max_request_body(mut self, bytes: usize) -> Self {
        self.max_request_body = Some(bytes);
        self
    }

    /// `max_response_body = "..."`.
    pub const fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = Some(bytes);
        self
    }

    /// `on_conflict = "wait", wait = "..."`: a duplicate that arrives while the original runs waits up to `wait`
    /// for its result and replays it (else 409).
    pub const fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    /// `issued_only = ...`: refuse keys the server did not issue to the caller (see [`crate::issue_keys`]).
    pub const fn issued_only(mut self, issued_only: bool) -> Self {
        self.issued_only = issued_only;
        self
    }

    pub(crate) fn effective_ttl(&self, settings: &Settings) -> Duration {
        self.ttl.unwrap_or(settings.default_ttl)
    }

    pub(crate) fn effective_lease(&self, settings: &Settings) -> Duration {
        self.lease.unwrap_or(settings.default_lease)
    }

    pub(crate) fn effective_store_policy(&self, settings: &Settings) -> StorePolicy {
        self.store_policy.unwrap_or(settings.store_policy)
    }

    pub(crate) fn effective_max_request_body(&self, settings: &Settings) -> usize {
        self.max_request_body.unwrap_or(settings.max_request_body)
    }

    pub(crate) fn effective_max_response_body(&self, settings: &Settings) -> usize {
        self.max_response_body.unwrap_or(settings.max_response_body)
    }
}
