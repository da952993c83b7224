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
use syn::ext::IdentExt as _;
use syn::parse::{ParseStream, Parser as _};
use syn::{Ident, Lit, Token};

use crate::errors::Errors;

mod options;
#[cfg(test)]
mod tests;
mod values;

pub(crate) use self::options::*;
use self::values::*;

/// The options, in the order the error messages list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Ttl,
    Scope,
    Key,
    Required,
    Attempt,
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
        Opt::Attempt,
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
            Opt::Attempt => "lease",
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
            Opt::Attempt => r#"lease = "30s""#,
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
            Opt::Attempt => args.lease = errors.ok(duration_value(opt, &value)).map(|value| site.with(value)),
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
