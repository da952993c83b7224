//! Every digest of a record's identity, computed here and nowhere else: the key digest, the scope digests and the
//! receiver's record id. The HTTP flow, the status lookup, the key-issuing service, the receivers and the operator
//! tools all call these functions, so they cannot disagree on where a record lives.
//!
//! Each digest is SHA-256 over length-prefixed parts, with a tag per kind of scope so that, say, user `42` and
//! tenant `42` never share records.

use crate::digest::{Digest, hash_parts};
use crate::record::RecordId;

/// The method of every receiver record, so that they never meet an HTTP route's records.
pub const RECEIVE_METHOD: &str = "RECEIVE";

/// A scope value, as a request (or a receiver) resolves it, to compute the digest it is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeValue<'a> {
    /// `scope = "user"`: the id the app's user resolver returned.
    User(&'a str),
    /// `scope = "global"`.
    Global,
    /// `scope = "header:name"`: the header's name, lowercase as the attribute writes it, and its value byte for
    /// byte.
    Header {
        /// The header's name, lowercase.
        name: &'a str,
        /// The header's value.
        value: &'a [u8],
    },
    /// `scope = path::to_fn`: the value the function returned.
    Function(&'a str),
    /// A receiver's namespace (no HTTP scope hashes to it).
    Receiver(&'a str),
}

/// The digest records of `scope` are stored under: `SHA-256(kind, value...)`.
pub fn scope_digest(scope: ScopeValue<'_>) -> Digest {
    match scope {
        ScopeValue::User(user) => hash_parts(&[b"user", user.as_bytes()]),
        ScopeValue::Global => hash_parts(&[b"global"]),
        ScopeValue::Header { name, value } => hash_parts(&[b"header", name.as_bytes(), value]),
        ScopeValue::Function(value) => hash_parts(&[b"function", value.as_bytes()]),
        ScopeValue::Receiver(namespace) => hash_parts(&[b"receiver", namespace.as_bytes()]),
    }
}

/// The digest a key given by the client (or a receiver's message key) is stored under: `SHA-256(key)`, the key
/// unquoted as [`crate::IdempotencyKey::as_str`] gives it. The raw key is never stored.
pub fn key_digest(key: impl AsRef<[u8]>) -> Digest {
    hash_parts(&[key.as_ref()])
}

/// The key digest of a `key = "derived"` route (and of a form-field key that was absent): the request's
/// fingerprint is the key, so the same request from the same scope is the same key (docs/contract.md, section 2).
pub fn derived_key_digest(fingerprint: &Digest) -> Digest {
    hash_parts(&[b"derived", fingerprint])
}

/// The fingerprint of a receiver's payload: `SHA-256(payload)`.
pub(crate) fn payload_fingerprint(payload: &[u8]) -> Digest {
    hash_parts(&[payload])
}

/// The record a delivery of `key` in a receiver's `namespace` claims (see `Receiver::record_id`).
pub(crate) fn receiver_record_id(namespace: &str, key: impl AsRef<[u8]>) -> RecordId {
    RecordId {
        scope_hash: scope_digest(ScopeValue::Receiver(namespace)),
        key_hash: key_digest(key),
        method: RECEIVE_METHOD.to_owned(),
        route: namespace.to_owned(),
    }
}

/// The digest of a whole record identity (key, scope, method, route): what PostgreSQL's notifications and
/// transaction locks name a record by.
pub(crate) fn record_digest(id: &RecordId) -> Digest {
    hash_parts(&[&id.key_hash, &id.scope_hash, id.method.as_bytes(), id.route.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_keys_are_separate_namespaces() {
        let values = [
            scope_digest(ScopeValue::User("42")),
            scope_digest(ScopeValue::Function("42")),
            scope_digest(ScopeValue::Receiver("42")),
            scope_digest(ScopeValue::Header { name: "x-tenant", value: b"42" }),
            scope_digest(ScopeValue::Global),
        ];
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(key_digest("42"), derived_key_digest(&key_digest("42")));
        assert_eq!(receiver_record_id("orders", "m-1").key_hash, key_digest("m-1"));
    }
}
