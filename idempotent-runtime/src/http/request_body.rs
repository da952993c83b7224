//! Reading the request body once, under the route's cap, so it can be fingerprinted and then handed to the
//! handler's own extractors.

use actix_web::HttpRequest;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt as _;

/// Why the body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over the cap (announced by `Content-Length` or found while reading).
    TooLarge { cap: usize },
    /// The transport failed or the body was malformed (e.g. broken chunked encoding).
    Unreadable(PayloadError),
}

/// Reads the whole body, refusing it as soon as it is known to exceed `cap` bytes.
pub(crate) async fn read_capped(request: &HttpRequest, payload: &mut Payload, cap: usize) -> Result<Bytes, BodyError> {
    let announced = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > cap as u64) {
        return Err(BodyError::TooLarge { cap });
    }
    // Most bodies arrive as one chunk: keep it as it is and copy only when a second one comes.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut length = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(BodyError::Unreadable)?;
        length += chunk.len();
        if length > cap {
            return Err(BodyError::TooLarge { cap });
        }
        match (&mut joined, first.take()) {
            (Some(buffer), _) => buffer.extend_from_slice(&chunk),
            (None, None) => first = Some(chunk),
            (None, Some(previous)) => {
                let mut buffer = BytesMut::with_capacity(announced.map_or(length, |length| length as usize));
                buffer.extend_from_slice(&previous);
                buffer.extend_from_slice(&chunk);
                joined = Some(buffer);
            }
        }
    }
    Ok(joined.map(BytesMut::freeze).or(first).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use futures_util::stream;

    use super::*;

    fn chunked(chunks: &[&'static [u8]]) -> Payload {
        let chunks: Vec<Result<Bytes, PayloadError>> =
            chunks.iter().map(|chunk| Ok(Bytes::from_static(chunk))).collect();
        let stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(stream::iter(chunks));
        Payload::from(stream)
    }

    #[actix_web::test]
    async fn joins_chunks_exactly() {
        let request = TestRequest::default().to_http_request();
        let body = read_capped(&request, &mut chunked(&[b"ab", b"", b"cd", b"e"]), 5).await.unwrap();
        assert_eq!(&body[..], b"abcde");
    }

    #[actix_web::test]
    async fn refuses_bodies_over_the_cap_while_reading() {
        let request = TestRequest::default().to_http_request();
        let result = read_capped(&request, &mut chunked(&[b"abc", b"def"]), 5).await;
        assert!(matches!(result, Err(BodyError::TooLarge { cap: 5 })));
    }

    #[actix_web::test]
    async fn refuses_an_announced_length_over_the_cap_without_reading() {
        let request = TestRequest::default().insert_header((CONTENT_LENGTH, "6")).to_http_request();
        let result = read_capped(&request, &mut chunked(&[]), 5).await;
        assert!(matches!(result, Err(BodyError::TooLarge { cap: 5 })));
    }
}
