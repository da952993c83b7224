//! SHA-256 digests of the record's identity and of the request, and their hex form for logs and tools.

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Hashes length-prefixed parts, so that `("ab", "c")` and `("a", "bc")` never collide.
pub(crate) fn hash_parts(parts: &[&[u8]]) -> Digest {
    let mut hasher = PartsHasher::new();
    for part in parts {
        hasher.part(part);
    }
    hasher.finish()
}

/// [`hash_parts`] one part at a time, for a number of parts known only while hashing (the same digest).
pub(crate) struct PartsHasher(Sha256);

impl PartsHasher {
    pub(crate) fn new() -> Self {
        Self(Sha256::new())
    }

    /// Adds one length-prefixed part.
    pub(crate) fn part(&mut self, part: &[u8]) {
        self.0.update((part.len() as u64).to_be_bytes());
        self.0.update(part);
    }

    pub(crate) fn finish(self) -> Digest {
        self.0.finalize().into()
    }
}

/// Lowercase hex, for logs and operator output (sha2 0.11 digests no longer implement `LowerHex`).
pub fn to_hex(digest: &Digest) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]));
        assert_eq!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"ab", b"c"]));
    }

    #[test]
    fn hex_is_lowercase_and_complete() {
        let mut digest = [0u8; 32];
        digest[0] = 0xab;
        digest[31] = 0x01;
        let hex = to_hex(&digest);
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("ab00"));
        assert!(hex.ends_with("01"));
    }
}
