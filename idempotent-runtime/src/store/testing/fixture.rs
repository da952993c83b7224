//! What every case shares: a random scope of its own, requests in it, responses and attempts.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;

use crate::digest::Digest;
use crate::record::StoredResponse;
use crate::record_id::RecordId;
use crate::store::{Attempt, ClaimRequest};

/// A ttl or lease no case outlives.
pub(super) const LONG: Duration = Duration::from_secs(3600);

/// A lease short enough to watch it lapse.
pub(super) const SHORT_LEASE: Duration = Duration::from_millis(300);

/// The longest ttl after which a case expects its own records to have expired. Every short-lived record of the kit
/// expires within it, so a purge case that waits this long first sees no other case's record expire meanwhile.
pub(super) const SHORT_TTL_BOUND: Duration = Duration::from_millis(300);

/// The scope of one case: a random scope hash, so that cases share a store, and a rerun on a persistent store never
/// meets the records of an earlier run.
pub(super) struct Scope(Digest);

impl Scope {
    /// A fresh random scope.
    pub(super) fn random() -> Self {
        Self(std::array::from_fn(|_| fastrand::u8(..)))
    }

    /// The scope hash.
    pub(super) fn hash(&self) -> Digest {
        self.0
    }

    /// The identity of key `key` on `POST /r` in this scope.
    pub(super) fn id(&self, key: u8) -> RecordId {
        self.id_on(key, "POST", "/r")
    }

    /// The identity of key `key` on `method route` in this scope.
    pub(super) fn id_on(&self, key: u8, method: &str, route: &str) -> RecordId {
        RecordId { scope_hash: self.0, key_hash: [key; 32], method: method.into(), route: route.into() }
    }

    /// A claim of key `key` on `POST /r` by a request of fingerprint `[fingerprint; 32]`.
    pub(super) fn request(&self, key: u8, fingerprint: u8, token: i64, lease: Duration, ttl: Duration) -> ClaimRequest {
        ClaimRequest { id: self.id(key), fingerprint: [fingerprint; 32], token, lease, ttl }
    }
}

/// A `201 Created` response with `body`.
pub(super) fn response(body: &'static str) -> StoredResponse {
    StoredResponse { status: StatusCode::CREATED, headers: vec![], body: Some(Bytes::from_static(body.as_bytes())) }
}

/// The attempt a claim makes the owner (its handle for heartbeat, completion and release).
pub(super) fn attempt_of(request: &ClaimRequest) -> Attempt {
    Attempt { id: request.id.clone(), token: request.token }
}
