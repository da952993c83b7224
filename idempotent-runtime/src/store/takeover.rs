//! The take-over and expiry rule of a claim, once, as a pure function every store can apply (the memory store
//! calls it; the PostgreSQL and Redis stores state the same rule in their SQL and scripts, and cite it).

use crate::digest::Digest;

/// What a store holds for a record, as the claim rule needs it. `T` is the store's clock: an `Instant`, a
/// `SystemTime`, or milliseconds of the server's time; any ordered point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredClaim<'a, T> {
    /// The fingerprint of the request that claimed the record.
    pub fingerprint: &'a Digest,
    /// Whether the record is running or completed.
    pub state: StoredClaimState<T>,
    /// When the record expires (its ttl, renewed on completion).
    pub expires_at: T,
}

/// The state of a [`StoredClaim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredClaimState<T> {
    /// A worker holds the record until `lease_until`, unless its heartbeat renews the lease.
    InProgress {
        /// The end of the current lease.
        lease_until: T,
    },
    /// The response is stored.
    Completed,
}

/// What a claim of a record finds, by [`claim_verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimVerdict<T> {
    /// No record: claim it afresh (`Claim::Acquired { took_over: false }`).
    Absent,
    /// The record expired: claim it afresh, replacing it (`Claim::Acquired { took_over: true }`).
    Expired,
    /// The same request's worker stopped renewing its lease (it died): take the record over
    /// (`Claim::Acquired { took_over: true }`); the new token fences the old worker.
    LeaseLapsed,
    /// A live record the claim does not get (`Claim::Existing`): completed, running, or another request's.
    Live {
        /// The end of the running worker's lease; `None` when the record is completed or its lease lapsed (the
        /// remaining lease is then zero).
        lease_until: Option<T>,
    },
}

impl<T> ClaimVerdict<T> {
    /// Whether the claim acquires the record.
    pub fn acquires(&self) -> bool {
        !matches!(self, Self::Live { .. })
    }

    /// Whether acquiring it replaces an existing record (the `took_over` of `Claim::Acquired`).
    pub fn took_over(&self) -> bool {
        matches!(self, Self::Expired | Self::LeaseLapsed)
    }
}

impl<T: PartialOrd + Copy> StoredClaim<'_, T> {
    /// Whether the record is expired at `now`: a completed record once its ttl ends; a running one only once
    /// both its ttl ended and its lease lapsed (a live worker's record never expires under it). An expired
    /// record is gone for every purpose: never read, never looked up, purged.
    pub fn is_expired(&self, now: T) -> bool {
        let ttl_over = self.expires_at <= now;
        match self.state {
            StoredClaimState::Completed => ttl_over,
            StoredClaimState::InProgress { lease_until } => ttl_over && lease_until <= now,
        }
    }
}

/// The claim rule, given what the store holds for the record (`None`: nothing) and the incoming claim's
/// fingerprint at `now`:
///
/// - no record, or an expired one ([`StoredClaim::is_expired`]): the claim acquires it afresh;
/// - a running record whose lease lapsed (lease end at or before `now`) and whose fingerprint is the claim's:
///   its worker died, and the claim takes it over (a different request never takes over a live record: it is
///   told the key is reused);
/// - anything else (completed and unexpired, running under a lease, or another request's): the existing record
///   is answered, with the end of its lease when it runs.
pub fn claim_verdict<T: PartialOrd + Copy>(
    stored: Option<&StoredClaim<'_, T>>,
    fingerprint: &Digest,
    now: T,
) -> ClaimVerdict<T> {
    let Some(stored) = stored else { return ClaimVerdict::Absent };
    if stored.is_expired(now) {
        return ClaimVerdict::Expired;
    }
    match stored.state {
        StoredClaimState::InProgress { lease_until } if lease_until <= now && stored.fingerprint == fingerprint => {
            ClaimVerdict::LeaseLapsed
        }
        StoredClaimState::InProgress { lease_until } if now < lease_until => {
            ClaimVerdict::Live { lease_until: Some(lease_until) }
        }
        StoredClaimState::InProgress { .. } | StoredClaimState::Completed => ClaimVerdict::Live { lease_until: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINE: Digest = [1; 32];
    const OTHER: Digest = [2; 32];

    fn running(lease_until: u64, expires_at: u64) -> StoredClaim<'static, u64> {
        StoredClaim { fingerprint: &MINE, state: StoredClaimState::InProgress { lease_until }, expires_at }
    }

    #[test]
    fn absent_and_expired_are_claimed_afresh() {
        assert_eq!(claim_verdict::<u64>(None, &MINE, 10), ClaimVerdict::Absent);
        let completed = StoredClaim { fingerprint: &OTHER, state: StoredClaimState::Completed, expires_at: 10 };
        assert_eq!(claim_verdict(Some(&completed), &MINE, 10), ClaimVerdict::Expired);
        assert_eq!(claim_verdict(Some(&running(5, 10)), &OTHER, 10), ClaimVerdict::Expired);
        assert!(ClaimVerdict::<u64>::Expired.took_over() && !ClaimVerdict::<u64>::Absent.took_over());
    }

    #[test]
    fn a_lapsed_lease_is_taken_over_by_the_same_request_only() {
        assert_eq!(claim_verdict(Some(&running(5, 100)), &MINE, 5), ClaimVerdict::LeaseLapsed);
        assert_eq!(claim_verdict(Some(&running(5, 100)), &OTHER, 6), ClaimVerdict::Live { lease_until: None });
    }

    #[test]
    fn live_records_are_answered() {
        assert_eq!(claim_verdict(Some(&running(50, 100)), &MINE, 10), ClaimVerdict::Live { lease_until: Some(50) });
        // A running record outlives its ttl while its worker renews the lease.
        assert!(!running(50, 10).is_expired(20));
        let completed = StoredClaim { fingerprint: &MINE, state: StoredClaimState::Completed, expires_at: 100 };
        assert_eq!(claim_verdict(Some(&completed), &MINE, 10), ClaimVerdict::Live { lease_until: None });
        assert!(!ClaimVerdict::Live { lease_until: Some(1) }.acquires());
    }
}
