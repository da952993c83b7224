//! Interpreting each option's value: the accepted forms, and an error on the offending token naming them.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{Lit, LitStr};

use super::{Key, OnConflict, Opt, Scope, StoreResponses};
use crate::{duration, size};

/// The span of the first token of a (non-empty) value.
pub(super) fn first_span(value: &TokenStream) -> Span {
    value.clone().into_iter().next().map_or_else(Span::call_site, |token| token.span())
}

/// The value as a single literal, if it is one.
pub(super) fn literal(value: &TokenStream) -> Option<Lit> {
    syn::parse2::<Lit>(value.clone()).ok()
}

/// An error covering the whole value.
pub(super) fn value_error(value: &TokenStream, message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new_spanned(value, message)
}

/// `ttl` and `lease`: a duration string, in whole seconds.
pub(super) fn duration_value(opt: Opt, value: &TokenStream) -> syn::Result<u64> {
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
pub(super) fn bool_value(opt: Opt, value: &TokenStream) -> syn::Result<bool> {
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
pub(super) fn scope_value(value: &TokenStream) -> syn::Result<Scope> {
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
pub(super) fn on_conflict_value(value: &TokenStream) -> syn::Result<OnConflict> {
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
pub(super) fn key_value(value: &TokenStream) -> syn::Result<Key> {
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
pub(super) fn size_value(value: &TokenStream) -> syn::Result<u64> {
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
pub(super) fn store_responses_value(value: &TokenStream) -> syn::Result<StoreResponses> {
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
pub(super) fn fingerprint_headers_value(value: &TokenStream) -> syn::Result<Vec<String>> {
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
pub(super) fn fingerprint_value(value: &TokenStream) -> syn::Result<syn::Path> {
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
pub(super) fn namespace_value(value: &TokenStream) -> syn::Result<String> {
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
pub(super) fn crate_value(value: &TokenStream) -> syn::Result<syn::Path> {
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
