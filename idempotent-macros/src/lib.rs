//! The `#[idempotent]` attribute for actix-web handlers.
//!
//! Use it through the `idempotent-runtime` crate, which re-exports it: the code this attribute generates calls
//! into that crate (`::idempotent_runtime::__private`), so the two are versioned together.
//!
//! This crate is only the compile-time half. It reads the options, checks everything that can be checked before
//! the program runs (a duration with an unknown unit, a header name with a space, a lease longer than the ttl, a
//! handler that is not `async`) and reports each mistake on the token that caused it. It then wraps the handler
//! in a function that hands the request to the runtime, which does the claiming, fingerprinting, storing and
//! replaying. See [`macro@idempotent`] for the attribute itself.
//!
//! Layout: `args` parses the options, `validate` checks them and the handler, `expand` generates the code,
//! `duration` and `size` are the pure unit parsers. The entry point below only converts token types, so all of
//! it is reachable from unit tests.

mod args;
mod duration;
mod errors;
mod expand;
mod handler;
mod size;
mod validate;

#[cfg(test)]
mod snapshots;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Makes an actix-web handler idempotent: a request retried with the same idempotency key gets the first
/// response again instead of running the handler a second time.
///
/// The first request with a key claims it, runs the handler, and stores the response. A retry with the same key
/// and the same request (method, route, path, query and body) gets the stored response, byte for byte, with
/// `Idempotent-Replayed: true`. A retry while the first is still running is turned away, and a key reused for a
/// different request is refused. The store and the user resolver are registered on the app with the runtime
/// crate's configuration; this attribute only says how one route uses them.
///
/// # Syntax
///
/// ```text
/// #[idempotent]
/// #[idempotent(option = value, option = value, ...)]
/// async fn handler(extractors...) -> impl Responder { ... }
/// ```
///
/// It goes on an `async fn` handler, above or below actix-web's route macros (`#[post]`, `#[route]`). The
/// handler keeps its extractors (`web::Json`, `web::Form`, `web::Bytes`, `String`, `web::Path`, `web::Query`,
/// `web::Data`, `HttpRequest`, your own): the body is read once, fingerprinted, and then given to them.
///
/// The function must be a free `async fn` without generic parameters (no `self`, no `<T>`, no lifetimes), as
/// actix-web needs one concrete function per route. Its arguments are extractors taken by value (`HttpRequest`,
/// not `&HttpRequest`), at most 16 as for any actix-web handler, with named types (no `impl Trait`) and no
/// `#[cfg]` of their own; any pattern is fine (`web::Json(order): web::Json<Order>`). It may return anything
/// that implements `Responder`: `HttpResponse`, `impl Responder`, `Result<T, E>`, `String`, ...
///
/// The attribute replaces the function by one of the same name, visibility and attributes that hands the request
/// to the runtime, with the original function, unchanged, inside it. Names starting with `__idempotent_` are
/// reserved for that generated code.
///
/// # Options
///
/// All options are optional, each at most once, separated by commas. Values are checked at compile time: a bad
/// value is an error on that value naming the accepted forms.
///
/// | option | accepted values | default |
/// |---|---|---|
/// | `ttl` | a duration string | runtime config (24h) |
/// | `lease` | a duration string, shorter than `ttl` | runtime config (30s) |
/// | `scope` | `"user"`, `"global"`, `"header:Name"`, or a path to a function | `"user"` |
/// | `key` | `"header"`, `"header:Name"`, `"query:name"`, `"form:name"`, `"derived"` | `"header"` |
/// | `required` | `true`, `false` | `true` |
/// | `store_responses` | `"final"`, `"all"`, `"success"`, or a path to a function | runtime config (`"final"`) |
/// | `store_server_errors` | deprecated: `true` is `store_responses = "all"` | |
/// | `max_request_body` | a size string or an integer number of bytes | runtime config |
/// | `max_response_body` | a size string or an integer number of bytes | runtime config |
/// | `on_conflict` | `"reject"`, `"wait"` (with `wait`) | `"reject"` |
/// | `wait` | a duration string, with `on_conflict = "wait"` only | none |
/// | `fingerprint_headers` | a list of header names: `["X-Account-Id"]` | none |
/// | `fingerprint` | a path to a function (not with `fingerprint_headers`) | the body as received |
/// | `namespace` | a stable name, e.g. `"payments.create"` | the route pattern |
/// | `fail_open` | `true`, `false` (not on a transactional route) | `false` |
/// | `issued_only` | `true`, `false` | `false` |
/// | `crate` | a path in a string | `"::idempotent_runtime"` |
///
/// - **`ttl = "24h"`**: how long a completed response is kept and replayed. After it, the same key is a fresh
///   request. Durations are whole numbers with a unit, `s`, `m`, `h` or `d`, and may be summed: `"90s"`,
///   `"15m"`, `"1h30m"`, `"7d"`. Zero is refused.
/// - **`lease = "30s"`**: how long an in-flight claim is protected without news from its worker. The runtime
///   renews it while the handler runs; it only runs out when the worker is gone (crash), which frees the key for
///   a retry. Same form as `ttl`, and when both are given it must be shorter than `ttl`.
/// - **`scope = "user"`**: the namespace of keys, so that two callers using the same key never meet.
///   `"user"` uses the user resolver registered on the app; `"global"` shares one namespace between all callers
///   (an explicit opt-in, for keys that are globally unique); `"header:X-Tenant-Id"` uses a request header; a
///   path, unquoted, names your own `fn(&HttpRequest) -> Option<String>`: `scope = crate::auth::tenant_of`.
///   `None` from the resolver means "no caller": 401.
/// - **`key = "header"`**: where the key is read. `"header"` is the standard `Idempotency-Key` header;
///   `"header:X-Request-Id"` another header; `"query:idem"` a query string parameter; `"form:idem"` a field of
///   an urlencoded body. Header names are case-insensitive (they are emitted lowercased). `"derived"` takes no
///   key from the client: the request itself (its scope and fingerprint) is the key, so the same caller
///   submitting the same request within the ttl gets the first result: a double-submit guard for forms and
///   clients that send no key. Use a short `ttl` with it (seconds to minutes), since a genuinely repeated
///   identical request within the ttl is treated as the same one.
/// - **`required = true`**: with `true`, a request without a key is refused (400). With `false` it runs the
///   handler without protection, for routes that older clients call without a key.
/// - **`store_responses = "final"`**: which of the handler's responses are stored and replayed; the others pass
///   through and release the key, so a retry runs the handler again. `"final"` (the default, unless the app set
///   another with `IdempotencyBuilder::store_responses`) stores everything except 5xx and the transient 408,
///   425 and 429: a rate-limited request runs when retried instead of replaying "too many requests" for the whole
///   ttl. `"all"` stores every response, 5xx included (Stripe's choice). `"success"` stores 1xx to 3xx only. A
///   path, unquoted, names your own `fn(StatusCode) -> bool` (`true` stores).
/// - **`store_server_errors = true`**: deprecated, still accepted (with a deprecation warning on the keyword):
///   `true` is `store_responses = "all"`, `false` is `store_responses = "final"`. Refused together with
///   `store_responses`.
/// - **`fingerprint_headers = ["X-Account-Id", "Accept-Language"]`**: request headers that are part of the
///   fingerprint (besides method, route, path, query and body), so the same key sent with another value of one
///   of them is a reused key (422). Names are checked and case-insensitive; every instance of a header counts,
///   in order, and an absent header differs from an empty one.
/// - **`fingerprint = path::to_fn`**: your own `fn(&HttpRequest, &[u8]) -> Vec<u8>`, given the request and the
///   body as received; the bytes it returns stand for the body in the fingerprint. Use it to leave out a
///   volatile field (a client timestamp) that changes on every retry. It cannot be combined with
///   `fingerprint_headers` (the function reads the headers it needs).
/// - **`namespace = "payments.create"`**: a stable name that replaces the route pattern in the record's
///   identity and in the fingerprint (where the values of the path's parameters replace the path), so renaming
///   or re-mounting the route in a deploy does not make in-flight retries run again. Letters, digits and
///   `._-:/`, at most 128 characters, not starting with `/` (so it never equals a route pattern).
/// - **`fail_open = true`**: when the store is unavailable (unreachable or timing out), run the handler without
///   protection instead of answering 503, for routes where availability beats exactly-once. Each such request is
///   logged (warning) and counted (`idempotent_fail_open_total`). Fail closed (503, the handler does not run) is
///   the default. Refused on a transactional route, whose `Tx` lives in the store.
/// - **`max_request_body = "1MiB"`**, **`max_response_body = "1MiB"`**: caps on what is buffered. Units `B`,
///   `KB` (1000), `KiB` (1024), `MB`, `MiB`, `GB`, `GiB`, case-sensitive, with at most one space: `"512KiB"`,
///   `"10 MB"`; or an integer number of bytes: `65536`. A request over the cap is refused with 413. A response
///   over the cap is sent, but only its status and headers are stored: a retry is told the body was not kept,
///   and the handler still never runs twice.
/// - **`on_conflict = "reject"`**, **`wait = "5s"`**: what a duplicate gets while the original request still
///   runs. `"reject"` answers 409 with `Retry-After` at once. `"wait"` holds the duplicate up to `wait` (no
///   polling: PostgreSQL `LISTEN/NOTIFY`, or an in-process notification in the memory store) and replays the
///   original's response when it completes, runs the handler itself if the original released the key (a 5xx),
///   or answers 409 when `wait` runs out. `wait` is required with `"wait"` and refused otherwise.
/// - **a `Tx` parameter**: a handler that takes the runtime's `Tx` (`tx: Tx` or `tx: idempotent_runtime::Tx`)
///   makes the route **transactional**: the claim, the handler's own SQL through `tx`, and the stored response
///   commit in one PostgreSQL transaction, so a crash anywhere leaves either everything or nothing. At most one
///   `Tx` per handler.
/// - **`issued_only = true`**: only keys the server issued to this caller are accepted (from the runtime's
///   `issue_keys` service, which answers `POST` with a key bound to the caller's scope), so the server knows every
///   operation a client started. A forged key, another caller's key, or an issued key whose time to be used
///   expired is refused with 400 `key-not-issued`. Needs keys from the client: refused with `key = "derived"`
///   and with `required = false`.
/// - **`crate = "my_runtime"`**: the path of the runtime crate, when it is renamed in `Cargo.toml` or
///   re-exported by another crate.
///
/// # Errors
///
/// What a caller of an idempotent route may get besides the handler's own responses. Every one is an
/// `application/problem+json` body (RFC 9457) with a stable `type` (`https://idempotent.rs/problems/<problem>`,
/// or under the app's own base), a `title`, a `detail` that says what to do, and `Cache-Control: no-store`,
/// unless the app renders them in its own format (`IdempotencyBuilder::render_problems`), with the same
/// statuses and headers.
///
/// | status | problem | meaning for the caller |
/// |---|---|---|
/// | 400 | `key-missing` | the route requires a key and the request had none: add one and send again |
/// | 400 | `key-invalid` | the key is malformed, longer than 255 characters, or sent twice: fix the client |
/// | 400 | `scope-missing` | `scope = "header:Name"` and the request lacks that header: send it |
/// | 401 | `unauthenticated` | `scope = "user"` (or a scope function) found no caller: authenticate first |
/// | 409 | `in-flight` | a request with this key is still running: retry after `Retry-After` seconds (the route's usual duration, at least 1, at most the remaining lease) |
/// | 413 | `body-too-large` | the request body is over `max_request_body`: nothing ran |
/// | 422 | `key-reused` | the key was already used for a different request: use a new key |
/// | 500 | `misconfigured` | the app did not register the runtime's configuration, or `scope = "user"` has no user resolver |
/// | 500 | `handler-panicked` | the handler panicked: nothing was recorded, the same key may be retried |
/// | 500 | `response-failed` | the handler's response body failed while being read: nothing was recorded, retry |
/// | 503 | `store-unavailable` | the store could not be reached, the handler did not run: retry after `Retry-After` |
///
/// A retry of a completed request gets the stored response (status, headers, body, byte for byte) with
/// `Idempotent-Replayed: true`. If the first response's body was over `max_response_body`, it was sent but not
/// stored: a retry gets the original status and headers, `Idempotent-Replayed: true`, and a `response-not-stored`
/// problem as the body; the handler does not run twice.
///
/// The handler's extractors keep their own errors (a 400 for bad JSON, a 415 for a wrong content type); in that
/// case the handler never started and the key is released. A 5xx from the handler is passed through and releases
/// the key, as do 408, 425 and 429, unless `store_responses` says otherwise.
///
/// At compile time, the attribute refuses unknown or repeated options, malformed values, a `lease` not shorter
/// than `ttl`, `on_conflict = "wait"` without `wait` (or `wait` without it), `fingerprint` with
/// `fingerprint_headers`, `store_responses` with `store_server_errors`, `fail_open` on a transactional route, two
/// `Tx` parameters, a function
/// that is not a free, non-generic `async fn`, and arguments it cannot pass on (references, `impl Trait`,
/// `#[cfg]` on an argument, more than 16). Each error points at the token to fix; independent mistakes are all
/// reported at once. An argument type that is not an extractor, or a return type that is not a `Responder`, is
/// reported by rustc on that type.
///
/// # Examples
///
/// The defaults: key from the `Idempotency-Key` header, scoped to the authenticated user, required.
///
/// ```
/// use actix_web::{post, web, HttpResponse, Responder};
/// use idempotent_runtime::idempotent;
/// # #[derive(serde::Deserialize)] struct NewPayment { amount: u64 }
/// # struct Pool;
/// # impl Pool { async fn insert_payment(&self, payment: &NewPayment) -> u64 { payment.amount } }
///
/// #[post("/payments")]
/// #[idempotent]
/// async fn create_payment(body: web::Json<NewPayment>, db: web::Data<Pool>) -> impl Responder {
///     let payment = db.insert_payment(&body).await;
///     HttpResponse::Created().body(payment.to_string())
/// }
/// # let _app = actix_web::App::new().service(create_payment);
/// ```
///
/// Every option:
///
/// ```
/// use actix_web::{post, web, HttpRequest, HttpResponse};
/// use actix_web::http::StatusCode;
/// use idempotent_runtime::idempotent;
/// # #[derive(serde::Deserialize)] struct NewOrder { item: String }
///
/// mod auth {
///     pub fn tenant_of(request: &actix_web::HttpRequest) -> Option<String> {
///         request.headers().get("x-tenant")?.to_str().ok().map(str::to_owned)
///     }
/// }
///
/// /// Stores successes and 404s; everything else may be retried.
/// fn stores(status: StatusCode) -> bool {
///     status.is_success() || status == StatusCode::NOT_FOUND
/// }
///
/// #[idempotent(
///     ttl = "7d",
///     lease = "1m",
///     scope = auth::tenant_of,
///     key = "header:X-Request-Id",
///     required = false,
///     store_responses = stores,
///     max_request_body = "512KiB",
///     max_response_body = "4MiB",
///     on_conflict = "wait",
///     wait = "10s",
///     fingerprint_headers = ["X-Account-Id"],
///     namespace = "orders.create",
///     fail_open = true,
///     crate = "idempotent_runtime",
/// )]
/// #[post("/orders")]
/// async fn create_order(web::Json(order): web::Json<NewOrder>) -> HttpResponse {
///     HttpResponse::Created().body(order.item)
/// }
/// # let _app = actix_web::App::new().service(create_order);
/// ```
///
/// A fingerprint that leaves out a volatile field (a client timestamp in a JSON body):
///
/// ```
/// use actix_web::{post, web, HttpRequest, HttpResponse};
/// use idempotent_runtime::idempotent;
///
/// fn without_sent_at(_request: &HttpRequest, body: &[u8]) -> Vec<u8> {
///     match serde_json::from_slice::<serde_json::Value>(body) {
///         Ok(serde_json::Value::Object(mut fields)) => {
///             fields.remove("sent_at");
///             serde_json::to_vec(&fields).unwrap_or_default()
///         }
///         _ => body.to_vec(),
///     }
/// }
///
/// #[post("/transfers")]
/// #[idempotent(fingerprint = without_sent_at)]
/// async fn create_transfer(body: web::Bytes) -> HttpResponse {
///     HttpResponse::Created().body(body)
/// }
/// # let _app = actix_web::App::new().service(create_transfer);
/// ```
///
/// A mistake is reported on its token:
///
/// ```text
/// error: invalid duration: unknown unit `x` (the units are s, m, h and d); expected a duration like "30s", "15m", "24h", "7d" or "1h30m"
///  --> src/main.rs:4:20
///   |
/// 4 | #[idempotent(ttl = "24x")]
///   |                    ^^^^^
/// ```
#[proc_macro_attribute]
pub fn idempotent(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::idempotent(attr.into(), item.into()).into()
}
