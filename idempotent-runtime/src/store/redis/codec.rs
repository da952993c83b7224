//! The stored response's headers as one hash field, and the scripts' replies as records.

use std::time::{Duration, SystemTime};

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use redis::Value;

use crate::digest::Digest;
use crate::record::{KeyState, Record, RecordState, StoredResponse};
use crate::store::{StoreError, StoreErrorKind};

/// Headers as `(u16 name length, name, u32 value length, value)*`, big-endian: binary-safe values, one field.
pub(super) fn encode_headers(response: &StoredResponse) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in &response.headers {
        let name = name.as_str().as_bytes();
        out.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Header names and values, in order, borrowed from the stored field.
type HeaderParts<'a> = (Vec<&'a [u8]>, Vec<&'a [u8]>);

/// The inverse of [`encode_headers`]: the names and values, or why the field does not decode.
fn decode_headers(mut field: &[u8]) -> Result<HeaderParts<'_>, StoreError> {
    fn take<'a>(field: &mut &'a [u8], len: usize) -> Result<&'a [u8], StoreError> {
        if field.len() < len {
            return Err(corrupt("the stored headers are truncated"));
        }
        let (head, rest) = field.split_at(len);
        *field = rest;
        Ok(head)
    }
    let (mut names, mut values) = (Vec::new(), Vec::new());
    while !field.is_empty() {
        let name_len = u16::from_be_bytes(take(&mut field, 2)?.try_into().unwrap_or_default());
        names.push(take(&mut field, usize::from(name_len))?);
        let value_len = u32::from_be_bytes(take(&mut field, 4)?.try_into().unwrap_or_default());
        values.push(take(&mut field, usize::try_from(value_len).unwrap_or(usize::MAX))?);
    }
    Ok((names, values))
}

pub(super) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message.into())
}

pub(super) fn bytes(value: Value) -> Result<Vec<u8>, StoreError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        other => Err(corrupt(format!("expected a string from Redis, got {other:?}"))),
    }
}

fn optional_bytes(value: Value) -> Result<Option<Vec<u8>>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        other => bytes(other).map(Some),
    }
}

pub(super) fn int(value: Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(number) => Ok(number),
        Value::BulkString(bytes) => {
            std::str::from_utf8(&bytes).ok().and_then(|text| text.parse().ok()).ok_or_else(|| corrupt("not a number"))
        }
        other => Err(corrupt(format!("expected a number from Redis, got {other:?}"))),
    }
}

/// A script's reply of exactly `N` values.
pub(super) fn array<const N: usize>(value: Value) -> Result<[Value; N], StoreError> {
    match value {
        Value::Array(items) => {
            items.try_into().map_err(|items: Vec<Value>| corrupt(format!("expected {N} values, got {}", items.len())))
        }
        other => Err(corrupt(format!("expected {N} values from a script, got {other:?}"))),
    }
}

fn millis(value: Value) -> Result<Duration, StoreError> {
    Ok(Duration::from_millis(u64::try_from(int(value)?).unwrap_or(0)))
}

fn status(value: Value) -> Result<StatusCode, StoreError> {
    let status = int(value)?;
    u16::try_from(status)
        .ok()
        .and_then(|status| StatusCode::from_u16(status).ok())
        .ok_or_else(|| corrupt(format!("status {status} is not an HTTP status")))
}

/// A record from `{fingerprint, state, lease remaining ms, status, headers, body}`.
pub(super) fn record(fields: [Value; 6]) -> Result<Record, StoreError> {
    let [fingerprint, state, remaining, status_field, headers, body] = fields;
    let fingerprint: Digest =
        bytes(fingerprint)?.try_into().map_err(|_| corrupt("the stored fingerprint is not 32 bytes"))?;
    let state = match bytes(state)?.as_slice() {
        b"p" => RecordState::InProgress { lease_remaining: millis(remaining)? },
        b"c" => {
            let status = i64::from(status(status_field)?.as_u16());
            let headers = bytes(headers)?;
            let (names, values) = decode_headers(&headers)?;
            let body = optional_bytes(body)?.map(Bytes::from);
            let response =
                StoredResponse::from_parts(status, &names, &values, body).map_err(|error| corrupt(error.0))?;
            RecordState::Completed(response)
        }
        other => return Err(corrupt(format!("unknown record state {:?}", String::from_utf8_lossy(other)))),
    };
    Ok(Record { fingerprint, state })
}

/// A status lookup's answer from `{member, state, lease remaining ms, created ms, completed ms, status}`.
pub(super) fn key_status(fields: [Value; 6]) -> Result<(Vec<u8>, SystemTime, KeyState), StoreError> {
    let [member, state, remaining, created, completed, status_field] = fields;
    let at = |value| millis(value).map(|since| SystemTime::UNIX_EPOCH + since);
    let state = match bytes(state)?.as_slice() {
        b"p" => KeyState::InProgress { lease_remaining: millis(remaining)? },
        b"c" => KeyState::Completed { status: status(status_field)?, completed_at: at(completed)? },
        _ => return Err(corrupt("unknown record state")),
    };
    Ok((bytes(member)?, at(created)?, state))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn headers_round_trip_binary_values_and_refuse_truncation() {
        let response = StoredResponse {
            status: StatusCode::OK,
            headers: vec![
                (HeaderName::from_static("content-type"), HeaderValue::from_static("text/plain")),
                (HeaderName::from_static("x-raw"), HeaderValue::from_bytes(b"\xff opaque").unwrap()),
            ],
            body: None,
        };
        let field = encode_headers(&response);
        let (names, values) = decode_headers(&field).unwrap();
        assert_eq!(names, [b"content-type".as_slice(), b"x-raw"]);
        assert_eq!(values, [b"text/plain".as_slice(), b"\xff opaque"]);
        assert!(decode_headers(&field[..field.len() - 1]).is_err());
        assert_eq!(decode_headers(&[]).unwrap().0.len(), 0);
    }

    #[test]
    fn a_damaged_record_is_corrupt_not_a_panic() {
        let reply = |state: &str, status: Value, headers: &[u8]| {
            [
                Value::BulkString(vec![7; 32]),
                Value::BulkString(state.into()),
                Value::Int(0),
                status,
                Value::BulkString(headers.to_vec()),
                Value::Nil,
            ]
        };
        assert!(record(reply("c", Value::Int(201), &[])).is_ok());
        assert!(record(reply("x", Value::Int(201), &[])).is_err());
        assert!(record(reply("c", Value::Int(70_000), &[])).is_err());
        assert!(record(reply("c", Value::Int(201), &[0, 9, b'a'])).is_err());
        let mut short = reply("p", Value::Nil, &[]);
        short[0] = Value::BulkString(vec![1; 3]);
        assert!(record(short).is_err());
        assert!(array::<6>(Value::Array(vec![Value::Nil; 5])).is_err(), "a reply of the wrong length");
        assert!(array::<6>(Value::Nil).is_err(), "a reply that is not an array");
    }
}
