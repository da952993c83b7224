//! What the attribute's options mean once parsed: the values the expansion reads.

use proc_macro2::Span;
use syn::Ident;

/// One option as the user wrote it, after its value was interpreted.
#[derive(Debug, Clone)]
pub(crate) struct Setting<T> {
    /// The keyword, for its span: the expansion names builder methods with it so a mismatch lands on the option.
    pub(crate) keyword: Ident,
    /// The interpreted value.
    pub(crate) value: T,
    /// Where the value was written, for errors found later (`lease` longer than `ttl`) and emitted literals.
    pub(crate) value_span: Span,
}

/// Where the idempotency key of a request lives (the `scope` option).
pub(crate) enum Scope {
    /// `"user"`: the app's registered user resolver.
    User,
    /// `"global"`: one namespace for every caller (explicit opt-in).
    Global,
    /// `"header:Name"`: the value of a request header, name lowercased.
    Header(String),
    /// A path to a `fn(&HttpRequest) -> Option<String>`, kept as written so type errors land on it.
    Function(syn::Path),
}

/// Where the idempotency key of a request comes from (the `key` option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// `"header"`: the standard `Idempotency-Key` header.
    Header,
    /// `"header:Name"`: another header, name lowercased.
    HeaderNamed(String),
    /// `"query:name"`: a query string parameter.
    Query(String),
    /// `"form:name"`: a field of an urlencoded body.
    Form(String),
    /// `"derived"`: no key from the client; the request itself is the key.
    Derived,
}

/// Which handler responses are stored (the `store_responses` option).
pub(crate) enum StoreResponses {
    /// `"final"`: all but 5xx, 408, 425 and 429 (the default).
    Final,
    /// `"all"`: every response (Stripe's choice).
    All,
    /// `"success"`: 1xx to 3xx only.
    Success,
    /// A path to a `fn(StatusCode) -> bool`, kept as written so type errors land on it.
    Function(syn::Path),
}

/// The attribute's options; `None` means "not written, use the runtime's default".
#[derive(Default)]
pub(crate) struct Args {
    /// `ttl`, in seconds.
    pub(crate) ttl: Option<Setting<u64>>,
    /// `scope`.
    pub(crate) scope: Option<Setting<Scope>>,
    /// `key`.
    pub(crate) key: Option<Setting<Key>>,
    /// `required`.
    pub(crate) required: Option<Setting<bool>>,
    /// `lease`, in seconds.
    pub(crate) lease: Option<Setting<u64>>,
    /// `store_server_errors`.
    pub(crate) store_server_errors: Option<Setting<bool>>,
    /// `max_request_body`, in bytes.
    pub(crate) max_request_body: Option<Setting<u64>>,
    /// `max_response_body`, in bytes.
    pub(crate) max_response_body: Option<Setting<u64>>,
    /// `crate`: the path of the runtime crate.
    pub(crate) krate: Option<Setting<syn::Path>>,
    /// `on_conflict`: what a duplicate of a request in flight gets.
    pub(crate) on_conflict: Option<Setting<OnConflict>>,
    /// `wait`, in seconds: how long `on_conflict = "wait"` waits.
    pub(crate) wait: Option<Setting<u64>>,
    /// `store_responses`: which handler responses are stored.
    pub(crate) store_responses: Option<Setting<StoreResponses>>,
    /// `fingerprint_headers`: request headers (lowercase names) that are part of the fingerprint.
    pub(crate) fingerprint_headers: Option<Setting<Vec<String>>>,
    /// `fingerprint`: a path to the route's own `fn(&HttpRequest, &[u8]) -> Vec<u8>`.
    pub(crate) fingerprint: Option<Setting<syn::Path>>,
    /// `namespace`: the stable name that replaces the route pattern in the record's identity.
    pub(crate) namespace: Option<Setting<String>>,
    /// `fail_open`: run unprotected when the store is unavailable.
    pub(crate) fail_open: Option<Setting<bool>>,
    /// `issued_only`: only keys the server issued to the caller.
    pub(crate) issued_only: Option<Setting<bool>>,
    /// The keywords written, valid or not: cross-option checks stay quiet about an option whose own value was
    /// already refused, so one mistake gives one error.
    pub(crate) written: Vec<&'static str>,
}

impl Args {
    /// Whether the user wrote this option (whatever its value).
    pub(crate) fn wrote(&self, keyword: &str) -> bool {
        self.written.contains(&keyword)
    }
}

/// What a duplicate that arrives while the original runs gets (the `on_conflict` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// `"reject"`: 409 with `Retry-After` at once.
    Reject,
    /// `"wait"`: wait up to `wait` for the original's result and replay it, else 409.
    Wait,
}
