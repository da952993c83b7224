//! A store written outside the crate, through the public API only, checked by the conformance kit: the proof (and
//! the example) that a third party can implement a `Store` and test it in a few lines.
//!
//! The store keeps its records in one `Mutex<HashMap>` and wakes waiters with a `tokio::sync::Notify` per record.
//! It keeps the trait's default `purge_batch` (it answers `Unsupported`: expired records stay until they are claimed
//! again), so it leaves the kit's purge cases out, by name (`Kit::without_purge`); and it has no transactional
//! routes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use idempotent_runtime::store::testing;
use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, KeyState, KeyStatus, LeaseState, Record, RecordId, RecordState,
    StoredResponse,
};
use idempotent_runtime::{Digest, Store, StoreError, async_trait};
use tokio::sync::Notify;

/// The test: the whole kit on a fresh store, but the purge cases (this store has no purge).
#[test]
fn a_third_party_store_passes_the_conformance_kit() {
    testing::block_on(testing::Kit::new(Arc::new(HashMapStore::default())).without_purge().run());
}

/// Left in, the purge cases fail on a store without a purge: the kit never passes a case it did not run.
#[test]
fn the_kit_fails_a_store_without_a_purge_unless_told_to_leave_the_purge_out() {
    for case in testing::PURGE_CASES {
        let mut kit = testing::Kit::new(Arc::new(HashMapStore::default()));
        for other in testing::CASES.iter().filter(|other| *other != case) {
            kit = kit.skip(other);
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| testing::block_on(kit.run())));
        let panic = ran.expect_err("a purge case passed on a store that does not purge");
        let message = panic.downcast_ref::<String>().map_or("", String::as_str);
        assert!(message.contains(case) && message.contains("without_purge"), "{message}");
    }
}

#[derive(Default)]
struct HashMapStore {
    records: Mutex<HashMap<RecordId, Entry>>,
}

struct Entry {
    fingerprint: Digest,
    token: i64,
    state: State,
    expires_at: Instant,
    created_at: SystemTime,
    /// Wakes the record's waiters when it leaves the in-progress state; kept across a take-over, so that they wait
    /// for the new attempt.
    waiters: Arc<Notify>,
}

enum State {
    InProgress { locked_until: Instant },
    Completed { response: StoredResponse, completed_at: SystemTime },
}

impl Entry {
    /// Expired: completed and past its ttl, or in progress and past both its lease and its ttl.
    fn is_expired(&self, now: Instant) -> bool {
        match self.state {
            State::Completed { .. } => self.expires_at <= now,
            State::InProgress { locked_until } => locked_until <= now && self.expires_at <= now,
        }
    }

    /// A claim may replace the record when it expired, or when its lease lapsed and it is the same request.
    fn may_be_taken_over_by(&self, fingerprint: &Digest, now: Instant) -> bool {
        let lapsed = matches!(self.state, State::InProgress { locked_until } if locked_until <= now);
        self.is_expired(now) || (lapsed && self.fingerprint == *fingerprint)
    }

    fn is_in_progress(&self) -> bool {
        matches!(self.state, State::InProgress { .. })
    }

    fn to_record(&self, now: Instant) -> Record {
        let state = match &self.state {
            State::InProgress { locked_until } => {
                RecordState::InProgress { lease_remaining: locked_until.saturating_duration_since(now) }
            }
            State::Completed { response, .. } => RecordState::Completed(response.clone()),
        };
        Record { fingerprint: self.fingerprint, state }
    }
}

impl HashMapStore {
    fn records(&self) -> MutexGuard<'_, HashMap<RecordId, Entry>> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live entry of `id` that carries `token`, if any.
    fn owned<'a>(records: &'a mut HashMap<RecordId, Entry>, attempt: &Attempt) -> Option<&'a mut Entry> {
        records.get_mut(&attempt.id).filter(|entry| entry.token == attempt.token && !entry.is_expired(Instant::now()))
    }
}

#[async_trait]
impl Store for HashMapStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut records = self.records();
        let (took_over, waiters) = match records.get(&request.id) {
            Some(entry) if !entry.may_be_taken_over_by(&request.fingerprint, now) => {
                return Ok(Claim::Existing(entry.to_record(now)));
            }
            Some(entry) => (true, Arc::clone(&entry.waiters)),
            None => (false, Arc::default()),
        };
        let entry = Entry {
            fingerprint: request.fingerprint,
            token: request.token,
            state: State::InProgress { locked_until: now + request.lease },
            expires_at: now + request.ttl,
            created_at: SystemTime::now(),
            waiters,
        };
        records.insert(request.id.clone(), entry);
        Ok(Claim::Acquired { took_over })
    }

    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        let mut records = self.records();
        match Self::owned(&mut records, attempt) {
            Some(Entry { state: State::InProgress { locked_until }, .. }) => {
                *locked_until = Instant::now() + duration;
                Ok(LeaseState::Held)
            }
            _ => Ok(LeaseState::Lost),
        }
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let mut records = self.records();
        let Some(entry) = Self::owned(&mut records, attempt) else { return Ok(Completion::Fenced) };
        if entry.is_in_progress() {
            entry.state = State::Completed { response: response.clone(), completed_at: SystemTime::now() };
            entry.expires_at = Instant::now() + ttl;
            entry.waiters.notify_waiters();
        }
        // Completed already with this token: a retried completion that landed the first time.
        Ok(Completion::Stored)
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let mut records = self.records();
        if Self::owned(&mut records, attempt).is_some_and(|entry| entry.is_in_progress())
            && let Some(entry) = records.remove(&attempt.id)
        {
            entry.waiters.notify_waiters();
        }
        Ok(())
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        let now = Instant::now();
        Ok(self.records().get(id).filter(|entry| !entry.is_expired(now)).map(|entry| entry.to_record(now)))
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        let now = Instant::now();
        let records = self.records();
        let latest = records
            .iter()
            .filter(|(id, entry)| id.scope_hash == *scope_hash && id.key_hash == *key_hash && !entry.is_expired(now))
            .max_by_key(|(_, entry)| entry.created_at);
        Ok(latest.map(|(id, entry)| KeyStatus {
            method: id.method.clone(),
            route: id.route.clone(),
            created_at: entry.created_at,
            state: match &entry.state {
                State::InProgress { locked_until } => {
                    KeyState::InProgress { lease_remaining: locked_until.saturating_duration_since(now) }
                }
                State::Completed { response, completed_at } => {
                    KeyState::Completed { status: response.status, completed_at: *completed_at }
                }
            },
        }))
    }

    /// Until the record is completed or released (notified), or its lease lapses (the waiter may take over).
    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let (waiters, lease_remaining) = match self.records().get(id) {
            Some(Entry { state: State::InProgress { locked_until }, waiters, .. }) if *locked_until > now => {
                (Arc::clone(waiters), *locked_until - now)
            }
            _ => return Ok(()),
        };
        let woken = waiters.notified();
        tokio::pin!(woken);
        // Registered before looking again: a completion from now on wakes this waiter.
        woken.as_mut().enable();
        if self.records().get(id).is_some_and(Entry::is_in_progress) {
            let _timed_out = tokio::time::timeout(timeout.min(lease_remaining), woken).await;
        }
        Ok(())
    }
}
