//! The request fingerprint (docs/contract.md, section 3): what makes a retry "the same request".
//!
//! SHA-256 over the method, the route pattern, the path, the canonical query string and the body bytes. The query
//! is canonical (pairs decoded and sorted) so that `?a=1&b=2` and `?b=2&a=1` are the same request, as they are to
//! every web framework that parses them.
//!
//! A route may refine it, each option resolved at compile time:
//! - `fingerprint_headers = [...]`: the named request headers (every instance, in order, and whether they are
//!   absent) are hashed after the body;
//! - `fingerprint = path`: the app's function of the request and body gives the bytes hashed in place of the body
//!   (to leave out a volatile field such as a client timestamp);
//! - `namespace = "..."`: the namespace replaces the route pattern, and the values of the path's parameters replace
//!   the path, so a route renamed or mounted elsewhere still recognises its retries.
//!
//! A route without these options hashes exactly the parts listed first, so records written before they existed
//! keep matching.

use actix_web::HttpRequest;

use crate::digest::{Digest, PartsHasher};
use crate::http::route::RouteOptions;

/// Fingerprints a request whose body has been read; `route_label` is the matched route pattern.
pub(crate) fn fingerprint(request: &HttpRequest, route: &RouteOptions, route_label: &str, body: &[u8]) -> Digest {
    let mut hasher = PartsHasher::new();
    hasher.part(request.method().as_str().as_bytes());
    match route.namespace {
        None => {
            hasher.part(route_label.as_bytes());
            hasher.part(request.path().as_bytes());
        }
        Some(namespace) => {
            hasher.part(namespace.as_bytes());
            let parameters = request.match_info();
            hasher.part(&(parameters.segment_count() as u64).to_be_bytes());
            for (_, value) in parameters.iter() {
                hasher.part(value.as_bytes());
            }
        }
    }
    hasher.part(canonical_query(request.query_string()).as_bytes());
    match route.fingerprint_fn {
        None => hasher.part(body),
        Some(of_body) => hasher.part(&of_body(request, body)),
    }
    for name in route.fingerprint_headers {
        hasher.part(name.as_bytes());
        let values = request.headers().get_all(*name);
        hasher.part(&(values.clone().count() as u64).to_be_bytes());
        for value in values {
            hasher.part(value.as_bytes());
        }
    }
    hasher.finish()
}

/// Decoded pairs, sorted, re-encoded: independent of order and of percent-encoding choices.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
    // Unstable is enough (equal pairs are indistinguishable) and smaller: the stable sort is about 10 KB of code per
    // element type (issue 30).
    pairs.sort_unstable();
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;
    use crate::digest::hash_parts;

    static PLAIN: RouteOptions = RouteOptions::new();

    fn of(uri: &str, body: &[u8]) -> Digest {
        fingerprint(&TestRequest::post().uri(uri).to_http_request(), &PLAIN, "/pay", body)
    }

    #[test]
    fn query_order_and_encoding_do_not_matter() {
        assert_eq!(of("/pay?a=1&b=2", b""), of("/pay?b=2&a=1", b""));
        assert_eq!(of("/pay?a=x%20y", b""), of("/pay?a=x+y", b""));
        assert_ne!(of("/pay?a=1", b""), of("/pay?a=2", b""));
    }

    #[test]
    fn body_path_method_and_route_matter() {
        assert_ne!(of("/pay", b"{\"amount\":1}"), of("/pay", b"{\"amount\":2}"));
        assert_ne!(of("/pay", b""), of("/pay2", b""));
        let put = TestRequest::put().uri("/pay").to_http_request();
        assert_ne!(fingerprint(&put, &PLAIN, "/pay", b""), of("/pay", b""));
        let post = TestRequest::post().uri("/pay").to_http_request();
        assert_ne!(fingerprint(&post, &PLAIN, "/pay", b""), fingerprint(&post, &PLAIN, "/{anything}", b""));
    }

    #[test]
    fn a_plain_route_keeps_the_fingerprint_records_were_written_with() {
        let request = TestRequest::post().uri("/pay?b=2&a=1").to_http_request();
        let expected = hash_parts(&[b"POST", b"/pay", b"/pay", b"a=1&b=2", b"body"]);
        assert_eq!(fingerprint(&request, &PLAIN, "/pay", b"body"), expected);
    }

    #[test]
    fn chosen_headers_count_and_others_do_not() {
        static BY_ACCOUNT: RouteOptions = RouteOptions::new().fingerprint_headers(&["x-account"]);
        let with = |headers: &[(&str, &str)]| {
            let mut request = TestRequest::post().uri("/pay");
            for header in headers {
                request = request.append_header(*header);
            }
            fingerprint(&request.to_http_request(), &BY_ACCOUNT, "/pay", b"")
        };
        assert_eq!(with(&[("x-account", "1")]), with(&[("x-account", "1"), ("x-other", "2")]));
        assert_ne!(with(&[("x-account", "1")]), with(&[("x-account", "2")]));
        assert_ne!(with(&[]), with(&[("x-account", "")]), "absent is not empty");
        assert_ne!(with(&[("x-account", "1")]), with(&[("x-account", "1"), ("x-account", "1")]));
        assert_ne!(with(&[]), of("/pay", b""), "a route with headers is another fingerprint");
    }

    #[test]
    fn a_fingerprint_function_replaces_the_body() {
        fn first_line(_: &HttpRequest, body: &[u8]) -> Vec<u8> {
            body.split(|&byte| byte == b'\n').next().unwrap_or_default().to_vec()
        }
        static FIRST_LINE: RouteOptions = RouteOptions::new().fingerprint(first_line);
        let request = TestRequest::post().uri("/pay").to_http_request();
        let of = |body: &[u8]| fingerprint(&request, &FIRST_LINE, "/pay", body);
        assert_eq!(of(b"amount=1\nsent_at=1"), of(b"amount=1\nsent_at=2"));
        assert_ne!(of(b"amount=1\nsent_at=1"), of(b"amount=2\nsent_at=1"));
    }
}
