//! An in-memory [`Store`]: the same semantics as PostgreSQL within one process, for users' tests and demos.
//!
//! The records are split over [`SHARDS`] maps, each behind its own lock, chosen by the key's digest. One map
//! behind one lock stops every request while it rehashes all its records in one go (81 ms to 253 ms p99 at 10^6
//! keys, measured): a shard holds a thousandth of them, so its rehash is a thousand times shorter, and only the
//! requests of that shard wait for it. Purging sweeps one shard at a time for the same reason.

use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use hashbrown::hash_table::Entry as Slot;
use hashbrown::{DefaultHashBuilder, HashTable};
use tokio::sync::Notify;

use super::{
    Attempt, Claim, ClaimRequest, Completion, LeaseState, PurgeBatch, Store, StoreError, StoredClaim, StoredClaimState,
    claim_verdict,
};
use crate::digest::Digest;
use crate::record::{KeyState, KeyStatus, Record, RecordState, StoredResponse};
use crate::record_id::RecordId;

/// How many maps the records are split over. The key digest is uniform, so each holds about 1/`SHARDS` of them:
/// at 10^7 records a shard's rehash moves about 5,000 entries (well under a millisecond). An empty store costs
/// `SHARDS` empty maps (about 64 KiB), which a test suite creating thousands of stores can afford.
const SHARDS: usize = 1024;

/// One shard: the records whose key digest maps to it.
///
/// A record is hashed by 16 bytes of its two digests (uniform already, and seeded per store so that no client can
/// aim keys at one bucket), not by its method, route and strings: the few records of one (scope, key) on several
/// routes share a hash and are told apart by their ids. Hashing whole ids was a sixth of a fresh key's claim, and
/// every rehash as the shard grows hashed each id again.
struct Shard {
    records: HashTable<(RecordId, Entry)>,
    seed: DefaultHashBuilder,
}

/// Eight bytes of a digest as a word, past the two that choose the shard.
fn word(digest: &Digest) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&digest[8..16]);
    u64::from_le_bytes(word)
}

impl Shard {
    fn new(seed: DefaultHashBuilder) -> Self {
        Self { records: HashTable::new(), seed }
    }

    fn hash(seed: &DefaultHashBuilder, id: &RecordId) -> u64 {
        seed.hash_one((word(&id.scope_hash), word(&id.key_hash)))
    }

    fn get(&self, id: &RecordId) -> Option<&Entry> {
        self.records.find(Self::hash(&self.seed, id), |(stored, _)| stored == id).map(|(_, entry)| entry)
    }

    fn get_mut(&mut self, id: &RecordId) -> Option<&mut Entry> {
        self.records.find_mut(Self::hash(&self.seed, id), |(stored, _)| stored == id).map(|(_, entry)| entry)
    }

    fn remove(&mut self, id: &RecordId) -> Option<Entry> {
        let found = self.records.find_entry(Self::hash(&self.seed, id), |(stored, _)| stored == id).ok()?;
        Some(found.remove().0.1)
    }

    /// The record's slot, occupied or vacant: one hash for the look and the write.
    fn slot(&mut self, id: &RecordId) -> Slot<'_, (RecordId, Entry)> {
        let Self { records, seed } = self;
        records.entry(Self::hash(seed, id), |(stored, _)| stored == id, |(stored, _)| Self::hash(seed, stored))
    }
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("records", &self.records.len()).finish_non_exhaustive()
    }
}

/// Keeps records in process-local maps. Records do not survive a restart and are not shared between processes:
/// use [`super::PostgresStore`] in production.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// The shard the next purge batch starts at.
    purge_cursor: AtomicUsize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        let seed = DefaultHashBuilder::default();
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new(seed.clone()))).collect(),
            purge_cursor: AtomicUsize::new(0),
        }
    }
}

#[derive(Debug)]
struct Entry {
    fingerprint: Digest,
    token: i64,
    expires_at: Instant,
    created_at: SystemTime,
    state: EntryState,
    /// Requests waiting for this record to leave the in-progress state (`on_conflict = "wait"`).
    waiters: Option<Arc<Notify>>,
}

#[derive(Debug)]
enum EntryState {
    InProgress { locked_until: Instant },
    Completed { response: StoredResponse, completed_at: SystemTime },
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shard of every record of this key (in any scope, method or route, so a status lookup reads one shard).
    fn shard_of(&self, key_hash: &Digest) -> MutexGuard<'_, Shard> {
        let index = usize::from(u16::from_le_bytes([key_hash[0], key_hash[1]])) % SHARDS;
        lock(&self.shards[index])
    }

    fn records(&self, id: &RecordId) -> MutexGuard<'_, Shard> {
        self.shard_of(&id.key_hash)
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave a half-written entry (every write is one insert or field
    // assignment), so a poisoned map is still consistent.
    shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Entry {
    /// The entry as the claim rule ([`claim_verdict`]) sees it.
    fn stored(&self) -> StoredClaim<'_, Instant> {
        let state = match self.state {
            EntryState::InProgress { locked_until } => StoredClaimState::InProgress { lease_until: locked_until },
            EntryState::Completed { .. } => StoredClaimState::Completed,
        };
        StoredClaim { fingerprint: &self.fingerprint, state, expires_at: self.expires_at }
    }

    fn is_expired(&self, now: Instant) -> bool {
        self.stored().is_expired(now)
    }

    /// Wakes every waiter: the record left the in-progress state.
    fn wake_waiters(&mut self) {
        if let Some(waiters) = self.waiters.take() {
            waiters.notify_waiters();
        }
    }

    fn to_record(&self, now: Instant) -> Record {
        let state = match &self.state {
            EntryState::InProgress { locked_until } => {
                RecordState::InProgress { lease_remaining: locked_until.saturating_duration_since(now) }
            }
            EntryState::Completed { response, .. } => RecordState::Completed(response.clone()),
        };
        Record { fingerprint: self.fingerprint, state }
    }
}

/// `now + duration`, saturating far in the future instead of overflowing (a ttl of centuries is "forever").
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 60 * 60))
}

#[async_trait]
impl Store for MemoryStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut records = self.records(&request.id);
        // One hash of the id for the look and the write; the id is copied only when a new record is inserted.
        let slot = records.slot(&request.id);
        let existing = match &slot {
            Slot::Occupied(occupied) => Some(occupied.get().1.stored()),
            Slot::Vacant(_) => None,
        };
        let verdict = claim_verdict(existing.as_ref(), &request.fingerprint, now);
        let fresh = |waiters| Entry {
            fingerprint: request.fingerprint,
            token: request.token,
            expires_at: later(now, request.ttl),
            created_at: SystemTime::now(),
            state: EntryState::InProgress { locked_until: later(now, request.lease) },
            waiters,
        };
        match slot {
            Slot::Occupied(occupied) if !verdict.acquires() => Ok(Claim::Existing(occupied.get().1.to_record(now))),
            Slot::Occupied(mut occupied) => {
                let (_, entry) = occupied.get_mut();
                // Waiters of a taken-over record keep waiting for the new attempt.
                let waiters = entry.waiters.take();
                *entry = fresh(waiters);
                Ok(Claim::Acquired { took_over: verdict.took_over() })
            }
            Slot::Vacant(vacant) => {
                vacant.insert((request.id.clone(), fresh(None)));
                Ok(Claim::Acquired { took_over: verdict.took_over() })
            }
        }
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let mut records = self.records(&attempt.id);
        match records.get_mut(&attempt.id) {
            Some(entry) if entry.token == attempt.token && matches!(entry.state, EntryState::InProgress { .. }) => {
                entry.state = EntryState::Completed { response: response.clone(), completed_at: SystemTime::now() };
                entry.expires_at = later(Instant::now(), ttl);
                entry.wake_waiters();
                Ok(Completion::Stored)
            }
            // This attempt's own completion, retried: it landed already.
            Some(entry) if entry.token == attempt.token => Ok(Completion::Stored),
            _ => Ok(Completion::Fenced),
        }
    }

    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        let mut records = self.records(&attempt.id);
        match records.get_mut(&attempt.id) {
            Some(Entry { token, state: EntryState::InProgress { locked_until }, .. }) if *token == attempt.token => {
                *locked_until = later(Instant::now(), duration);
                Ok(LeaseState::Held)
            }
            _ => Ok(LeaseState::Lost),
        }
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let mut records = self.records(&attempt.id);
        let owned = records
            .get(&attempt.id)
            .is_some_and(|entry| entry.token == attempt.token && matches!(entry.state, EntryState::InProgress { .. }));
        if owned && let Some(mut entry) = records.remove(&attempt.id) {
            entry.wake_waiters();
        }
        Ok(())
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        let now = Instant::now();
        Ok(self.records(id).get(id).filter(|entry| !entry.is_expired(now)).map(|entry| entry.to_record(now)))
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        let now = Instant::now();
        let shard = self.shard_of(key_hash);
        let latest = shard
            .records
            .iter()
            .filter(|(id, entry)| id.scope_hash == *scope_hash && id.key_hash == *key_hash && !entry.is_expired(now))
            .max_by_key(|(_, entry)| entry.created_at);
        Ok(latest.map(|(id, entry)| KeyStatus {
            method: id.method.clone(),
            route: id.route.clone(),
            created_at: entry.created_at,
            state: match &entry.state {
                EntryState::InProgress { locked_until } => {
                    KeyState::InProgress { lease_remaining: locked_until.saturating_duration_since(now) }
                }
                EntryState::Completed { response, completed_at } => {
                    KeyState::Completed { status: response.status, completed_at: *completed_at }
                }
            },
        }))
    }

    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        // Until the lease lapses at the latest: then the waiter may take a dead worker's record over.
        let (waiters, lease_remaining) = {
            let mut records = self.records(id);
            let now = Instant::now();
            match records.get_mut(id) {
                Some(Entry { state: EntryState::InProgress { locked_until }, waiters, .. }) if *locked_until > now => {
                    (Arc::clone(waiters.get_or_insert_with(Arc::default)), *locked_until - now)
                }
                _ => return Ok(()),
            }
        };
        let woken = waiters.notified();
        tokio::pin!(woken);
        // Registered before the lock is taken again: a completion from now on wakes this waiter.
        woken.as_mut().enable();
        let still_in_progress =
            self.records(id).get(id).is_some_and(|entry| matches!(entry.state, EntryState::InProgress { .. }));
        if still_in_progress {
            let _timed_out = tokio::time::timeout(timeout.min(lease_remaining), woken).await;
        }
        Ok(())
    }

    /// Sweeps whole shards from where the last batch stopped until `limit` records were examined (at least one
    /// shard, locked one at a time); the pass is complete at the last shard.
    async fn purge_batch(&self, limit: usize) -> Result<PurgeBatch, StoreError> {
        let now = Instant::now();
        let mut batch = PurgeBatch::default();
        let mut index = self.purge_cursor.load(Ordering::Relaxed) % SHARDS;
        loop {
            let mut shard = lock(&self.shards[index]);
            let before = shard.records.len();
            shard.records.retain(|(_, entry)| !entry.is_expired(now));
            batch.examined += before;
            batch.deleted += before - shard.records.len();
            drop(shard);
            index += 1;
            if index == SHARDS {
                batch.pass_complete = true;
                break;
            }
            if batch.examined >= limit {
                break;
            }
        }
        self.purge_cursor.store(index % SHARDS, Ordering::Relaxed);
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;

    use super::*;

    fn claim_on(route: usize) -> ClaimRequest {
        ClaimRequest {
            id: RecordId { scope_hash: [1; 32], key_hash: [2; 32], method: "POST".into(), route: format!("/r{route}") },
            fingerprint: [3; 32],
            token: i64::try_from(route).unwrap(),
            lease: Duration::from_secs(30),
            ttl: Duration::from_secs(60),
        }
    }

    /// The records of one (scope, key) share a hash (see [`Shard`]): each route's record is still its own.
    #[actix_web::test]
    async fn records_of_one_key_on_many_routes_stay_apart() {
        let store = MemoryStore::new();
        for route in 0..20 {
            assert_eq!(store.claim(&claim_on(route)).await.unwrap(), Claim::Acquired { took_over: false });
        }
        let seventh = Attempt { id: claim_on(7).id, token: 7 };
        let response = StoredResponse { status: StatusCode::CREATED, headers: Vec::new(), body: None };
        assert_eq!(store.complete(&seventh, &response, Duration::from_secs(60)).await.unwrap(), Completion::Stored);
        store.release(&Attempt { id: claim_on(3).id, token: 3 }).await.unwrap();
        for route in 0..20 {
            let claimed = store.claim(&claim_on(route)).await.unwrap();
            match (route, claimed) {
                (3, Claim::Acquired { .. }) => {}
                (7, Claim::Existing(Record { state: RecordState::Completed(stored), .. })) => {
                    assert_eq!(stored.status, StatusCode::CREATED);
                }
                (_, Claim::Existing(Record { state: RecordState::InProgress { .. }, .. }))
                    if route != 3 && route != 7 => {}
                (route, claimed) => panic!("route {route}: {claimed:?}"),
            }
        }
    }
}
