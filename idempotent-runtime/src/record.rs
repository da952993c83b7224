//! What the store keeps: a record's identity, its state, and the stored response.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;

use crate::digest::Digest;

/// A response as it is stored and replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The handler's status.
    pub status: StatusCode,
    /// The handler's headers in order, minus those that must not be replayed (see [`crate::Idempotency`]).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The exact body bytes, or `None` when the body was over the response cap and only the completion was
    /// recorded.
    pub body: Option<Bytes>,
}

/// A record as a store reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The fingerprint of the request that created the record.
    pub fingerprint: Digest,
    /// Whether it is still running or done.
    pub state: RecordState,
}

/// The state of a record that has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// The handler is running (or its process died and the lease has not lapsed yet).
    InProgress {
        /// Time until the lease lapses and a retry may take the record over; zero if it already has.
        lease_remaining: Duration,
    },
    /// The handler finished and its response is stored.
    Completed(StoredResponse),
}

/// What a status lookup reports about a key: its most recent live record in a scope, on any route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The method of the request that created the record.
    pub method: String,
    /// The route pattern it was sent to.
    pub route: String,
    /// When the record was created (claimed).
    pub created_at: std::time::SystemTime,
    /// Running, or done with a stored status.
    pub state: KeyState,
}

/// The state part of a [`KeyStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// The request is still being processed.
    InProgress {
        /// Time until its lease lapses (zero if its worker seems gone).
        lease_remaining: Duration,
    },
    /// The request completed with this status.
    Completed {
        /// The stored response's status.
        status: StatusCode,
        /// When it completed.
        completed_at: std::time::SystemTime,
    },
}

/// A stored field that does not decode: the row was written by something else or damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRecord(pub String);

impl StoredResponse {
    /// Rebuilds a response from its stored columns, validating each part (a store must never turn a damaged row
    /// into a panic or into an invalid HTTP response).
    ///
    /// # Errors
    ///
    /// [`CorruptRecord`] naming the part that does not decode: a status outside 100..=999, header names and values
    /// of different counts, an invalid header name or value.
    pub fn from_parts(
        status: i64,
        names: &[impl AsRef<[u8]>],
        values: &[impl AsRef<[u8]>],
        body: Option<Bytes>,
    ) -> Result<Self, CorruptRecord> {
        let status = u16::try_from(status)
            .ok()
            .and_then(|status| StatusCode::from_u16(status).ok())
            .ok_or_else(|| CorruptRecord(format!("status {status} is not an HTTP status")))?;
        if names.len() != values.len() {
            return Err(CorruptRecord(format!("{} header names but {} values", names.len(), values.len())));
        }
        let headers = names
            .iter()
            .zip(values)
            .map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_ref())
                    .map_err(|_| CorruptRecord("a stored header name is invalid".to_owned()))?;
                let value = HeaderValue::from_bytes(value.as_ref())
                    .map_err(|_| CorruptRecord(format!("the stored value of header {name} is invalid")))?;
                Ok((name, value))
            })
            .collect::<Result<_, CorruptRecord>>()?;
        Ok(Self { status, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parts_round_trips_valid_columns() {
        let names = ["content-type", "x-raw"];
        let values = [b"text/plain".as_slice(), b"\xff opaque"];
        let response = StoredResponse::from_parts(201, &names, &values, Some(Bytes::from_static(b"ok"))).unwrap();
        assert_eq!(response.status, StatusCode::CREATED);
        assert_eq!(
            response.headers[0],
            (HeaderName::from_static("content-type"), HeaderValue::from_static("text/plain"))
        );
        assert_eq!(response.headers[1].1.as_bytes(), b"\xff opaque");
        assert_eq!(response.body.as_deref(), Some(b"ok".as_slice()));
    }

    #[test]
    fn from_parts_refuses_damaged_columns() {
        let none: [&str; 0] = [];
        assert!(StoredResponse::from_parts(0, &none, &none, None).is_err());
        assert!(StoredResponse::from_parts(70_000, &none, &none, None).is_err());
        assert!(StoredResponse::from_parts(-1, &none, &none, None).is_err());
        assert!(StoredResponse::from_parts(200, &["a"], &none, None).is_err());
        assert!(StoredResponse::from_parts(200, &["bad name"], &["v"], None).is_err());
        let error = StoredResponse::from_parts(200, &["x-a"], &[b"\x01".as_slice()], None).unwrap_err();
        assert!(error.0.contains("x-a"), "{error:?}");
    }
}
