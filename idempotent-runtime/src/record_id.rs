//! A record's identity ([`RecordId`]) and every digest of it, computed here and nowhere else: the key digest, the
//! scope digests and the receiver's record id. The HTTP flow, the status lookup, the key-issuing service, the
//! receivers and the operator tools all call these functions, so they cannot disagree on where a record lives.
//!
//! Each digest is SHA-256 over length-prefixed parts, with a tag per kind of scope so that, say, user `42` and
//! tenant `42` never share records. With a deployment secret ([`ScopeSecret`]) the scope digest is keyed as well,
//! so that a guessable user id cannot be recovered from the table (docs/decisions.md, "Keyed scope digests").

use std::fmt;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::digest::{Digest, hash_parts};
use crate::http::issued_key::WeakSecret;

/// A record's identity ([the contract, section 2]): (scope, method, route pattern or namespace, key), scope and key
/// hashed.
///
/// [the contract, section 2]: https://github.com/idempotent-rs/idempotent/blob/main/docs/contract.md#2-the-key-and-the-scope
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordId {
    /// SHA-256 of the scope ([`crate::scope_digest`]); the raw scope is never stored.
    pub scope_hash: Digest,
    /// SHA-256 of the unquoted key ([`crate::key_digest`]); the raw key is never stored.
    pub key_hash: Digest,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The route pattern, e.g. `/payments/{id}` (not the concrete path).
    pub route: String,
}

impl RecordId {
    /// One digest of the whole identity, e.g. to name the record in a notification.
    pub fn digest(&self) -> Digest {
        record_digest(self)
    }
}

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

/// The shortest secret [`ScopeSecret::new`] accepts, in bytes: the strength of HMAC-SHA256's key.
pub const MIN_SCOPE_SECRET_LEN: usize = 32;

/// Separates scope digests from any other use of the same secret.
const SCOPE_DOMAIN: &[u8] = b"idempotent scope v1";

/// A deployment secret that keys the scope digests records are stored under (set with
/// [`crate::IdempotencyBuilder::scope_secret`]).
///
/// Without it a scope is stored as SHA-256 of its value, so whoever reads the table (a backup, a replica, a
/// log of failed statements) can test guesses: `SHA-256("user", "42")`. With it the digest is
/// HMAC-SHA256(secret, domain | that SHA-256), which nobody without the secret can compute. Every process of an
/// app must share it; changing it makes every existing record unreachable (see the builder's transition
/// settings for the upgrade from unkeyed digests).
///
/// ```
/// use idempotent_runtime::{ScopeSecret, ScopeValue, scope_digest};
///
/// let secret = ScopeSecret::new(b"a deployment secret of 32 bytes or more").unwrap();
/// assert_ne!(secret.digest(ScopeValue::User("42")), scope_digest(ScopeValue::User("42")));
/// assert!(ScopeSecret::new(b"short").is_err());
/// ```
#[derive(Clone)]
pub struct ScopeSecret(Vec<u8>);

impl ScopeSecret {
    /// A secret of at least [`MIN_SCOPE_SECRET_LEN`] bytes (random bytes from a secret store, say).
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, WeakSecret> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SCOPE_SECRET_LEN {
            return Err(WeakSecret { len: secret.len() });
        }
        Ok(Self(secret.to_vec()))
    }

    /// The digest records of `scope` are stored under with this secret; operator tools that look records up by
    /// user compute it the same way.
    pub fn digest(&self, scope: ScopeValue<'_>) -> Digest {
        self.keyed(&scope_digest(scope))
    }

    /// Keys an unkeyed scope digest ([`scope_digest`]): HMAC-SHA256(secret, domain | digest).
    pub(crate) fn keyed(&self, unkeyed: &Digest) -> Digest {
        // HMAC accepts keys of any length; `new` only refused short ones.
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(&(SCOPE_DOMAIN.len() as u64).to_be_bytes());
        mac.update(SCOPE_DOMAIN);
        mac.update(unkeyed);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for ScopeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScopeSecret(..)")
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

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_secret_keys_the_scope_digest() {
        let secret = ScopeSecret::new(SECRET).unwrap();
        let alice = ScopeValue::User("alice");
        let keyed = secret.digest(alice);
        assert_ne!(keyed, scope_digest(alice), "with a secret the digest is not the plain SHA-256");
        assert_eq!(keyed, secret.digest(alice), "the same secret gives the same digest");
        assert_eq!(keyed, secret.keyed(&scope_digest(alice)));
        assert_ne!(keyed, secret.digest(ScopeValue::User("bob")));
        assert_ne!(keyed, secret.digest(ScopeValue::Function("alice")), "kinds stay separate namespaces");
        let other = ScopeSecret::new(b"another secret, also 32 bytes long").unwrap();
        assert_ne!(keyed, other.digest(alice), "another secret gives another digest");
    }

    #[test]
    fn a_short_scope_secret_is_refused_and_never_printed() {
        assert_eq!(ScopeSecret::new(&SECRET[..31]).unwrap_err().len, 31);
        let secret = ScopeSecret::new(SECRET).unwrap();
        assert_eq!(format!("{secret:?}"), "ScopeSecret(..)");
    }
}
