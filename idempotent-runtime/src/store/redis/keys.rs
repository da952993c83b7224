//! Where a record lives in Redis: the key layout, versioned.
//!
//! Every key of one (scope, key) carries the same hash tag, so its record, its index and its wake-up channel sit in
//! one cluster slot and one script can touch them atomically. Layout 3, the one the store writes:
//!
//! ```text
//! idempotency:v3{<scope b64><key b64>}:r:POST /payments    the record (a hash)
//! idempotency:v3{<scope b64><key b64>}:i                   the (scope, key)'s records, for status lookups (a set;
//!                                                          only with `RedisStoreBuilder::status_lookups`)
//! idempotency:v3{<scope b64><key b64>}:w:POST /payments    the channel that wakes the record's waiters
//! ```
//!
//! `v3` is the layout's version. The hash tag holds the scope and key digests (SHA-256, both whole, so that two
//! identities share a key only if SHA-256 collides) in unpadded base64url, 43 characters each. The method and route
//! stay readable: an operator can tell which route a key belongs to, and the status lookup reads them back from the
//! index.
//!
//! Layout 2, the store's layout before layout 3, has the same keys under `v2`. Its records keep their deadlines as
//! instants (`e` the expiry, `l` the lease's end, in milliseconds since the epoch by Redis's clock), which costs
//! every claim and completion a `TIME` and the formatting of numbers in Lua; layout 3 keeps them as distances to
//! the key's own expiry (`x`, `y`: see `claim.lua`), which the store computes and sends as strings (only a heartbeat,
//! which moves the key's end, computes them in Lua). Layout 1, before layout 2, wrote hex digests without a version;
//! its records are no longer looked for.
//!
//! # Compatibility: records of layout 2 are served until they expire
//!
//! Nothing creates or extends layout 2's records any more, so the last one is gone at the latest expiry among those
//! that exist. The first store to connect on a prefix scans every master once, in the background, for layout 2's
//! records (a pattern layout 3's keys do not match) and writes that instant to `<prefix>v3:old-layout-until` (`0` when
//! it found none); later stores read it at `connect`. While the scan runs, and until that instant (by the app's clock,
//! plus a minute for clock skew), the store looks at layout 2 too: a claim that would otherwise run the claim script
//! first reads the record of layout 2, and a live one answers it as layout 2's store would have (replayed, in flight,
//! or another request's); a dead worker's record is taken over by the same request, which claims in layout 3. Reads,
//! waits (on layout 2's channel, where an older process's completion publishes) and lookups fall back the same way
//! (the read and lookup scripts understand both layouts' fields). The two layouts' hash tags differ, so on a cluster
//! the two records of one key sit in different slots: the read of layout 2 is an operation of its own, not part of
//! the claim script. After the window nothing looks at layout 2. Records that a process of the old release writes
//! after the scan passed (both releases running on one prefix) are not seen, as that process does not see layout 3's
//! either: switch a prefix from one release to the other at once (`old_layout` has the details).

use crate::digest::Digest;
use crate::record_id::RecordId;

/// A version of the key layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// The layout before this one: deadlines as instants. Only read, while its records may still live.
    V2,
    /// The layout the store writes: deadlines relative to the key's expiry.
    V3,
}

/// The keys of one record. The record's key is built once; the index and channel only where an operation uses them.
pub(super) struct RecordKeys {
    /// `<stem>:r:<METHOD> <route>`.
    record: Vec<u8>,
    /// The length of the stem (`<prefix>v3{...}`) at the start of `record`.
    stem: usize,
}

/// The record's part after the stem, before the member.
const RECORD: &[u8] = b":r:";
/// The index's part after the stem.
const INDEX: &[u8] = b":i";
/// The channel's part after the stem, before the member.
const CHANNEL: &[u8] = b":w:";

/// Unpadded base64url (RFC 4648, section 5): no brace, no glob character, so it is safe in a hash tag and in a
/// `SCAN MATCH` pattern.
fn push_base64url(out: &mut Vec<u8>, bytes: &[u8]) {
    use base64::Engine as _;
    let start = out.len();
    out.resize(start + base64::encoded_len(bytes.len(), false).unwrap_or(0), 0);
    let written = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

/// The version marker that follows the prefix.
fn version(layout: Layout) -> &'static [u8] {
    match layout {
        Layout::V2 => b"v2",
        Layout::V3 => b"v3",
    }
}

/// The hash-tagged stem shared by every key of a (scope, key) in `layout`.
fn stem(layout: Layout, prefix: &str, scope_hash: &Digest, key_hash: &Digest, room: usize) -> Vec<u8> {
    let mut stem = Vec::with_capacity(prefix.len() + 4 + 86 + room);
    stem.extend_from_slice(prefix.as_bytes());
    stem.extend_from_slice(version(layout));
    stem.push(b'{');
    push_base64url(&mut stem, scope_hash);
    push_base64url(&mut stem, key_hash);
    stem.push(b'}');
    stem
}

impl RecordKeys {
    /// The keys of `id` in `layout`.
    pub(super) fn new(layout: Layout, prefix: &str, id: &RecordId) -> Self {
        let member_len = id.method.len() + 1 + id.route.len();
        let mut record = stem(layout, prefix, &id.scope_hash, &id.key_hash, RECORD.len() + member_len);
        let stem = record.len();
        record.extend_from_slice(RECORD);
        record.extend_from_slice(id.method.as_bytes());
        record.push(b' ');
        record.extend_from_slice(id.route.as_bytes());
        Self { record, stem }
    }

    /// The record's hash.
    pub(super) fn record(&self) -> &[u8] {
        &self.record
    }

    /// The record's member in the index: `METHOD route`.
    pub(super) fn member(&self) -> &[u8] {
        &self.record[self.stem + RECORD.len()..]
    }

    /// The index of the (scope, key)'s records.
    pub(super) fn index(&self) -> Vec<u8> {
        [&self.record[..self.stem], INDEX].concat()
    }

    /// The pub/sub channel of the record's waiters.
    pub(super) fn channel(&self) -> Vec<u8> {
        [&self.record[..self.stem], CHANNEL, self.member()].concat()
    }
}

/// The index of a (scope, key) in `layout` and the prefix its members complete into record keys.
pub(super) fn index_and_record_prefix(
    layout: Layout,
    prefix: &str,
    scope_hash: &Digest,
    key_hash: &Digest,
) -> (Vec<u8>, Vec<u8>) {
    let stem = stem(layout, prefix, scope_hash, key_hash, 0);
    ([&stem, INDEX].concat(), [&stem, RECORD].concat())
}

/// Splits an index member back into the method and the route.
pub(super) fn split_member(member: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(member).ok()?;
    let (method, route) = text.split_once(' ')?;
    Some((method.to_owned(), route.to_owned()))
}

/// A `SCAN MATCH` pattern of every record key of layout 2 under `prefix` (layout 3's keys do not match it: another
/// version marker follows their prefix).
pub(super) fn old_records_pattern(prefix: &str) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(prefix.len() + 8);
    for byte in prefix.bytes() {
        // The glob's special characters stand for themselves only escaped.
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern.extend_from_slice(b"v2{*}:r:*");
    pattern
}

/// The key that records, once a store has looked, until when records of layout 2 may live under `prefix`.
pub(super) fn old_window_key(prefix: &str) -> Vec<u8> {
    [prefix.as_bytes(), b"v3:old-layout-until"].concat()
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
        for layout in [Layout::V2, Layout::V3] {
            // A route with braces of its own cannot move the record to another slot: the first tag wins.
            let keys = RecordKeys::new(layout, "idempotency:", &id("/a/{id}"));
            let tag = hash_tag(keys.record());
            assert_eq!(tag.len(), 86);
            assert_eq!(hash_tag(&keys.index()), tag);
            assert_eq!(hash_tag(&keys.channel()), tag);
            assert_eq!(hash_tag(RecordKeys::new(layout, "idempotency:", &id("/b")).record()), tag);
            let (index, prefix) = index_and_record_prefix(layout, "idempotency:", &[1; 32], &[2; 32]);
            assert_eq!(index, keys.index());
            assert_eq!([prefix.as_slice(), keys.member()].concat(), keys.record());
            assert_eq!(split_member(keys.member()), Some(("POST".to_owned(), "/a/{id}".to_owned())));
        }
    }

    #[test]
    fn layouts_differ_only_in_their_version_and_layout_2_is_as_released() {
        let id = id("/payments");
        // Three bytes 0x01 are "AQEB" in base64url, the last two "AQE"; three bytes 0x02 are "AgIC", two "AgI".
        let tag = format!("{}AQE{}AgI", "AQEB".repeat(10), "AgIC".repeat(10));
        for (layout, version) in [(Layout::V2, "v2"), (Layout::V3, "v3")] {
            let keys = RecordKeys::new(layout, "idempotency:", &id);
            assert_eq!(
                String::from_utf8_lossy(keys.record()),
                format!("idempotency:{version}{{{tag}}}:r:POST /payments")
            );
            assert_eq!(String::from_utf8_lossy(&keys.index()), format!("idempotency:{version}{{{tag}}}:i"));
            assert_eq!(
                String::from_utf8_lossy(&keys.channel()),
                format!("idempotency:{version}{{{tag}}}:w:POST /payments")
            );
        }
    }

    #[test]
    fn base64url_matches_rfc_4648() {
        let encoded = |bytes: &[u8]| {
            let mut out = Vec::new();
            push_base64url(&mut out, bytes);
            String::from_utf8(out).unwrap()
        };
        // RFC 4648, section 10 (unpadded), and the two characters base64url changes.
        for (input, output) in
            [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE")]
        {
            assert_eq!(encoded(input.as_bytes()), output);
        }
        assert_eq!(encoded(&[0xfb, 0xff]), "-_8");
        assert_eq!(encoded(&[0xff; 32]).len(), 43);
    }

    #[test]
    fn the_old_layouts_pattern_matches_its_records_only() {
        fn glob(pattern: &[u8], text: &[u8]) -> bool {
            // Enough of Redis's glob for these patterns: `*`, and `\` escapes.
            match (pattern.first(), text.first()) {
                (None, None) => true,
                (Some(b'*'), _) => glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..])),
                (Some(b'\\'), Some(&byte)) => pattern.get(1) == Some(&byte) && glob(&pattern[2..], &text[1..]),
                (Some(&expected), Some(&byte)) => expected == byte && glob(&pattern[1..], &text[1..]),
                _ => false,
            }
        }
        let pattern = old_records_pattern("app*1:");
        assert_eq!(pattern, b"app\\*1:v2{*}:r:*");
        let id = id("/payments");
        assert!(glob(&pattern, RecordKeys::new(Layout::V2, "app*1:", &id).record()));
        assert!(!glob(&pattern, RecordKeys::new(Layout::V3, "app*1:", &id).record()));
        assert!(!glob(&pattern, &RecordKeys::new(Layout::V2, "app*1:", &id).index()));
        assert!(!glob(&pattern, RecordKeys::new(Layout::V2, "appX1:", &id).record()), "another prefix");
        assert!(!glob(&pattern, &old_window_key("app*1:")));
    }
}
