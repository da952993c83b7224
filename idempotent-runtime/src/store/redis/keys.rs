//! Where a record lives in Redis: every key of one (scope, key) carries the same hash tag, so its record, its
//! index and its wake-up channel sit in one cluster slot and one script can touch them atomically.
//!
//! ```text
//! idempotency:{<scope hex><key hex>}:r:POST /payments    the record (a hash)
//! idempotency:{<scope hex><key hex>}:i                   the (scope, key)'s records, for status lookups (a set)
//! idempotency:{<scope hex><key hex>}:w:POST /payments    the channel that wakes the record's waiters
//! ```

use crate::digest::{Digest, to_hex};
use crate::record_id::RecordId;

/// The keys of one record.
pub(super) struct RecordKeys {
    /// The record's hash.
    pub(super) record: Vec<u8>,
    /// The index of the (scope, key)'s records.
    pub(super) index: Vec<u8>,
    /// The record's member in the index: `METHOD route`.
    pub(super) member: Vec<u8>,
    /// The pub/sub channel of the record's waiters.
    pub(super) channel: Vec<u8>,
}

/// The hash-tagged stem shared by every key of a (scope, key): `<prefix>{<scope hex><key hex>}`.
fn stem(prefix: &str, scope_hash: &Digest, key_hash: &Digest) -> Vec<u8> {
    let mut stem = Vec::with_capacity(prefix.len() + 2 + 128 + 24);
    stem.extend_from_slice(prefix.as_bytes());
    stem.push(b'{');
    stem.extend_from_slice(to_hex(scope_hash).as_bytes());
    stem.extend_from_slice(to_hex(key_hash).as_bytes());
    stem.push(b'}');
    stem
}

fn joined(stem: &[u8], part: &[u8], member: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(stem.len() + part.len() + member.len());
    key.extend_from_slice(stem);
    key.extend_from_slice(part);
    key.extend_from_slice(member);
    key
}

impl RecordKeys {
    pub(super) fn new(prefix: &str, id: &RecordId) -> Self {
        let stem = stem(prefix, &id.scope_hash, &id.key_hash);
        let member = [id.method.as_bytes(), b" ", id.route.as_bytes()].concat();
        Self {
            record: joined(&stem, b":r:", &member),
            index: joined(&stem, b":i", b""),
            channel: joined(&stem, b":w:", &member),
            member,
        }
    }
}

/// The index of a (scope, key) and the prefix its members complete into record keys.
pub(super) fn index_and_record_prefix(prefix: &str, scope_hash: &Digest, key_hash: &Digest) -> (Vec<u8>, Vec<u8>) {
    let stem = stem(prefix, scope_hash, key_hash);
    (joined(&stem, b":i", b""), joined(&stem, b":r:", b""))
}

/// Splits an index member back into the method and the route.
pub(super) fn split_member(member: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(member).ok()?;
    let (method, route) = text.split_once(' ')?;
    Some((method.to_owned(), route.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(route: &str) -> RecordId {
        RecordId { scope_hash: [1; 32], key_hash: [2; 32], method: "POST".into(), route: route.into() }
    }

    /// The part of a key Redis Cluster hashes: between the first `{` and the next `}`.
    fn hash_tag(key: &[u8]) -> &[u8] {
        let open = key.iter().position(|&byte| byte == b'{').unwrap();
        let close = open + key[open..].iter().position(|&byte| byte == b'}').unwrap();
        &key[open + 1..close]
    }

    #[test]
    fn every_key_of_a_scope_and_key_shares_one_hash_tag() {
        // A route with braces of its own cannot move the record to another slot: the first tag wins.
        let keys = RecordKeys::new("idempotency:", &id("/a/{id}"));
        let tag = hash_tag(&keys.record);
        assert_eq!(tag.len(), 128);
        assert_eq!(hash_tag(&keys.index), tag);
        assert_eq!(hash_tag(&keys.channel), tag);
        assert_eq!(hash_tag(&RecordKeys::new("idempotency:", &id("/b")).record), tag);
        let (index, prefix) = index_and_record_prefix("idempotency:", &[1; 32], &[2; 32]);
        assert_eq!(index, keys.index);
        assert_eq!([prefix, keys.member.clone()].concat(), keys.record);
        assert_eq!(split_member(&keys.member), Some(("POST".to_owned(), "/a/{id}".to_owned())));
    }
}
