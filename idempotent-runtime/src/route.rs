//! The per-route options that `#[idempotent(...)]` compiles into a `static`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::Settings;
use crate::key_source::KeySpec;
use crate::scope::ScopeSpec;

/// One route's options; unset values fall back to the application's [`crate::Idempotency`].
///
/// Built in a `const` context by the macro, so every option is checked and parsed at compile time.
#[derive(Debug)]
pub struct RouteOptions {
    pub(crate) ttl: Option<Duration>,
    pub(crate) lease: Option<Duration>,
    pub(crate) scope: ScopeSpec,
    pub(crate) key: KeySpec,
    pub(crate) required: bool,
    pub(crate) store_server_errors: bool,
    pub(crate) max_request_body: Option<usize>,
    pub(crate) max_response_body: Option<usize>,
    /// `on_conflict = "wait"`: how long a duplicate waits for the original's result before its 409.
    pub(crate) wait: Option<Duration>,
    /// The handler takes `Tx`: claim, handler writes and response commit in one transaction.
    pub(crate) transactional: bool,
    /// `issued_only = true`: only keys the server issued to the caller are accepted.
    pub(crate) issued_only: bool,
    /// Set once this route has logged a configuration error, so a misconfigured app logs the fix once, not per
    /// request.
    misconfiguration_logged: AtomicBool,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteOptions {
    /// The defaults of CONTRACT section 1: user scope, the `Idempotency-Key` header, key required, 5xx not stored.
    pub const fn new() -> Self {
        Self {
            ttl: None,
            lease: None,
            scope: ScopeSpec::User,
            key: KeySpec::Header,
            required: true,
            store_server_errors: false,
            max_request_body: None,
            max_response_body: None,
            wait: None,
            transactional: false,
            issued_only: false,
            misconfiguration_logged: AtomicBool::new(false),
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

    /// `store_server_errors = ...`.
    pub const fn store_server_errors(mut self, store: bool) -> Self {
        self.store_server_errors = store;
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

    /// The handler takes a `Tx` parameter (set by the macro when it sees one).
    pub const fn transactional(mut self) -> Self {
        self.transactional = true;
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

    pub(crate) fn effective_max_request_body(&self, settings: &Settings) -> usize {
        self.max_request_body.unwrap_or(settings.max_request_body)
    }

    pub(crate) fn effective_max_response_body(&self, settings: &Settings) -> usize {
        self.max_response_body.unwrap_or(settings.max_response_body)
    }

    /// True the first time it is called for this route.
    pub(crate) fn first_misconfiguration(&self) -> bool {
        !self.misconfiguration_logged.swap(true, Ordering::Relaxed)
    }
}
