//! Which scope digests a request's records live under: unkeyed (SHA-256), or keyed with the app's
//! [`ScopeSecret`], and, while an upgrade between the two runs, the other digest a record may still be under
//! (docs/decisions.md, "Keyed scope digests (issue 29)").

use std::time::SystemTime;

use crate::digest::Digest;
use crate::record_id::ScopeSecret;

/// The app's choice of scope digests ([`crate::IdempotencyBuilder::scope_secret`] and its transition settings).
#[derive(Debug, Clone, Default)]
pub(crate) struct ScopeDigests {
    pub(crate) secret: Option<ScopeSecret>,
    pub(crate) transition: Transition,
}

/// The upgrade from unkeyed to keyed digests, in two steps for a rolling deploy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Transition {
    /// No upgrade: records are claimed and read under one digest.
    #[default]
    None,
    /// Step 1: claims stay unkeyed (as on processes without the secret), but a keyed record is answered from
    /// first, and a fresh claim defers to a keyed one made at the same time.
    ClaimingUnkeyed,
    /// Step 2: claims are keyed, and until then an unkeyed record is answered from first, and a fresh claim
    /// defers to an unkeyed one made at the same time.
    ReadingUnkeyedUntil(SystemTime),
}

/// The digests one request's record lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScopeDigestsOf {
    /// Where a new record is claimed.
    pub(crate) claimed: Digest,
    /// During an upgrade, the other digest: a live record there is answered from instead of claiming.
    pub(crate) also: Option<Digest>,
}

impl ScopeDigests {
    /// The digests of the scope whose unkeyed digest ([`crate::scope_digest`]) is `unkeyed`, at `now`.
    pub(crate) fn of(&self, unkeyed: Digest, now: SystemTime) -> ScopeDigestsOf {
        let Some(secret) = &self.secret else { return ScopeDigestsOf { claimed: unkeyed, also: None } };
        let keyed = secret.keyed(&unkeyed);
        match self.transition {
            Transition::None => ScopeDigestsOf { claimed: keyed, also: None },
            Transition::ClaimingUnkeyed => ScopeDigestsOf { claimed: unkeyed, also: Some(keyed) },
            Transition::ReadingUnkeyedUntil(until) => {
                ScopeDigestsOf { claimed: keyed, also: (now < until).then_some(unkeyed) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record_id::{ScopeValue, scope_digest};

    #[test]
    fn the_digests_of_each_setting() {
        let unkeyed = scope_digest(ScopeValue::User("alice"));
        let secret = ScopeSecret::new([7u8; 32]).unwrap();
        let keyed = secret.digest(ScopeValue::User("alice"));
        let now = SystemTime::now();
        let with = |transition| ScopeDigests { secret: Some(secret.clone()), transition };

        assert_eq!(ScopeDigests::default().of(unkeyed, now), ScopeDigestsOf { claimed: unkeyed, also: None });
        // A transition without a secret has nothing to move to.
        let no_secret = ScopeDigests { secret: None, transition: Transition::ClaimingUnkeyed };
        assert_eq!(no_secret.of(unkeyed, now), ScopeDigestsOf { claimed: unkeyed, also: None });
        assert_eq!(with(Transition::None).of(unkeyed, now), ScopeDigestsOf { claimed: keyed, also: None });
        assert_eq!(
            with(Transition::ClaimingUnkeyed).of(unkeyed, now),
            ScopeDigestsOf { claimed: unkeyed, also: Some(keyed) }
        );
        let until = Transition::ReadingUnkeyedUntil(now + Duration::from_secs(60));
        assert_eq!(with(until).of(unkeyed, now), ScopeDigestsOf { claimed: keyed, also: Some(unkeyed) });
        assert_eq!(
            with(until).of(unkeyed, now + Duration::from_secs(60)),
            ScopeDigestsOf { claimed: keyed, also: None },
            "after the transition the unkeyed digest is not read"
        );
    }
}
