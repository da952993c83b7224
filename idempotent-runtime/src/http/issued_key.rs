//! Keys the server issues: signed with a secret, bound to the caller's scope, valid until an expiry.
//!
//! An issued key reads `ik1_<expires>_<nonce>_<tag>`: the expiry in Unix seconds, 128 random bits, and the first
//! 128 bits of HMAC-SHA256(secret, domain | scope hash | expiry | nonce). Verifying it takes the secret and the
//! caller's scope, not a store round trip: a forged key, a key issued to another scope, and a key whose expiry was
//! altered all fail the tag. The scope is inside the tag, never in the key, so a key names nobody.
//! See docs/decisions.md ("Issued keys are signed, not stored").

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::digest::Digest;

/// The shortest secret [`KeyIssuer`] accepts, in bytes: the strength of HMAC-SHA256's key.
pub const MIN_ISSUER_SECRET_LEN: usize = 32;

/// How long an issued key may be used for a first request, unless [`KeyIssuer::key_ttl`] says otherwise.
pub const DEFAULT_ISSUED_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Separates these tags from any other use of the same secret.
const DOMAIN: &[u8] = b"idempotent issued key v1";
/// What every issued key starts with (a version, so the format can change).
const PREFIX: &str = "ik1_";
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 16;

/// Issues and verifies server-issued idempotency keys (the `issue_keys` service, `issued_only` routes).
///
/// Register it with [`crate::IdempotencyBuilder::key_issuer`]. Every process of an app must share the secret
/// (an environment variable or a secret store): a key issued by one process is verified by another.
///
/// ```
/// use std::time::Duration;
/// use idempotent_runtime::KeyIssuer;
///
/// let issuer = KeyIssuer::new(b"a secret of at least thirty-two bytes!!").unwrap().key_ttl(Duration::from_secs(3600));
/// assert!(KeyIssuer::new(b"short").is_err());
/// # drop(issuer);
/// ```
#[derive(Clone)]
pub struct KeyIssuer {
    /// The first secret signs; every secret verifies (the others are being rotated out).
    secrets: Vec<Vec<u8>>,
    ttl: Duration,
}

/// A secret shorter than [`MIN_ISSUER_SECRET_LEN`] bytes (a key issuer's) or [`crate::MIN_SCOPE_SECRET_LEN`] bytes
/// (a [`crate::ScopeSecret`]); both are 32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakSecret {
    /// The length of the refused secret.
    pub len: usize,
}

impl fmt::Display for WeakSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a secret needs at least {MIN_ISSUER_SECRET_LEN} bytes, this one has {}", self.len)
    }
}

impl std::error::Error for WeakSecret {}

/// A key just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issued {
    pub(crate) key: String,
    pub(crate) expires_at: SystemTime,
}

/// What a presented key is, for the caller's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Issued to this scope and not expired.
    Valid { expires_at: SystemTime },
    /// Issued to this scope, but its time to be used first has passed.
    Expired,
    /// Not a key this server issued to this scope: forged, altered, another scope's, or not an issued key at all.
    NotIssued,
}

impl fmt::Debug for KeyIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyIssuer").field("secrets", &self.secrets.len()).field("ttl", &self.ttl).finish()
    }
}

impl KeyIssuer {
    /// An issuer signing with `secret` (at least [`MIN_ISSUER_SECRET_LEN`] bytes of randomness).
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, WeakSecret> {
        Ok(Self { secrets: vec![checked(secret.as_ref())?], ttl: DEFAULT_ISSUED_KEY_TTL })
    }

    /// Also accepts keys signed with `old_secret`, so a secret can be rotated without refusing the keys clients
    /// already hold: deploy the new secret with the old one accepted, drop the old one after a key ttl.
    pub fn also_accept(mut self, old_secret: impl AsRef<[u8]>) -> Result<Self, WeakSecret> {
        self.secrets.push(checked(old_secret.as_ref())?);
        Ok(self)
    }

    /// How long an issued key may be used for its first request (default 24 hours). Once used, retries follow the
    /// route's `ttl` as for any key.
    pub fn key_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// A new key for `scope_hash`, valid from `now` for the key ttl.
    pub(crate) fn issue(&self, scope_hash: &Digest, now: SystemTime) -> Issued {
        let expires = unix_seconds(now).saturating_add(self.ttl.as_secs().max(1));
        let mut nonce = [0u8; NONCE_LEN];
        // The nonce only makes keys unique; their unforgeability rests on the secret, not on this generator.
        fastrand::fill(&mut nonce);
        let tag = tag(&self.secrets[0], scope_hash, expires, &nonce);
        Issued {
            key: format!("{PREFIX}{expires}_{}_{}", hex(&nonce), hex(&tag[..TAG_LEN])),
            expires_at: UNIX_EPOCH + Duration::from_secs(expires),
        }
    }

    /// Whether `key` was issued by this server to `scope_hash`, and is still within its time.
    pub(crate) fn verify(&self, key: &str, scope_hash: &Digest, now: SystemTime) -> Verdict {
        let Some((expires, nonce, presented)) = parse(key) else {
            return Verdict::NotIssued;
        };
        let authentic = self
            .secrets
            .iter()
            .any(|secret| keyed(secret, scope_hash, expires, &nonce).verify_truncated_left(&presented).is_ok());
        if !authentic {
            return Verdict::NotIssued;
        }
        if unix_seconds(now) >= expires {
            return Verdict::Expired;
        }
        Verdict::Valid { expires_at: UNIX_EPOCH + Duration::from_secs(expires) }
    }
}

fn checked(secret: &[u8]) -> Result<Vec<u8>, WeakSecret> {
    if secret.len() < MIN_ISSUER_SECRET_LEN {
        return Err(WeakSecret { len: secret.len() });
    }
    Ok(secret.to_vec())
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

fn keyed(secret: &[u8], scope_hash: &Digest, expires: u64, nonce: &[u8; NONCE_LEN]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    // Every part has a fixed length, so their concatenation is unambiguous.
    mac.update(DOMAIN);
    mac.update(scope_hash);
    mac.update(&expires.to_be_bytes());
    mac.update(nonce);
    mac
}

fn tag(secret: &[u8], scope_hash: &Digest, expires: u64, nonce: &[u8; NONCE_LEN]) -> [u8; 32] {
    keyed(secret, scope_hash, expires, nonce).finalize().into_bytes().into()
}

/// `ik1_<expires>_<nonce hex>_<tag hex>`, or `None` for anything else (which is simply not an issued key).
fn parse(key: &str) -> Option<(u64, [u8; NONCE_LEN], [u8; TAG_LEN])> {
    let mut parts = key.strip_prefix(PREFIX)?.split('_');
    let (expires, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || expires.is_empty()
        || expires.len() > 20
        || !expires.bytes().all(|b| b.is_ascii_digit())
        // One number, one spelling: the tag covers the number, the record the text.
        || (expires.len() > 1 && expires.starts_with('0'))
    {
        return None;
    }
    Some((expires.parse().ok()?, unhex(nonce)?, unhex(tag)?))
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|byte| [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0x0f)]]).map(char::from).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (value(pair[0])? << 4) | value(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::key::IdempotencyKey;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ALICE: Digest = [1; 32];
    const BOB: Digest = [2; 32];

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn issuer() -> KeyIssuer {
        KeyIssuer::new(SECRET).unwrap().key_ttl(Duration::from_secs(600))
    }

    #[test]
    fn an_issued_key_is_valid_for_its_scope_until_it_expires() {
        let issued = issuer().issue(&ALICE, at(1_000));
        assert_eq!(issued.expires_at, at(1_600));
        assert!(IdempotencyKey::parse(issued.key.as_bytes()).is_ok(), "a valid header value: {}", issued.key);
        assert_eq!(issuer().verify(&issued.key, &ALICE, at(1_000)), Verdict::Valid { expires_at: at(1_600) });
        assert_eq!(issuer().verify(&issued.key, &ALICE, at(1_599)), Verdict::Valid { expires_at: at(1_600) });
        assert_eq!(issuer().verify(&issued.key, &ALICE, at(1_600)), Verdict::Expired);
    }

    #[test]
    fn keys_are_unique_and_bound_to_scope_and_secret() {
        let issued = issuer().issue(&ALICE, at(1_000));
        assert_ne!(issued.key, issuer().issue(&ALICE, at(1_000)).key);
        assert_eq!(issuer().verify(&issued.key, &BOB, at(1_000)), Verdict::NotIssued, "another scope's key");
        let other = KeyIssuer::new(b"another secret, also thirty-two bytes long").unwrap();
        assert_eq!(other.verify(&issued.key, &ALICE, at(1_000)), Verdict::NotIssued, "another server's key");
    }

    #[test]
    fn altered_and_malformed_keys_are_not_issued() {
        let key = issuer().issue(&ALICE, at(1_000)).key;
        let later = key.replacen("ik1_1600_", "ik1_9600_", 1);
        assert_eq!(issuer().verify(&later, &ALICE, at(1_000)), Verdict::NotIssued, "expiry pushed back");
        let mut flipped = key.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(issuer().verify(&flipped, &ALICE, at(1_000)), Verdict::NotIssued, "tag altered");
        for garbage in ["", "ik1_", "ik1_1600__", "8e03978e-40d5-43e8-bc93-6894a57f9324", &format!("{key}_x")] {
            assert_eq!(issuer().verify(garbage, &ALICE, at(1_000)), Verdict::NotIssued, "{garbage:?}");
        }
        assert_eq!(issuer().verify(&key.to_uppercase(), &ALICE, at(1_000)), Verdict::NotIssued);
    }

    #[test]
    fn one_issued_key_has_one_spelling() {
        // The tag covers the expiry's number, the record the key's text: a zero in front of the number would turn
        // one issued key into several distinct keys, each a first use.
        let key = issuer().issue(&ALICE, at(1_000)).key;
        assert!(matches!(issuer().verify(&key, &ALICE, at(1_000)), Verdict::Valid { .. }));
        for padded in ["ik1_01600_", "ik1_0001600_", "ik1_00000000000000001600_"] {
            let padded = key.replacen("ik1_1600_", padded, 1);
            assert_eq!(issuer().verify(&padded, &ALICE, at(1_000)), Verdict::NotIssued, "{padded}");
        }
        let zeros = "0".repeat(2 * NONCE_LEN);
        assert!(parse(&format!("ik1_0_{zeros}_{zeros}")).is_some(), "zero itself has one spelling");
        assert!(parse(&format!("ik1_00_{zeros}_{zeros}")).is_none());
    }

    #[test]
    fn rotated_secrets_still_verify_and_weak_ones_are_refused() {
        let key = issuer().issue(&ALICE, at(1_000)).key;
        let rotated = KeyIssuer::new(b"the new secret, thirty-two bytes or more").unwrap().also_accept(SECRET).unwrap();
        assert!(matches!(rotated.verify(&key, &ALICE, at(1_000)), Verdict::Valid { .. }));
        assert_eq!(KeyIssuer::new([0u8; 31]).unwrap_err(), WeakSecret { len: 31 });
        assert!(format!("{:?}", issuer()).contains("secrets: 1"), "Debug never shows the secret");
    }
}
