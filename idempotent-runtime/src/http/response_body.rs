//! Collecting the handler's response body for storage without ever losing it: a body over the cap is passed
//! through to the client untouched (with the part already read put back in front).

use std::pin::Pin;

use actix_web::body::{BodySize, BodyStream, BoxBody, MessageBody};
use actix_web::web::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt as _};

/// The handler's body, either whole or too large to store.
pub(crate) enum Captured {
    /// The complete body, at most the cap.
    Whole(Bytes),
    /// Over the cap: the body to send as it is (nothing of it is lost).
    TooLarge(BoxBody),
}

type BodyErrorBox = Box<dyn std::error::Error>;

/// Collects `body` up to `cap` bytes.
pub(crate) async fn capture(body: BoxBody, cap: usize) -> Result<Captured, BodyErrorBox> {
    match body.size() {
        BodySize::None => return Ok(Captured::Whole(Bytes::new())),
        BodySize::Sized(length) if length > cap as u64 => return Ok(Captured::TooLarge(body)),
        _ => {}
    }
    // In-memory bodies (the common case: JSON, text) are taken without polling or copying.
    let mut body = match body.try_into_bytes() {
        Ok(bytes) => return Ok(Captured::Whole(bytes)),
        Err(body) => body,
    };
    let mut collected = BytesMut::new();
    while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
        let chunk = chunk?;
        if collected.len() + chunk.len() > cap {
            let read = [Ok::<_, BodyErrorBox>(collected.freeze()), Ok(chunk)];
            let rest = stream::poll_fn(move |cx| Pin::new(&mut body).poll_next(cx));
            return Ok(Captured::TooLarge(BoxBody::new(BodyStream::new(stream::iter(read).chain(rest)))));
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Captured::Whole(collected.freeze()))
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;

    use super::*;

    fn streamed(chunks: &[&'static str]) -> BoxBody {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|chunk| Ok(Bytes::from_static(chunk.as_bytes()))).collect();
        BoxBody::new(BodyStream::new(stream::iter(chunks)))
    }

    #[actix_web::test]
    async fn whole_bodies_are_captured_exactly() {
        let Captured::Whole(bytes) = capture(BoxBody::new("hello"), 5).await.unwrap() else { panic!("too large") };
        assert_eq!(bytes, "hello");
        let Captured::Whole(bytes) = capture(streamed(&["he", "llo"]), 5).await.unwrap() else { panic!("too large") };
        assert_eq!(bytes, "hello");
    }

    #[actix_web::test]
    async fn bodies_over_the_cap_pass_through_intact() {
        let Captured::TooLarge(body) = capture(BoxBody::new("hello!"), 5).await.unwrap() else { panic!("captured") };
        assert_eq!(to_bytes(body).await.unwrap(), "hello!");
        let Captured::TooLarge(body) = capture(streamed(&["hel", "lo", "!", " more"]), 5).await.unwrap() else {
            panic!("captured")
        };
        assert_eq!(to_bytes(body).await.unwrap(), "hello! more");
    }
}
