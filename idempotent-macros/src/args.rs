//! Parsing of the attribute's arguments: `#[idempotent(ttl = "24h", scope = "user", ...)]`.
//!
//! Parsing happens in two passes so that errors are both precise and complete:
//!
//! 1. [`parse_raw`] reads the syntax, `keyword = value, ...`, keeping every keyword as an `Ident` (its span
//!    survives) and every value as raw tokens. A syntax error stops here: what follows cannot be trusted.
//! 2. [`parse`] gives each keyword to [`claim`], the one place that rejects unknown and repeated keywords, then
//!    interprets the value for that option. Errors in independent options are all collected.
//!
//! Every error points at the offending token (the keyword, or the value) and names the accepted forms.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::parse::{ParseStream, Parser as _};
use syn::{Ident, Lit, LitStr, Token};

use crate::duration;
use crate::errors::Errors;
use crate::size;

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

/// The options, in the order the error messages list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Ttl,
    Scope,
    Key,
    Required,
    Lease,
    StoreServerErrors,
    MaxRequestBody,
    MaxResponseBody,
    OnConflict,
    Wait,
    StoreResponses,
    FingerprintHeaders,
    Fingerprint,
    Namespace,
    FailOpen,
    IssuedOnly,
    Crate,
}

impl Opt {
    /// Every option; the single source of truth for the keyword list.
    const ALL: [Opt; 17] = [
        Opt::Ttl,
        Opt::Scope,
        Opt::Key,
        Opt::Required,
        Opt::Lease,
        Opt::StoreServerErrors,
        Opt::MaxRequestBody,
        Opt::MaxResponseBody,
        Opt::OnConflict,
        Opt::Wait,
        Opt::StoreResponses,
        Opt::FingerprintHeaders,
        Opt::Fingerprint,
        Opt::Namespace,
        Opt::FailOpen,
        Opt::IssuedOnly,
        Opt::Crate,
    ];

    /// The keyword as written in the attribute.
    fn name(self) -> &'static str {
        match self {
            Opt::Ttl => "ttl",
            Opt::Scope => "scope",
            Opt::Key => "key",
            Opt::Required => "required",
            Opt::Lease => "lease",
            Opt::StoreServerErrors => "store_server_errors",
            Opt::MaxRequestBody => "max_request_body",
            Opt::MaxResponseBody => "max_response_body",
            Opt::OnConflict => "on_conflict",
            Opt::Wait => "wait",
            Opt::StoreResponses => "store_responses",
            Opt::FingerprintHeaders => "fingerprint_headers",
            Opt::Fingerprint => "fingerprint",
            Opt::Namespace => "namespace",
            Opt::FailOpen => "fail_open",
            Opt::IssuedOnly => "issued_only",
            Opt::Crate => "crate",
        }
    }

    /// A complete example, quoted in "missing value" errors.
    fn example(self) -> &'static str {
        match self {
            Opt::Ttl => r#"ttl = "24h""#,
            Opt::Scope => r#"scope = "user""#,
            Opt::Key => r#"key = "header""#,
            Opt::Required => "required = true",
            Opt::Lease => r#"lease = "30s""#,
            Opt::StoreServerErrors => "store_server_errors = false",
            Opt::MaxRequestBody => r#"max_request_body = "1MiB""#,
            Opt::MaxResponseBody => r#"max_response_body = "1MiB""#,
            Opt::OnConflict => r#"on_conflict = "wait""#,
            Opt::Wait => r#"wait = "5s""#,
            Opt::StoreResponses => r#"store_responses = "all""#,
            Opt::FingerprintHeaders => r#"fingerprint_headers = ["X-Account-Id"]"#,
            Opt::Fingerprint => "fingerprint = crate::fingerprint_of",
            Opt::Namespace => r#"namespace = "payments.create""#,
            Opt::FailOpen => "fail_open = true",
            Opt::IssuedOnly => "issued_only = true",
            Opt::Crate => r#"crate = "my_runtime""#,
        }
    }

    /// Looks a keyword up.
    fn from_name(name: &str) -> Option<Opt> {
        Opt::ALL.into_iter().find(|opt| opt.name() == name)
    }
}

/// `expected one of: ttl, scope, ...`, the tail of every unknown-keyword error.
fn expected_one_of() -> String {
    let names: Vec<&str> = Opt::ALL.iter().map(|opt| opt.name()).collect();
    format!("expected one of: {}", names.join(", "))
}

/// Options of the contract that this version does not implement yet, and spellings people reach for.
fn unknown_hint(name: &str) -> Option<&'static str> {
    match name {
        "conflict" | "on_duplicate" | "duplicate" => Some(r#": did you mean `on_conflict = "wait"`?"#),
        "expiry" | "expires" | "expire" | "retention" | "timeout" => Some(": did you mean `ttl`?"),
        "header" | "key_header" => Some(r#": did you mean `key = "header:Name"`?"#),
        "optional" => Some(": did you mean `required = false`?"),
        "krate" | "runtime" => Some(r#": did you mean `crate = "path"`?"#),
        "store" | "store_policy" | "store_errors" => Some(r#": did you mean `store_responses = "all"`?"#),
        "fingerprint_header" | "headers" => Some(r#": did you mean `fingerprint_headers = ["Name"]`?"#),
        "fail_closed" | "fail_open_on_store_error" => Some(": did you mean `fail_open = true`?"),
        "issued" | "issued_keys" | "server_issued" => Some(": did you mean `issued_only = true`?"),
        _ => None,
    }
}

/// The one check on keywords: unknown and repeated keywords are refused here, and only here.
fn claim(keyword: &Ident, seen: &mut Vec<Opt>) -> syn::Result<Opt> {
    let name = keyword.unraw().to_string();
    let Some(opt) = Opt::from_name(&name) else {
        let message = match unknown_hint(&name) {
            Some(hint) => format!("`{name}`{hint}; {}", expected_one_of()),
            None => format!("unknown option `{name}`; {}", expected_one_of()),
        };
        return Err(syn::Error::new(keyword.span(), message));
    };
    if seen.contains(&opt) {
        return Err(syn::Error::new(keyword.span(), format!("`{name}` specified more than once")));
    }
    seen.push(opt);
    Ok(opt)
}

/// One `keyword = value` as written, before interpretation.
struct RawArg {
    /// The keyword (any identifier, including `crate`).
    keyword: Ident,
    /// `=` and the value's tokens up to the next top-level comma; `None` when the keyword stands alone.
    value: Option<(Token![=], TokenStream)>,
}

/// Reads `keyword = value, ...` (trailing comma allowed); the values are kept as tokens.
fn parse_raw(input: ParseStream<'_>) -> syn::Result<Vec<RawArg>> {
    let mut args = Vec::new();
    while !input.is_empty() {
        if !input.peek(Ident::peek_any) {
            return Err(input.error(format!(r#"expected an option like `ttl = "24h"`; {}"#, expected_one_of())));
        }
        let keyword = input.call(Ident::parse_any)?;

        let value = if input.peek(Token![=]) {
            let eq: Token![=] = input.parse()?;
            let mut tokens = TokenStream::new();
            if input.peek(Lit) {
                // A literal is a whole value: anything after it is a missing comma, not more value.
                tokens.extend([input.parse::<TokenTree>()?]);
            } else {
                while !input.is_empty() && !input.peek(Token![,]) {
                    tokens.extend([input.parse::<TokenTree>()?]);
                }
            }
            Some((eq, tokens))
        } else if input.is_empty() || input.peek(Token![,]) {
            None
        } else {
            let example = Opt::from_name(&keyword.unraw().to_string()).map_or(r#"ttl = "24h""#, Opt::example);
            return Err(input.error(format!("expected `=` after `{keyword}`, as in `{example}`")));
        };
        args.push(RawArg { keyword, value });

        if !input.is_empty() {
            if !input.peek(Token![,]) {
                return Err(input.error("expected `,` between options"));
            }
            input.parse::<Token![,]>()?;
        }
    }
    Ok(args)
}

/// Parses the attribute's arguments. Syntax errors and the errors of each option are recorded in `errors`; the
/// options that parsed are returned so later checks (`lease` < `ttl`) can still run.
pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    let Some(raw) = errors.ok(parse_raw.parse2(tokens)) else {
        return args;
    };
    let mut seen = Vec::new();
    for RawArg { keyword, value } in raw {
        let Some(opt) = errors.ok(claim(&keyword, &mut seen)) else {
            continue;
        };
        args.written.push(opt.name());
        let Some((eq, value)) = value else {
            errors
                .push(syn::Error::new(keyword.span(), format!("`{keyword}` needs a value, as in `{}`", opt.example())));
            continue;
        };
        if value.is_empty() {
            errors.push(syn::Error::new(eq.span, format!("missing value after `=`, as in `{}`", opt.example())));
            continue;
        }
        let site = Site { keyword: &keyword, value_span: first_span(&value) };
        match opt {
            Opt::Ttl => args.ttl = errors.ok(duration_value(opt, &value)).map(|value| site.with(value)),
            Opt::Lease => args.lease = errors.ok(duration_value(opt, &value)).map(|value| site.with(value)),
            Opt::Scope => args.scope = errors.ok(scope_value(&value)).map(|value| site.with(value)),
            Opt::Key => args.key = errors.ok(key_value(&value)).map(|value| site.with(value)),
            Opt::Required => args.required = errors.ok(bool_value(opt, &value)).map(|value| site.with(value)),
            Opt::StoreServerErrors => {
                args.store_server_errors = errors.ok(bool_value(opt, &value)).map(|value| site.with(value));
            }
            Opt::MaxRequestBody => {
                args.max_request_body = errors.ok(size_value(&value)).map(|value| site.with(value));
            }
            Opt::MaxResponseBody => {
                args.max_response_body = errors.ok(size_value(&value)).map(|value| site.with(value));
            }
            Opt::OnConflict => args.on_conflict = errors.ok(on_conflict_value(&value)).map(|value| site.with(value)),
            Opt::Wait => args.wait = errors.ok(duration_value(opt, &value)).map(|value| site.with(value)),
            Opt::StoreResponses => {
                args.store_responses = errors.ok(store_responses_value(&value)).map(|value| site.with(value));
            }
            Opt::FingerprintHeaders => {
                args.fingerprint_headers = errors.ok(fingerprint_headers_value(&value)).map(|value| site.with(value));
            }
            Opt::Fingerprint => args.fingerprint = errors.ok(fingerprint_value(&value)).map(|value| site.with(value)),
            Opt::Namespace => args.namespace = errors.ok(namespace_value(&value)).map(|value| site.with(value)),
            Opt::FailOpen => args.fail_open = errors.ok(bool_value(opt, &value)).map(|value| site.with(value)),
            Opt::IssuedOnly => args.issued_only = errors.ok(bool_value(opt, &value)).map(|value| site.with(value)),
            Opt::Crate => args.krate = errors.ok(crate_value(&value)).map(|value| site.with(value)),
        }
    }
    args
}

/// Where an option was written; builds its [`Setting`] once the value is known.
struct Site<'a> {
    /// The option's keyword.
    keyword: &'a Ident,
    /// The span of the value's first token.
    value_span: Span,
}

impl Site<'_> {
    /// The setting for `value`, written here.
    fn with<T>(&self, value: T) -> Setting<T> {
        Setting { keyword: self.keyword.clone(), value, value_span: self.value_span }
    }
}

/// The span of the first token of a (non-empty) value.
fn first_span(value: &TokenStream) -> Span {
    value.clone().into_iter().next().map_or_else(Span::call_site, |token| token.span())
}

/// The value as a single literal, if it is one.
fn literal(value: &TokenStream) -> Option<Lit> {
    syn::parse2::<Lit>(value.clone()).ok()
}

/// An error covering the whole value.
fn value_error(value: &TokenStream, message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new_spanned(value, message)
}

/// `ttl` and `lease`: a duration string, in whole seconds.
fn duration_value(opt: Opt, value: &TokenStream) -> syn::Result<u64> {
    match literal(value) {
        Some(Lit::Str(lit)) => duration::parse_duration(&lit.value())
            .map_err(|error| syn::Error::new(lit.span(), format!("invalid duration: {error}; {}", duration::EXPECTED))),
        Some(Lit::Int(lit)) => Err(syn::Error::new(
            lit.span(),
            format!(
                r#"a duration needs a unit, as in `{} = "{}s"`; {}"#,
                opt.name(),
                lit.base10_digits(),
                duration::EXPECTED
            ),
        )),
        _ => Err(value_error(value, format!("expected a string; {}", duration::EXPECTED))),
    }
}

/// `required`, `store_server_errors` and `fail_open`: a bool literal.
fn bool_value(opt: Opt, value: &TokenStream) -> syn::Result<bool> {
    match literal(value) {
        Some(Lit::Bool(lit)) => Ok(lit.value),
        Some(Lit::Str(lit)) if matches!(lit.value().as_str(), "true" | "false") => {
            Err(syn::Error::new(lit.span(), format!("remove the quotes: write `{} = {}`", opt.name(), lit.value())))
        }
        _ => Err(value_error(value, "expected `true` or `false`")),
    }
}

/// What `scope` accepts, for its errors.
const SCOPE_EXPECTED: &str =
    r#"expected "user", "global", "header:Name" or a path to a `fn(&HttpRequest) -> Option<String>`"#;

/// `scope`: a string form or a path to a resolver function.
fn scope_value(value: &TokenStream) -> syn::Result<Scope> {
    if let Some(lit) = literal(value) {
        let Lit::Str(lit) = lit else {
            return Err(value_error(value, SCOPE_EXPECTED));
        };
        let text = lit.value();
        return match text.as_str() {
            "user" => Ok(Scope::User),
            "global" => Ok(Scope::Global),
            "header" => Err(syn::Error::new(
                lit.span(),
                format!(r#"a header scope needs the header name, as in "header:X-Tenant-Id"; {SCOPE_EXPECTED}"#),
            )),
            _ => match text.strip_prefix("header:") {
                Some(name) => header_name(&lit, name, SCOPE_EXPECTED).map(Scope::Header),
                None => Err(syn::Error::new(lit.span(), format!("unknown scope {text:?}; {SCOPE_EXPECTED}"))),
            },
        };
    }
    syn::parse2::<syn::Path>(value.clone()).map(Scope::Function).map_err(|_| value_error(value, SCOPE_EXPECTED))
}

/// What `on_conflict` accepts, for its errors.
const ON_CONFLICT_EXPECTED: &str = r#"expected "reject" (409 at once) or "wait" (with `wait = "5s"`)"#;

/// `on_conflict`: `"reject"` or `"wait"`.
fn on_conflict_value(value: &TokenStream) -> syn::Result<OnConflict> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(value_error(value, format!("expected a string; {ON_CONFLICT_EXPECTED}")));
    };
    match lit.value().as_str() {
        "reject" => Ok(OnConflict::Reject),
        "wait" => Ok(OnConflict::Wait),
        other => Err(syn::Error::new(lit.span(), format!("unknown conflict policy {other:?}; {ON_CONFLICT_EXPECTED}"))),
    }
}

/// What `key` accepts, for its errors.
const KEY_EXPECTED: &str = r#"expected "header", "header:Name", "query:name", "form:name" or "derived""#;

/// `key`: where the idempotency key comes from.
fn key_value(value: &TokenStream) -> syn::Result<Key> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(value_error(value, format!("expected a string; {KEY_EXPECTED}")));
    };
    let text = lit.value();
    if text == "header" {
        return Ok(Key::Header);
    }
    if text == "derived" {
        return Ok(Key::Derived);
    }
    if let Some(name) = text.strip_prefix("header:") {
        return header_name(&lit, name, KEY_EXPECTED).map(Key::HeaderNamed);
    }
    for (prefix, make) in [("query:", Key::Query as fn(String) -> Key), ("form:", Key::Form)] {
        if let Some(name) = text.strip_prefix(prefix) {
            return field_name(&lit, name).map(make);
        }
    }
    Err(syn::Error::new(lit.span(), format!("unknown key source {text:?}; {KEY_EXPECTED}")))
}

/// Is `c` allowed in an HTTP header name (an RFC 9110 `tchar`)?
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Checks a header name (the part after `header:`) and lowercases it, as HTTP/2 and the `http` crate do.
fn header_name(lit: &LitStr, name: &str, expected: &str) -> syn::Result<String> {
    if name.is_empty() {
        return Err(syn::Error::new(lit.span(), format!("the header name after `header:` is empty; {expected}")));
    }
    if let Some(bad) = name.chars().find(|&c| !is_tchar(c)) {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{}` is not allowed in a header name (use letters, digits and !#$%&'*+-.^_`|~); {expected}",
                bad.escape_debug()
            ),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// Checks a query or form field name (the part after `query:` / `form:`).
fn field_name(lit: &LitStr, name: &str) -> syn::Result<String> {
    if name.is_empty() {
        return Err(syn::Error::new(lit.span(), format!("the field name is empty; {KEY_EXPECTED}")));
    }
    if let Some(bad) = name.chars().find(|c| matches!(c, '&' | '=' | '#')) {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{bad}` is not allowed in a query or form field name; {KEY_EXPECTED}"),
        ));
    }
    Ok(name.to_owned())
}

/// `max_request_body` and `max_response_body`: a size string or an integer number of bytes.
fn size_value(value: &TokenStream) -> syn::Result<u64> {
    let bytes = match literal(value) {
        Some(Lit::Str(lit)) => size::parse_size(&lit.value())
            .map_err(|error| syn::Error::new(lit.span(), format!("invalid size: {error}; {}", size::EXPECTED)))?,
        Some(Lit::Int(lit)) => {
            if !matches!(lit.suffix(), "" | "usize" | "u64") {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("a byte count has no suffix other than `usize`; {}", size::EXPECTED),
                ));
            }
            let bytes = lit
                .base10_parse::<u64>()
                .map_err(|_| syn::Error::new(lit.span(), format!("the size is too large; {}", size::EXPECTED)))?;
            if bytes == 0 {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("the size must be larger than zero; {}", size::EXPECTED),
                ));
            }
            bytes
        }
        _ => return Err(value_error(value, size::EXPECTED)),
    };
    Ok(bytes)
}

/// What `store_responses` accepts, for its errors.
const STORE_RESPONSES_EXPECTED: &str = r#"expected "final" (all but 5xx, 408, 425 and 429), "all" (5xx too), "success" (1xx to 3xx only) or a path to a `fn(StatusCode) -> bool`"#;

/// `store_responses`: a policy name or a path to a function.
fn store_responses_value(value: &TokenStream) -> syn::Result<StoreResponses> {
    match literal(value) {
        Some(Lit::Str(lit)) => match lit.value().as_str() {
            "final" => Ok(StoreResponses::Final),
            "all" => Ok(StoreResponses::All),
            "success" => Ok(StoreResponses::Success),
            other => {
                Err(syn::Error::new(lit.span(), format!("unknown store policy {other:?}; {STORE_RESPONSES_EXPECTED}")))
            }
        },
        Some(_) => Err(value_error(value, STORE_RESPONSES_EXPECTED)),
        None => syn::parse2::<syn::Path>(value.clone())
            .map(StoreResponses::Function)
            .map_err(|_| value_error(value, STORE_RESPONSES_EXPECTED)),
    }
}

/// What `fingerprint_headers` accepts, for its errors.
const FINGERPRINT_HEADERS_EXPECTED: &str =
    r#"expected a list of request header names, as in `fingerprint_headers = ["X-Account-Id", "Accept-Language"]`"#;

/// `fingerprint_headers`: a non-empty list of distinct header names, lowercased.
fn fingerprint_headers_value(value: &TokenStream) -> syn::Result<Vec<String>> {
    if let Some(Lit::Str(lit)) = literal(value) {
        return Err(syn::Error::new(
            lit.span(),
            format!("put the header names in brackets: `fingerprint_headers = [{:?}]`", lit.value()),
        ));
    }
    let Ok(list) = syn::parse2::<syn::ExprArray>(value.clone()) else {
        return Err(value_error(value, FINGERPRINT_HEADERS_EXPECTED));
    };
    if list.elems.is_empty() {
        return Err(value_error(
            value,
            format!("the list is empty: name at least one header; {FINGERPRINT_HEADERS_EXPECTED}"),
        ));
    }
    let mut names: Vec<String> = Vec::new();
    for element in &list.elems {
        let syn::Expr::Lit(syn::ExprLit { lit: Lit::Str(lit), .. }) = element else {
            return Err(syn::Error::new_spanned(
                element,
                format!("expected a header name in a string; {FINGERPRINT_HEADERS_EXPECTED}"),
            ));
        };
        let text = lit.value();
        if text.is_empty() {
            return Err(syn::Error::new(
                lit.span(),
                format!("the header name is empty; {FINGERPRINT_HEADERS_EXPECTED}"),
            ));
        }
        let name = header_name(lit, &text, FINGERPRINT_HEADERS_EXPECTED)?;
        if names.contains(&name) {
            return Err(syn::Error::new(
                lit.span(),
                format!("`{text}` is listed twice (header names are case-insensitive)"),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

/// What `fingerprint` accepts, for its errors.
const FINGERPRINT_EXPECTED: &str =
    "expected a path to a `fn(&HttpRequest, &[u8]) -> Vec<u8>`, as in `fingerprint = crate::payments::fingerprint_of`";

/// `fingerprint`: a path to the route's own fingerprint function.
fn fingerprint_value(value: &TokenStream) -> syn::Result<syn::Path> {
    if let Some(Lit::Str(lit)) = literal(value) {
        return Err(syn::Error::new(
            lit.span(),
            format!("name the function without quotes: `fingerprint = {}`; {FINGERPRINT_EXPECTED}", lit.value()),
        ));
    }
    syn::parse2::<syn::Path>(value.clone()).map_err(|_| value_error(value, FINGERPRINT_EXPECTED))
}

/// The longest namespace accepted.
const MAX_NAMESPACE_LEN: usize = 128;

/// What `namespace` accepts, for its errors.
const NAMESPACE_EXPECTED: &str = r#"expected a stable name of letters, digits and `.`, `_`, `-`, `:` or `/` that does not start with `/`, as in `namespace = "payments.create"`"#;

/// `namespace`: a stable name that can never be mistaken for a route pattern (those start with `/`).
fn namespace_value(value: &TokenStream) -> syn::Result<String> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(value_error(value, format!("expected a string; {NAMESPACE_EXPECTED}")));
    };
    let text = lit.value();
    let problem = if text.is_empty() {
        Some("the namespace is empty".to_owned())
    } else if text.starts_with('/') {
        Some("a namespace cannot start with `/`, so that it never meets a route pattern".to_owned())
    } else if text.len() > MAX_NAMESPACE_LEN {
        Some(format!("the namespace is longer than {MAX_NAMESPACE_LEN} characters"))
    } else {
        text.chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "._-:/".contains(c)))
            .map(|bad| format!("`{}` is not allowed in a namespace", bad.escape_debug()))
    };
    match problem {
        Some(problem) => Err(syn::Error::new(lit.span(), format!("{problem}; {NAMESPACE_EXPECTED}"))),
        None => Ok(text),
    }
}

/// `crate`: a path in a string, parsed with the literal's span.
fn crate_value(value: &TokenStream) -> syn::Result<syn::Path> {
    const EXPECTED: &str = r#"expected the runtime crate's path in a string, as in `crate = "my_runtime"`"#;
    match literal(value) {
        Some(Lit::Str(lit)) => lit
            .parse::<syn::Path>()
            .map_err(|_| syn::Error::new(lit.span(), format!("{:?} is not a path; {EXPECTED}", lit.value()))),
        _ if syn::parse2::<syn::Path>(value.clone()).is_ok() => Err(value_error(
            value,
            format!("put the path in quotes: `crate = \"{}\"`", value.to_token_stream().to_string().replace(' ', "")),
        )),
        _ => Err(value_error(value, EXPECTED)),
    }
}

#[cfg(test)]
mod tests {
    use super::{Args, Key, OnConflict, Opt, Scope, parse};
    use crate::errors::Errors;
    use quote::quote;

    fn parse_ok(tokens: proc_macro2::TokenStream) -> Args {
        let mut errors = Errors::default();
        let args = parse(tokens, &mut errors);
        errors.finish(Ok(())).expect("no error");
        args
    }

    fn parse_err(tokens: proc_macro2::TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let _ = parse(tokens, &mut errors);
        errors.finish(Ok(())).expect_err("an error").into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn empty_is_all_defaults() {
        let args = parse_ok(quote!());
        assert!(args.ttl.is_none() && args.scope.is_none() && args.krate.is_none());
    }

    #[test]
    fn every_option() {
        let args = parse_ok(quote!(
            ttl = "1h30m",
            scope = "header:X-Tenant-Id",
            key = "query:idem",
            required = false,
            lease = "5s",
            store_server_errors = true,
            max_request_body = "1MiB",
            max_response_body = 4096,
            crate = "::my_runtime",
        ));
        assert_eq!(args.ttl.map(|s| s.value), Some(5_400));
        assert!(matches!(args.scope.map(|s| s.value), Some(Scope::Header(h)) if h == "x-tenant-id"));
        assert_eq!(args.key.map(|s| s.value), Some(Key::Query("idem".into())));
        assert_eq!(args.required.map(|s| s.value), Some(false));
        assert_eq!(args.lease.map(|s| s.value), Some(5));
        assert_eq!(args.store_server_errors.map(|s| s.value), Some(true));
        assert_eq!(args.max_request_body.map(|s| s.value), Some(1_048_576));
        assert_eq!(args.max_response_body.map(|s| s.value), Some(4096));
        let krate = args.krate.expect("crate").value;
        assert_eq!(quote!(#krate).to_string(), ":: my_runtime");
    }

    #[test]
    fn every_listed_option_is_accepted() {
        for opt in Opt::ALL {
            let tokens: proc_macro2::TokenStream = opt.example().parse().unwrap();
            parse_ok(tokens);
        }
    }

    #[test]
    fn scope_forms() {
        let scope = |tokens| parse_ok(tokens).scope.expect("scope").value;
        assert!(matches!(scope(quote!(scope = "user")), Scope::User));
        assert!(matches!(scope(quote!(scope = "global")), Scope::Global));
        let Scope::Function(path) = scope(quote!(scope = crate::auth::tenant_of)) else {
            panic!("a path");
        };
        assert_eq!(quote!(#path).to_string(), "crate :: auth :: tenant_of");
    }

    #[test]
    fn key_forms() {
        let key = |tokens| parse_ok(tokens).key.expect("key").value;
        assert_eq!(key(quote!(key = "header")), Key::Header);
        assert_eq!(key(quote!(key = "header:X-Request-Key")), Key::HeaderNamed("x-request-key".into()));
        assert_eq!(key(quote!(key = "form:Idem_Key")), Key::Form("Idem_Key".into()));
    }

    #[test]
    fn crate_keyword_and_raw_identifiers() {
        assert!(parse_ok(quote!(crate = "rt")).krate.is_some());
        assert!(parse_ok(quote!(r#ttl = "1s")).ttl.is_some());
    }

    #[test]
    fn unknown_option() {
        assert_eq!(
            parse_err(quote!(foo = 1)),
            ["unknown option `foo`; expected one of: ttl, scope, key, required, lease, \
              store_server_errors, max_request_body, max_response_body, on_conflict, wait, store_responses, \
              fingerprint_headers, fingerprint, namespace, fail_open, issued_only, crate"]
        );
    }

    #[test]
    fn misspelled_options_get_a_hint() {
        let errors = parse_err(quote!(on_duplicate = "wait", expires = "1h"));
        assert_eq!(errors.len(), 2);
        assert!(errors[0].starts_with("`on_duplicate`: did you mean `on_conflict = \"wait\"`?"), "{errors:?}");
        assert!(errors[1].starts_with("`expires`: did you mean `ttl`?"), "{errors:?}");
        assert!(errors.iter().all(|e| e.contains("expected one of: ttl,")));
    }

    #[test]
    fn on_conflict_and_wait() {
        let args = parse_ok(quote!(on_conflict = "wait", wait = "1m30s"));
        assert_eq!(args.on_conflict.map(|setting| setting.value), Some(OnConflict::Wait));
        assert_eq!(args.wait.map(|setting| setting.value), Some(90));
        assert_eq!(
            parse_ok(quote!(on_conflict = "reject")).on_conflict.map(|setting| setting.value),
            Some(OnConflict::Reject)
        );
        assert!(parse_err(quote!(on_conflict = "block"))[0].starts_with("unknown conflict policy \"block\""));
        assert!(parse_err(quote!(on_conflict = wait))[0].starts_with("expected a string"));
    }

    #[test]
    fn duplicates() {
        assert_eq!(parse_err(quote!(ttl = "1h", ttl = "2h")), ["`ttl` specified more than once"]);
        // Even when the first value was invalid, and for `crate`.
        assert_eq!(parse_err(quote!(crate = "a", crate = "b")), ["`crate` specified more than once"]);
        let errors = parse_err(quote!(ttl = "x", ttl = "2h"));
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[1], "`ttl` specified more than once");
    }

    #[test]
    fn independent_errors_are_all_reported() {
        let errors = parse_err(quote!(ttl = "24", scope = "users", required = "true", bogus = 1));
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn syntax_errors() {
        let errors = parse_err(quote!(ttl: "24h"));
        assert_eq!(errors, [r#"expected `=` after `ttl`, as in `ttl = "24h"`"#]);
        let errors = parse_err(quote!("24h"));
        assert!(errors[0].starts_with(r#"expected an option like `ttl = "24h"`"#), "{errors:?}");
        assert_eq!(parse_err(quote!(ttl = "1h" lease = "1s")), ["expected `,` between options"]);
        assert_eq!(parse_err(quote!(ttl = "1h"; lease = "1s")), ["expected `,` between options"]);
    }

    #[test]
    fn missing_values() {
        assert_eq!(parse_err(quote!(required)), ["`required` needs a value, as in `required = true`"]);
        assert_eq!(parse_err(quote!(ttl =, lease = "1s")), [r#"missing value after `=`, as in `ttl = "24h"`"#]);
    }

    #[test]
    fn duration_errors() {
        let errors = parse_err(quote!(ttl = "24x"));
        assert_eq!(
            errors,
            [
                r#"invalid duration: unknown unit `x` (the units are s, m, h and d); expected a duration like "30s", "15m", "24h", "7d" or "1h30m""#
            ]
        );
        let errors = parse_err(quote!(lease = 30));
        assert!(errors[0].starts_with(r#"a duration needs a unit, as in `lease = "30s"`"#));
        let errors = parse_err(quote!(ttl = "0s"));
        assert!(errors[0].contains("longer than zero"));
        let errors = parse_err(quote!(ttl = some::path));
        assert!(errors[0].starts_with("expected a string; expected a duration like"));
    }

    #[test]
    fn bool_errors() {
        assert_eq!(parse_err(quote!(required = "true")), ["remove the quotes: write `required = true`"]);
        assert_eq!(parse_err(quote!(store_server_errors = 1)), ["expected `true` or `false`"]);
    }

    #[test]
    fn scope_errors() {
        let errors = parse_err(quote!(scope = "users"));
        assert!(errors[0].starts_with(r#"unknown scope "users"; expected "user", "global""#));
        let errors = parse_err(quote!(scope = "header:"));
        assert!(errors[0].starts_with("the header name after `header:` is empty"));
        let errors = parse_err(quote!(scope = "header:X Tenant"));
        assert!(errors[0].starts_with("` ` is not allowed in a header name"), "{errors:?}");
        let errors = parse_err(quote!(scope = "header"));
        assert!(errors[0].starts_with("a header scope needs the header name"));
        let errors = parse_err(quote!(scope = 3));
        assert!(errors[0].starts_with(r#"expected "user""#));
        let errors = parse_err(quote!(scope = |r| None));
        assert!(errors[0].starts_with(r#"expected "user""#));
    }

    #[test]
    fn key_errors() {
        let errors = parse_err(quote!(key = "cookie:k"));
        assert!(errors[0].starts_with(r#"unknown key source "cookie:k"; expected "header""#));
        assert!(parse_err(quote!(key = "query:"))[0].starts_with("the field name is empty"));
        assert!(parse_err(quote!(key = "form:a=b"))[0].starts_with("`=` is not allowed"));
        assert!(parse_err(quote!(key = "query:a&b"))[0].starts_with("`&` is not allowed"));
        assert!(parse_err(quote!(key = "header:a:b"))[0].starts_with("`:` is not allowed"));
        assert_eq!(parse_ok(quote!(key = "derived")).key.map(|setting| setting.value), Some(Key::Derived));
        assert!(parse_err(quote!(key = header))[0].starts_with("expected a string"));
    }

    #[test]
    fn size_errors() {
        let errors = parse_err(quote!(max_request_body = "1mib"));
        assert!(errors[0].starts_with("invalid size: unknown unit `mib` (units are case-sensitive"));
        assert!(parse_err(quote!(max_request_body = 0))[0].contains("larger than zero"));
        assert!(parse_err(quote!(max_request_body = "0B"))[0].contains("larger than zero"));
        assert!(parse_err(quote!(max_response_body = 1.5))[0].starts_with("expected a size like"));
        assert!(parse_err(quote!(max_response_body = 10u8))[0].starts_with("a byte count has no suffix"));
        assert!(parse_err(quote!(max_response_body = 99999999999999999999999))[0].starts_with("the size is too large"));
        assert_eq!(parse_ok(quote!(max_request_body = 10usize)).max_request_body.map(|s| s.value), Some(10));
    }

    #[test]
    fn contract_options() {
        let args = parse_ok(quote!(
            store_responses = "success",
            fingerprint_headers = ["X-Account-Id", "accept-language"],
            namespace = "payments.create:v1",
            fail_open = true,
        ));
        assert!(matches!(args.store_responses.map(|s| s.value), Some(super::StoreResponses::Success)));
        assert_eq!(
            args.fingerprint_headers.map(|s| s.value),
            Some(vec!["x-account-id".into(), "accept-language".into()])
        );
        assert_eq!(args.namespace.map(|s| s.value).as_deref(), Some("payments.create:v1"));
        assert_eq!(args.fail_open.map(|s| s.value), Some(true));
        let args = parse_ok(quote!(store_responses = crate::policy::stores, fingerprint = fingerprint_of));
        assert!(matches!(args.store_responses.map(|s| s.value), Some(super::StoreResponses::Function(_))));
        assert!(args.fingerprint.is_some());
    }

    #[test]
    fn contract_option_errors() {
        assert!(
            parse_err(quote!(store_responses = "everything"))[0].starts_with("unknown store policy \"everything\"")
        );
        assert!(parse_err(quote!(store_responses = true))[0].starts_with("expected \"final\""));
        assert_eq!(
            parse_err(quote!(fingerprint_headers = "X-A")),
            [r#"put the header names in brackets: `fingerprint_headers = ["X-A"]`"#]
        );
        assert!(parse_err(quote!(fingerprint_headers = []))[0].starts_with("the list is empty"));
        assert!(parse_err(quote!(fingerprint_headers = [1]))[0].starts_with("expected a header name in a string"));
        assert!(parse_err(quote!(fingerprint_headers = ["X A"]))[0].starts_with("` ` is not allowed in a header name"));
        assert!(parse_err(quote!(fingerprint_headers = ["X-A", "x-a"]))[0].starts_with("`x-a` is listed twice"));
        assert!(parse_err(quote!(fingerprint_headers = x))[0].starts_with("expected a list of request header names"));
        assert!(
            parse_err(quote!(fingerprint = "f"))[0].starts_with("name the function without quotes: `fingerprint = f`")
        );
        assert!(parse_err(quote!(fingerprint = 3))[0].starts_with("expected a path to a `fn(&HttpRequest"));
        assert!(parse_err(quote!(namespace = ""))[0].starts_with("the namespace is empty"));
        assert!(parse_err(quote!(namespace = "/pay"))[0].starts_with("a namespace cannot start with `/`"));
        assert!(parse_err(quote!(namespace = "pay ments"))[0].starts_with("` ` is not allowed in a namespace"));
        assert!(parse_err(quote!(namespace = pay))[0].starts_with("expected a string"));
        assert_eq!(parse_err(quote!(fail_open = "true")), ["remove the quotes: write `fail_open = true`"]);
    }

    #[test]
    fn crate_errors() {
        assert_eq!(parse_err(quote!(crate = my_runtime)), ["put the path in quotes: `crate = \"my_runtime\"`"]);
        assert!(parse_err(quote!(crate = ""))[0].starts_with(r#""" is not a path"#));
        assert!(parse_err(quote!(crate = "a b"))[0].starts_with(r#""a b" is not a path"#));
        assert!(parse_err(quote!(crate = 1))[0].starts_with("expected the runtime crate's path"));
    }
}
