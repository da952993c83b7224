//! The request fingerprint (CONTRACT section 3): what makes a retry "the same request".
//!
//! SHA-256 over the method, the route pattern, the path, the canonical query string and the body bytes. The query
//! is canonical (pairs decoded and sorted) so that `?a=1&b=2` and `?b=2&a=1` are the same request, as they are to
//! every web framework that parses them.

use actix_web::HttpRequest;

use crate::digest::{Digest, hash_parts};

/// Fingerprints a request whose body has been read.
pub(crate) fn fingerprint(request: &HttpRequest, route: &str, body: &[u8]) -> Digest {
    let query = canonical_query(request.query_string());
    hash_parts(&[
        request.method().as_str().as_bytes(),
        route.as_bytes(),
        request.path().as_bytes(),
        query.as_bytes(),
        body,
    ])
}

/// Decoded pairs, sorted, re-encoded: independent of order and of percent-encoding choices.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
    pairs.sort();
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn of(uri: &str, body: &[u8]) -> Digest {
        fingerprint(&TestRequest::post().uri(uri).to_http_request(), "/pay", body)
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
        assert_ne!(fingerprint(&put, "/pay", b""), of("/pay", b""));
        let post = TestRequest::post().uri("/pay").to_http_request();
        assert_ne!(fingerprint(&post, "/pay", b""), fingerprint(&post, "/{anything}", b""));
    }
}
