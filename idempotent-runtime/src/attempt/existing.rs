//! The decision on a live record the attempt does not own.

use std::time::Duration;

use crate::record::{Record, RecordState, StoredResponse};
use crate::store::ClaimRequest;

/// What an attempt found when its key has a live record it does not own.
#[derive(Debug)]
pub(crate) enum Existing {
    /// The key was used for a different request (another fingerprint): refused, whatever the record's state.
    KeyReused,
    /// The same request completed: its stored response is replayed.
    Completed(StoredResponse),
    /// The same request is still running, its lease holding for this long yet.
    InFlight {
        /// What remains of the running attempt's lease.
        lease_remaining: Duration,
    },
}

impl Existing {
    /// Decides on `record`. The fingerprint is checked before the state, so a different request learns that its
    /// key is taken even while the original runs (docs/contract.md, section 3).
    pub(crate) fn decide(record: Record, claim: &ClaimRequest) -> Self {
        if record.fingerprint != claim.fingerprint {
            return Self::KeyReused;
        }
        match record.state {
            RecordState::Completed(stored) => Self::Completed(stored),
            RecordState::InProgress { lease_remaining } => Self::InFlight { lease_remaining },
        }
    }
}
