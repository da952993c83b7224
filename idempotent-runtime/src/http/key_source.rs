//! Where a route reads its key from: a header, a query parameter, or a field of an urlencoded body.

use actix_web::HttpRequest;
use actix_web::http::header::{CONTENT_TYPE, HeaderName};

use crate::http::key::{IdempotencyKey, KeyError};

/// The key source of one route, as written in `#[idempotent(key = "...")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// The configured key header, `Idempotency-Key` unless the app changed it.
    Header,
    /// A named header (lowercase), from `key = "header:Name"`.
    HeaderNamed(&'static str),
    /// A query parameter, from `key = "query:name"`.
    Query(&'static str),
    /// A field of an `application/x-www-form-urlencoded` body, from `key = "form:name"`.
    Form(&'static str),
    /// No key from the client: the request itself (its scope and fingerprint) is the key, from
    /// `key = "derived"`. A double-submit guard; use a short ttl.
    Derived,
}

/// The result of looking for a key.
#[derive(Debug)]
pub(crate) enum KeyLookup {
    /// The request carries no key.
    Missing,
    /// Exactly one well-formed key.
    Found(IdempotencyKey),
    /// A key that breaks the grammar, or more than one.
    Invalid(KeyError),
    /// The key is in the body, which is not read yet.
    InBody(&'static str),
    /// The key is derived from the request, once its body is read.
    Derived,
}

impl KeySpec {
    /// Looks the key up in the request head; a body source answers [`KeyLookup::InBody`].
    pub(crate) fn lookup(self, request: &HttpRequest, default_header: &HeaderName) -> KeyLookup {
        match self {
            Self::Header => from_header(request, default_header.as_str()),
            Self::HeaderNamed(name) => from_header(request, name),
            Self::Query(name) => from_pairs(request.query_string().as_bytes(), name),
            Self::Form(name) => KeyLookup::InBody(name),
            Self::Derived => KeyLookup::Derived,
        }
    }

    /// A short description for error details, e.g. `the Idempotency-Key header`.
    pub(crate) fn describe(self, default_header: &HeaderName) -> String {
        match self {
            Self::Header => format!("the {} header", display_header(default_header.as_str())),
            Self::HeaderNamed(name) => format!("the {} header", display_header(name)),
            Self::Query(name) => format!("the `{name}` query parameter"),
            Self::Form(name) => format!("the `{name}` form field"),
            Self::Derived => "the request itself (a derived key)".to_owned(),
        }
    }
}

/// Looks the key up in an urlencoded body; other content types carry no form key.
pub(crate) fn lookup_in_form(request: &HttpRequest, body: &[u8], field: &str) -> KeyLookup {
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if is_form { from_pairs(body, field) } else { KeyLookup::Missing }
}

fn from_header(request: &HttpRequest, name: &str) -> KeyLookup {
    let mut values = request.headers().get_all(name);
    match (values.next(), values.next()) {
        (None, _) => KeyLookup::Missing,
        (Some(_), Some(_)) => KeyLookup::Invalid(KeyError::Repeated),
        (Some(value), None) => parsed(IdempotencyKey::parse(value.as_bytes())),
    }
}

fn from_pairs(urlencoded: &[u8], name: &str) -> KeyLookup {
    let mut values = form_urlencoded::parse(urlencoded).filter(|(field, _)| field == name).map(|(_, value)| value);
    match (values.next(), values.next()) {
        (None, _) => KeyLookup::Missing,
        (Some(_), Some(_)) => KeyLookup::Invalid(KeyError::Repeated),
        (Some(value), None) => parsed(IdempotencyKey::parse(value.as_bytes())),
    }
}

fn parsed(result: Result<IdempotencyKey, KeyError>) -> KeyLookup {
    match result {
        Ok(key) => KeyLookup::Found(key),
        Err(error) => KeyLookup::Invalid(error),
    }
}

/// `idempotency-key` -> `Idempotency-Key`, for messages a person reads.
fn display_header(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn idempotency_key() -> HeaderName {
        HeaderName::from_static("idempotency-key")
    }

    fn found(lookup: KeyLookup) -> String {
        match lookup {
            KeyLookup::Found(key) => key.as_str().to_owned(),
            other => panic!("expected a key, got {other:?}"),
        }
    }

    #[test]
    fn header_source_reads_the_configured_header() {
        let request = TestRequest::default().insert_header(("Idempotency-Key", "\"k1\"")).to_http_request();
        assert_eq!(found(KeySpec::Header.lookup(&request, &idempotency_key())), "k1");
        assert!(matches!(
            KeySpec::HeaderNamed("x-request-id").lookup(&request, &idempotency_key()),
            KeyLookup::Missing
        ));
    }

    #[test]
    fn two_header_instances_are_refused() {
        let request = TestRequest::default()
            .append_header(("Idempotency-Key", "a"))
            .append_header(("Idempotency-Key", "a"))
            .to_http_request();
        assert!(matches!(KeySpec::Header.lookup(&request, &idempotency_key()), KeyLookup::Invalid(KeyError::Repeated)));
    }

    #[test]
    fn query_source_decodes_and_refuses_repeats() {
        let request = TestRequest::with_uri("/p?idem=a%2Fb&x=1").to_http_request();
        assert_eq!(found(KeySpec::Query("idem").lookup(&request, &idempotency_key())), "a/b");
        let repeated = TestRequest::with_uri("/p?idem=a&idem=b").to_http_request();
        assert!(matches!(
            KeySpec::Query("idem").lookup(&repeated, &idempotency_key()),
            KeyLookup::Invalid(KeyError::Repeated)
        ));
    }

    #[test]
    fn form_source_reads_urlencoded_bodies_only() {
        let form = TestRequest::default()
            .insert_header((CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8"))
            .to_http_request();
        assert_eq!(found(lookup_in_form(&form, b"amount=1&token=abc", "token")), "abc");
        let json = TestRequest::default().insert_header((CONTENT_TYPE, "application/json")).to_http_request();
        assert!(matches!(lookup_in_form(&json, b"token=abc", "token"), KeyLookup::Missing));
    }

    #[test]
    fn descriptions_name_the_source_as_a_client_writes_it() {
        assert_eq!(KeySpec::Header.describe(&idempotency_key()), "the Idempotency-Key header");
        assert_eq!(KeySpec::Query("idem").describe(&idempotency_key()), "the `idem` query parameter");
    }
}
