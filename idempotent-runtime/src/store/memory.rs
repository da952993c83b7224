//! An in-memory [`Store`]: the same semantics as PostgreSQL within one process, for users' tests and demos.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Claim, ClaimRequest, Completion, Lease, Store, StoreError};
use crate::digest::Digest;
use crate::record::{Record, RecordId, RecordState, StoredResponse};

/// Keeps records in a process-local map. Records do not survive a restart and are not shared between processes:
/// use [`super::PostgresStore`] in production.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<RecordId, Entry>>,
}

#[derive(Debug)]
struct Entry {
    fingerprint: Digest,
    token: i64,
    expires_at: Instant,
    state: EntryState,
}

#[derive(Debug)]
enum EntryState {
    InProgress { locked_until: Instant },
    Completed(StoredResponse),
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<RecordId, Entry>> {
        // A panic while holding the lock cannot leave a half-written entry (every write is one insert or field
        // assignment), so a poisoned map is still consistent.
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Entry {
    fn is_expired(&self, now: Instant) -> bool {
        match self.state {
            EntryState::Completed(_) => self.expires_at <= now,
            EntryState::InProgress { locked_until } => locked_until <= now && self.expires_at <= now,
        }
    }

    fn may_be_taken_over_by(&self, fingerprint: &Digest, now: Instant) -> bool {
        match self.state {
            EntryState::Completed(_) => self.expires_at <= now,
            EntryState::InProgress { locked_until } => {
                locked_until <= now && (self.fingerprint == *fingerprint || self.expires_at <= now)
            }
        }
    }

    fn to_record(&self, now: Instant) -> Record {
        let state = match &self.state {
            EntryState::InProgress { locked_until } => {
                RecordState::InProgress { lease_remaining: locked_until.saturating_duration_since(now) }
            }
            EntryState::Completed(response) => RecordState::Completed(response.clone()),
        };
        Record { fingerprint: self.fingerprint, state }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut records = self.records();
        let took_over = match records.get(&request.id) {
            Some(entry) if !entry.may_be_taken_over_by(&request.fingerprint, now) => {
                return Ok(Claim::Existing(entry.to_record(now)));
            }
            existing => existing.is_some(),
        };
        records.insert(
            request.id.clone(),
            Entry {
                fingerprint: request.fingerprint,
                token: request.token,
                expires_at: now + request.ttl,
                state: EntryState::InProgress { locked_until: now + request.lease },
            },
        );
        Ok(Claim::Acquired { took_over })
    }

    async fn complete(
        &self,
        lease: &Lease,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let mut records = self.records();
        match records.get_mut(&lease.id) {
            Some(entry) if entry.token == lease.token && matches!(entry.state, EntryState::InProgress { .. }) => {
                entry.state = EntryState::Completed(response.clone());
                entry.expires_at = Instant::now() + ttl;
                Ok(Completion::Stored)
            }
            _ => Ok(Completion::Fenced),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut records = self.records();
        let owned = records
            .get(&lease.id)
            .is_some_and(|entry| entry.token == lease.token && matches!(entry.state, EntryState::InProgress { .. }));
        if owned {
            records.remove(&lease.id);
        }
        Ok(())
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        let now = Instant::now();
        Ok(self.records().get(id).filter(|entry| !entry.is_expired(now)).map(|entry| entry.to_record(now)))
    }
}
