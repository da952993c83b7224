//! [`Store`] on Redis: each transition is one Lua script on the record's slot, and waiters are woken through the
//! slot's sharded pub/sub channel. While records of the old key layout may live ([`super::old_layout`]), the claim,
//! the reads, the wait and the lookup look for them too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;

use super::codec;
use super::keys::{self, Layout, RecordKeys};
use super::waiters::{Subscription, Waiters};
use super::{EXPIRY_GRACE, RedisStore, bounded, failed, millis};
use crate::digest::Digest;
use crate::record::{KeyStatus, Record, RecordState, StoredResponse};
use crate::record_id::RecordId;
use crate::store::{Attempt, Claim, ClaimRequest, Completion, LeaseState, Store, StoreError, StoreErrorKind};

/// What a claim finds of a record of the old key layout, judged by the take-over rule (the claim script's).
enum OldRecord {
    /// None, or an expired one: the claim goes on to the current layout.
    Absent,
    /// The same request's worker died: the claim goes on to the current layout, and has taken over.
    LeaseLapsed,
    /// A live record the claim does not get.
    Live(Record),
}

/// A fresh claim's deadlines as layout 3 keeps them, in milliseconds: relative to the key's own expiry, so that the
/// claim script reads no clock and formats no number.
#[derive(Debug, PartialEq, Eq)]
struct ClaimDeadlines {
    /// The key's life: the later of the lease's end and the record's expiry, plus the grace.
    life: u64,
    /// From the record's expiry to the key's end (`x`).
    expiry_to_end: u64,
    /// From the lease's end to the key's end (`y`).
    lease_to_end: u64,
}

impl ClaimDeadlines {
    fn new(lease: Duration, ttl: Duration) -> Self {
        let (lease, ttl) = (millis(lease), millis(ttl));
        let life = lease.max(ttl) + millis(EXPIRY_GRACE);
        Self { life, expiry_to_end: life - ttl, lease_to_end: life - lease }
    }
}

impl RedisStore {
    /// The keys of a record, in the layout the store writes.
    fn keys(&self, id: &RecordId) -> RecordKeys {
        RecordKeys::new(Layout::V3, &self.inner.prefix, id)
    }

    /// The keys the record had in the old layout.
    fn old_keys(&self, id: &RecordId) -> RecordKeys {
        RecordKeys::new(Layout::V2, &self.inner.prefix, id)
    }

    async fn bounded<T>(&self, operation: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        bounded(self.inner.timeout, operation).await
    }

    /// Refuses (or, when allowed, warns about) a master whose `maxmemory-policy` may evict records. Reads
    /// `INFO memory`, which managed services that rename `CONFIG` still answer.
    pub(super) async fn check_eviction_policy(&self, allow: bool) -> Result<(), StoreError> {
        let mut connection = self.inner.connection.clone();
        let mut command = redis::cmd("INFO");
        command.arg("memory");
        let answers = self.bounded(async { connection.on_every_master(command).await.map_err(failed) }).await?;
        for answer in answers {
            let info = match answer {
                Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Value::VerbatimString { text, .. } => text,
                Value::SimpleString(text) => text,
                _ => continue,
            };
            let Some(policy) = info.lines().find_map(|line| line.strip_prefix("maxmemory_policy:")) else { continue };
            let policy = policy.trim();
            if policy == "noeviction" {
                continue;
            }
            let message = format!(
                "Redis maxmemory-policy is {policy}: under memory pressure Redis deletes idempotency records and \
                 their handlers run again. Fix: CONFIG SET maxmemory-policy noeviction (and in redis.conf) on every \
                 master, or size maxmemory for the records"
            );
            if !allow {
                return Err(StoreError::new(StoreErrorKind::Unsupported, message));
            }
            tracing::warn!("{message} (started anyway: allow_evicting_policy)");
        }
        Ok(())
    }

    /// `WAIT` for the configured replicas on the master of `key`, after this connection's last write.
    async fn acknowledged(&self, key: &[u8]) -> Result<(), StoreError> {
        let Some(acks) = self.inner.replica_acks else { return Ok(()) };
        let mut command = redis::cmd("WAIT");
        command.arg(acks.replicas).arg(millis(acks.timeout));
        let mut connection = self.inner.connection.clone();
        let waiting = async { connection.on_master_of(key, command).await.map_err(failed) };
        let answer = bounded(acks.timeout + self.inner.timeout, waiting).await?;
        let acknowledged = usize::try_from(codec::int(answer)?).unwrap_or(0);
        if acknowledged < acks.replicas {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "{acknowledged} of {} replicas acknowledged the write within {} ms",
                    acks.replicas,
                    acks.timeout.as_millis()
                ),
            ));
        }
        Ok(())
    }

    /// The record, if it is completed and live, read with the key's `PTTL` and a plain `HMGET` in one round trip;
    /// `None` sends the claim to the script.
    ///
    /// A pipeline, not a transaction (`MULTI` would double the commands a replay costs Redis), so the two may
    /// see two records of the key. `PTTL` comes first so that this errs only towards the script: a completed record
    /// is only replaced once it expired, so a record still live at the `PTTL` is the one the `HMGET` reads, or it
    /// was replaced by a newer claim, which the `HMGET` then finds in progress (or completed just now: live).
    async fn replayable(&self, keys: &RecordKeys) -> Result<Option<Record>, StoreError> {
        let mut pipeline = redis::pipe();
        pipeline.cmd("PTTL").arg(keys.record());
        pipeline.cmd("HMGET").arg(keys.record()).arg("s").arg("f").arg("x").arg("st").arg("h").arg("b");
        let mut connection = self.inner.connection.clone();
        let replies = self
            .bounded(async { connection.pipeline_on_master_of(keys.record(), &pipeline).await.map_err(failed) })
            .await?;
        let [left, fields] = <[Value; 2]>::try_from(replies).map_err(|_| codec::corrupt("a replay read's replies"))?;
        let [state, fingerprint, to_key_end, status, headers, body] = codec::array(fields)?;
        if !matches!(&state, Value::BulkString(state) if state.as_slice() == b"c") {
            return Ok(None);
        }
        // A completed record expires `x` (the grace) before its key.
        if codec::int(left)? <= codec::int(to_key_end)? {
            return Ok(None);
        }
        codec::record([fingerprint, state, Value::Int(0), status, headers, body]).map(Some)
    }

    /// Releases a claim this attempt will not use; a failure leaves it to its lease.
    async fn release_or_log(&self, attempt: &Attempt) {
        if let Err(error) = self.release(attempt).await {
            tracing::warn!(%error, "could not release an unused idempotency claim; it is freed when its lease lapses");
        }
    }

    async fn waiters(&self) -> Result<Arc<Waiters>, StoreError> {
        let inner = &self.inner;
        let waiters = inner
            .waiters
            .get_or_try_init(|| async {
                let connecting = Waiters::connect(&inner.target, inner.timeout);
                bounded(inner.timeout, async { connecting.await.map_err(failed) }).await.map(Arc::new)
            })
            .await?;
        Ok(Arc::clone(waiters))
    }

    /// Reads the record at `key`; a `waiter` (subscribed already) marks an in-progress one, so that its completion
    /// or release publishes.
    async fn read_record(&self, key: &[u8], waiter: bool) -> Result<Option<Record>, StoreError> {
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.read.key(key);
        invocation.arg(if waiter { "1" } else { "0" });
        let reply: Value =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        match reply {
            Value::Nil => Ok(None),
            reply => codec::record(codec::array(reply)?).map(Some),
        }
    }

    /// The record of the old layout a claim must honour, judged as the claim script judges a record: `read.lua`
    /// leaves out an expired one, and a lapsed lease (nothing remaining) is taken over by the same request only.
    /// Not written: it ends by its own expiry, and a later claim finds the current layout's record behind it.
    async fn old_record(&self, request: &ClaimRequest) -> Result<OldRecord, StoreError> {
        let Some(record) = self.read_record(self.old_keys(&request.id).record(), false).await? else {
            return Ok(OldRecord::Absent);
        };
        let lapsed = matches!(record.state, RecordState::InProgress { lease_remaining } if lease_remaining.is_zero());
        Ok(if lapsed && record.fingerprint == request.fingerprint {
            OldRecord::LeaseLapsed
        } else {
            OldRecord::Live(record)
        })
    }

    /// The most recent live record of a (scope, key) in `layout`, from its index.
    async fn lookup_in(
        &self,
        layout: Layout,
        scope_hash: &Digest,
        key_hash: &Digest,
    ) -> Result<Option<KeyStatus>, StoreError> {
        let (index, record_prefix) = keys::index_and_record_prefix(layout, &self.inner.prefix, scope_hash, key_hash);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.lookup.key(&index);
        invocation.arg(&record_prefix);
        let reply: Value =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        if reply == Value::Nil {
            return Ok(None);
        }
        let (member, created_at, state) = codec::key_status(codec::array(reply)?)?;
        let (method, route) =
            keys::split_member(&member).ok_or_else(|| codec::corrupt("an index member is not `METHOD route`"))?;
        Ok(Some(KeyStatus { method, route, created_at, state }))
    }
}

/// Leaves a channel when the wait ends, also when the waiting request is cancelled.
struct Leaving {
    waiters: Arc<Waiters>,
    subscription: Option<Subscription>,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        let (Some(subscription), Ok(runtime)) = (self.subscription.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let waiters = Arc::clone(&self.waiters);
        runtime.spawn(async move { waiters.leave(subscription).await });
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let keys = self.keys(&request.id);
        // Mostly retries lately: one plain read answers a completed record (what a retry usually finds) without
        // the claim script; anything else goes to the script, which decides atomically on the server's clock.
        if self.inner.existing_share.mostly_existing()
            && let Some(record) = self.replayable(&keys).await?
        {
            return Ok(Claim::Existing(record));
        }
        // While records of the old layout may live, a live one answers the claim; nothing else writes it.
        let mut took_over_old = false;
        if self.inner.old_layout.open() {
            match self.old_record(request).await? {
                OldRecord::Absent => {}
                OldRecord::LeaseLapsed => took_over_old = true,
                OldRecord::Live(record) => {
                    self.inner.existing_share.record(true);
                    return Ok(Claim::Existing(record));
                }
            }
        }
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.claim.key(keys.record());
        if self.inner.status_lookups {
            invocation.key(keys.index());
        }
        let deadlines = ClaimDeadlines::new(request.lease, request.ttl);
        invocation
            .arg(request.fingerprint.as_slice())
            .arg(request.token)
            .arg(deadlines.life)
            .arg(deadlines.expiry_to_end)
            .arg(deadlines.lease_to_end);
        if self.inner.status_lookups {
            invocation.arg(keys.member());
        }
        let reply = self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await;
        let attempt = || Attempt { id: request.id.clone(), token: request.token };
        let reply: Value = match reply {
            Ok(reply) => reply,
            Err(error) => {
                // The script may still run (a slow or frozen node answers later): the release follows it on the
                // same connection, so a claim answered with 503 never lands and blocks the retry.
                self.release_or_log(&attempt()).await;
                return Err(error);
            }
        };
        let claim = match reply {
            Value::Array(items) if items.len() == 2 => {
                let [_, took_over]: [Value; 2] = items.try_into().map_err(|_| codec::corrupt("claim reply"))?;
                Claim::Acquired { took_over: took_over_old || codec::int(took_over)? == 1 }
            }
            reply @ Value::Array(_) => {
                let [_, fingerprint, state, remaining, status, headers, body] = codec::array(reply)?;
                Claim::Existing(codec::record([fingerprint, state, remaining, status, headers, body])?)
            }
            other => return Err(codec::corrupt(format!("unexpected claim reply {other:?}"))),
        };
        self.inner.existing_share.record(matches!(claim, Claim::Existing(_)));
        if matches!(claim, Claim::Acquired { .. })
            && let Err(error) = self.acknowledged(keys.record()).await
        {
            // Not durable enough to run the handler on: free the key for a retry, and answer 503.
            self.release_or_log(&attempt()).await;
            return Err(error);
        }
        Ok(claim)
    }

    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        let keys = self.keys(&attempt.id);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.heartbeat.key(keys.record());
        if self.inner.status_lookups {
            invocation.key(keys.index());
        }
        invocation.arg(attempt.token).arg(millis(duration)).arg(millis(EXPIRY_GRACE));
        let renewed: i64 =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        Ok(if renewed == 1 { LeaseState::Held } else { LeaseState::Lost })
    }

    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        let keys = self.keys(&attempt.id);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.complete.key(keys.record());
        if self.inner.status_lookups {
            invocation.key(keys.index());
        }
        invocation
            .arg(attempt.token)
            .arg(millis(ttl) + millis(EXPIRY_GRACE))
            .arg(millis(EXPIRY_GRACE))
            .arg(response.status.as_u16())
            .arg(codec::encode_headers(response))
            .arg(if response.body.is_some() { "1" } else { "0" })
            .arg(response.body.as_deref().unwrap_or_default())
            .arg(connection.publish_command())
            .arg(keys.channel());
        let stored: i64 =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        if stored != 1 {
            return Ok(Completion::Fenced);
        }
        self.acknowledged(keys.record()).await?;
        Ok(Completion::Stored)
    }

    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let keys = self.keys(&attempt.id);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.scripts.release.key(keys.record());
        if self.inner.status_lookups {
            invocation.key(keys.index());
        }
        invocation.arg(attempt.token).arg(keys.member()).arg(connection.publish_command()).arg(keys.channel());
        let _released: i64 =
            self.bounded(async { invocation.invoke_async(&mut connection).await.map_err(failed) }).await?;
        Ok(())
    }

    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        let record = self.read_record(self.keys(id).record(), false).await?;
        if record.is_none() && self.inner.old_layout.open() {
            return self.read_record(self.old_keys(id).record(), false).await;
        }
        Ok(record)
    }

    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        if !self.inner.status_lookups {
            return Err(StoreError::new(
                StoreErrorKind::Unsupported,
                "this RedisStore keeps no status-lookup index: build it with \
                 `RedisStoreBuilder::status_lookups(true)` (e.g. `RedisStore::node(url).status_lookups(true)`) in \
                 every process of the app",
            ));
        }
        let status = self.lookup_in(Layout::V3, scope_hash, key_hash).await?;
        if status.is_none() && self.inner.old_layout.open() {
            return self.lookup_in(Layout::V2, scope_hash, key_hash).await;
        }
        Ok(status)
    }

    async fn wait(&self, id: &RecordId, timeout: Duration) -> Result<(), StoreError> {
        let mut keys = self.keys(id);
        // The claim may have found a record of the old layout: an older release's process completes it and wakes
        // its waiters on that record's own channel.
        if self.inner.old_layout.open() && self.read_record(keys.record(), false).await?.is_none() {
            let old = self.old_keys(id);
            if self.read_record(old.record(), false).await?.is_some() {
                keys = old;
            }
        }
        let channel = keys.channel();
        let waiters = self.waiters().await?;
        let subscription = self.bounded(async { waiters.join(&channel).await.map_err(failed) }).await?;
        let notify = Arc::clone(&subscription.notify);
        let _leaving = Leaving { waiters, subscription: Some(subscription) };
        let woken = notify.notified();
        tokio::pin!(woken);
        // Subscribed (confirmed by the server) before the record is read: a completion from now on wakes this
        // waiter, and one before it shows in the read.
        woken.as_mut().enable();
        // A lapse publishes nothing, so the wait ends with the lease at the latest: a dead worker's record may then
        // be taken over by the waiter (the trait's promise).
        if let Some(Record { state: RecordState::InProgress { lease_remaining }, .. }) =
            self.read_record(keys.record(), true).await?
            && !lease_remaining.is_zero()
        {
            let _timed_out = tokio::time::timeout(timeout.min(lease_remaining), woken).await;
        }
        Ok(())
    }
    // `purge_batch` keeps the trait's default: Redis expires records itself, there is nothing to purge.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claims_deadlines_are_distances_to_the_keys_end() {
        let grace = millis(EXPIRY_GRACE);
        let (lease, ttl) = (Duration::from_secs(30), Duration::from_secs(3600));
        // The usual case: the ttl outlives the lease; the record expires the grace before its key.
        assert_eq!(
            ClaimDeadlines::new(lease, ttl),
            ClaimDeadlines { life: 3_600_000 + grace, expiry_to_end: grace, lease_to_end: 3_570_000 + grace }
        );
        // A lease longer than the ttl: the key lives until the lease's end, plus the grace.
        assert_eq!(
            ClaimDeadlines::new(ttl, lease),
            ClaimDeadlines { life: 3_600_000 + grace, expiry_to_end: 3_570_000 + grace, lease_to_end: grace }
        );
    }
}
