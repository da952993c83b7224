//! [`OutboxRelay`]: ships committed outbox rows to a broker through a [`Publisher`], and marks them sent once the
//! broker confirmed them. See the [module](super) docs for the guarantees.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::types::Type;

use super::wake::Wake;
use super::{MessageId, OutgoingMessage, PublishError, Publisher, backlog};
use crate::observe;
use crate::store::postgres::statement::{Param, failed};
use crate::store::postgres::{TransactionConnection, rollback};
use crate::store::{PostgresStore, StoreError, StoreErrorKind};

/// Rows claimed per pass unless [`RelayBuilder::batch_size`] says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// How often a running relay looks for rows when no notification woke it, unless
/// [`RelayBuilder::poll_interval`] says otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long sent rows are kept before the relay deletes them, unless [`RelayBuilder::retention`] says otherwise:
/// 24 hours, the inbox's default ttl ([`crate::DEFAULT_TTL`]). While a key's rows are kept, a request that uses
/// the key again after its record expired enqueues under new ids ([`crate::Tx::enqueue`]); after that, under the
/// first ids again, which a consumer's inbox would still absorb if it remembered them.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// How long the relay waits for a batch's confirms. Past it, every message of the batch counts as failed (its
/// fate is unknown: it is sent again later, and the consumer's inbox absorbs the copy if the first one arrived).
/// The batch's rows stay locked meanwhile, so the wait is bounded.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// The first retry of a failed message waits this long; each further failure doubles the wait, up to
/// [`MAX_RETRY_BACKOFF`].
pub const FIRST_RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts of a failing message.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// Rows deleted per statement of the purge of sent rows.
const PURGE_BATCH: i64 = 1000;
/// Purge statements per purge round at most (the next round continues).
const PURGE_ROUNDS: usize = 10;
/// How often a running relay purges sent rows and refreshes the backlog gauges.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// Ships committed outbox rows to a broker; several relays (in one process or many) may run at once on one
/// table. Build it with [`OutboxRelay::builder`], then spawn [`OutboxRelay::run`]. While a batch is out, the relay
/// holds one connection of the store's pool (its transaction holds the batch's rows); a running relay also keeps
/// one direct `LISTEN` connection.
///
/// ```no_run
/// use std::time::Duration;
///
/// use idempotent_runtime::PostgresStore;
/// use idempotent_runtime::outbox::{OutboxRelay, Publisher};
///
/// // `publisher`: `amqp::AmqpPublisher::connect(url).await?` (feature `amqp`), `nats::NatsPublisher` (feature
/// // `nats`), or your own.
/// fn start_relay(store: &PostgresStore, publisher: impl Publisher + 'static) {
///     let relay = OutboxRelay::builder(store, publisher).poll_interval(Duration::from_secs(5)).build();
///     tokio::spawn(async move { relay.run().await });
/// }
/// ```
#[derive(Clone)]
pub struct OutboxRelay {
    store: PostgresStore,
    publisher: Arc<dyn Publisher>,
    batch_size: usize,
    poll_interval: Duration,
    retention: Duration,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("store", &self.store)
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// The settings of an [`OutboxRelay`]; from [`OutboxRelay::builder`].
pub struct RelayBuilder {
    relay: OutboxRelay,
}

impl std::fmt::Debug for RelayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayBuilder").field("relay", &self.relay).finish()
    }
}

/// What one pass of the relay did ([`OutboxRelay::relay_once`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayedBatch {
    /// Messages the broker confirmed, now marked sent.
    pub sent: usize,
    /// Messages that failed (refused, or unconfirmed); they are tried again after a backoff.
    pub failed: usize,
}

impl RelayBuilder {
    /// Rows claimed (and published) per pass, default [`DEFAULT_BATCH_SIZE`]; at least 1.
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.relay.batch_size = n.max(1);
        self
    }

    /// How often [`OutboxRelay::run`] looks for rows when no notification woke it (default
    /// [`DEFAULT_POLL_INTERVAL`]); also when failed messages are retried at the latest, after their backoff.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.relay.poll_interval = interval;
        self
    }

    /// Sent rows are deleted by [`OutboxRelay::run`] this long after they were sent (default
    /// [`DEFAULT_RETENTION`]), in batches.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.relay.retention = retention;
        self
    }

    /// The relay.
    pub fn build(self) -> OutboxRelay {
        self.relay
    }
}

impl OutboxRelay {
    /// A relay of `store`'s outbox (the table in the store's schema, through its pool, under its timeout) to
    /// `publisher`.
    pub fn builder(store: &PostgresStore, publisher: impl Publisher + 'static) -> RelayBuilder {
        RelayBuilder {
            relay: Self {
                store: store.clone(),
                publisher: Arc::new(publisher),
                batch_size: DEFAULT_BATCH_SIZE,
                poll_interval: DEFAULT_POLL_INTERVAL,
                retention: DEFAULT_RETENTION,
            },
        }
    }

    /// Relays until the future is dropped: a pass ([`OutboxRelay::relay_once`]) whenever a transaction that
    /// enqueued commits (woken by `NOTIFY` on one dedicated `LISTEN` connection made with the store's
    /// [`PostgresStore::with_listener`] configuration, which must reach PostgreSQL directly, as for waits), and
    /// every `poll_interval` as the fallback; at once again after a full batch. Between passes it deletes sent rows
    /// past their retention and refreshes the backlog gauges (see the [module](super) docs for the metrics).
    ///
    /// Store and broker errors are logged (warnings) and retried; it never returns. Dropping the future in the
    /// middle of a batch rolls its claim back: those rows are sent again by the next pass of any relay.
    pub async fn run(&self) -> Infallible {
        let mut wake = Wake::new(self.store.listener_config().cloned());
        let mut housekept: Option<Instant> = None;
        loop {
            wake.ensure_listening(self.poll_interval).await;
            // Only a full batch that the broker took calls for the next one at once: after failures (a broker
            // that is down) the relay waits for a commit or its poll, rather than retrying back to back.
            let full = match self.relay_once().await {
                Ok(batch) => batch.failed == 0 && batch.sent >= self.batch_size,
                Err(error) => {
                    tracing::warn!(%error, "the outbox relay could not claim or settle a batch; it tries again");
                    false
                }
            };
            if housekept.is_none_or(|at| at.elapsed() >= HOUSEKEEPING_EVERY) {
                housekept = Some(Instant::now());
                self.housekeeping().await;
            }
            if !full {
                wake.wait(self.poll_interval).await;
            }
        }
    }

    /// One pass: in one transaction, claims at most `batch_size` due unsent rows (those of destinations no other
    /// relay holds, oldest first), publishes them, marks the confirmed ones sent and the others failed (attempts,
    /// last error, next attempt after a backoff), and commits.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the database could not be reached or a statement failed within the store's timeout;
    /// the transaction is rolled back then, so rows published in this pass are sent again by a later one.
    pub async fn relay_once(&self) -> Result<RelayedBatch, StoreError> {
        let deadline = tokio::time::Instant::now() + self.store.timeout();
        let connection = TransactionConnection::new(self.store.connection(deadline).await?);
        let batch = match tokio::time::timeout_at(deadline, self.claim(&connection)).await {
            Ok(Ok(batch)) => batch,
            Ok(Err(error)) => {
                self.roll_back(connection).await;
                return Err(error);
            }
            // The transaction's state is unknown: `connection` is closed (not pooled) when dropped here.
            Err(_) => return Err(timed_out("claiming outbox rows")),
        };
        if batch.is_empty() {
            self.roll_back(connection).await;
            return Ok(RelayedBatch::default());
        }
        let results = self.publish(&batch).await;
        let outcome = Outcome::of(&batch, results);
        match tokio::time::timeout(self.store.timeout(), self.settle(&connection, &outcome)).await {
            Ok(Ok(())) => drop(connection.into_pooled()),
            Ok(Err(error)) => {
                self.roll_back(connection).await;
                return Err(error);
            }
            Err(_) => return Err(timed_out("marking outbox rows sent")),
        }
        outcome.report();
        Ok(RelayedBatch { sent: outcome.sent.len(), failed: outcome.failed.len() })
    }

    /// Deletes rows sent longer than the retention ago, in batches; returns how many. [`OutboxRelay::run`] calls it
    /// every second or so.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when a delete failed or timed out.
    pub async fn purge_sent(&self) -> Result<u64, StoreError> {
        let statements = self.store.outbox_statements();
        let retention = self.retention.as_secs_f64();
        let mut deleted = 0;
        for _ in 0..PURGE_ROUNDS {
            let params: [Param<'_>; 2] = [(&retention, Type::FLOAT8), (&PURGE_BATCH, Type::INT8)];
            let batch = self.store.execute(&statements.purge, &params).await?;
            deleted += batch;
            if batch < PURGE_BATCH.unsigned_abs() {
                break;
            }
        }
        if deleted > 0 {
            tracing::debug!(deleted, "purged sent outbox rows");
        }
        Ok(deleted)
    }

    async fn housekeeping(&self) {
        if let Err(error) = self.purge_sent().await {
            tracing::warn!(%error, "the outbox relay could not purge sent rows");
        }
        match backlog(&self.store).await {
            Ok(backlog) => backlog.record(),
            Err(error) => tracing::warn!(%error, "the outbox relay could not measure the backlog"),
        }
    }

    /// Rolls the batch's transaction back, within the store's timeout: a connection that does not answer (a
    /// half-open socket) is closed instead, which ends the transaction on the server as well, rather than holding
    /// the relay until TCP gives up.
    async fn roll_back(&self, connection: TransactionConnection) {
        let _ = tokio::time::timeout(self.store.timeout(), rollback(connection)).await;
    }

    /// `BEGIN`, the destinations' locks, and the rows: all inside the transaction, statements unnamed.
    async fn claim(&self, client: &deadpool_postgres::Client) -> Result<Vec<OutgoingMessage>, StoreError> {
        let statements = self.store.outbox_statements();
        let limit = i64::try_from(self.batch_size).unwrap_or(i64::MAX);
        let lock_params: [Param<'_>; 1] = [(&limit, Type::INT8)];
        let (begun, locked) = futures_util::future::join(
            client.batch_execute("BEGIN"),
            client.query_typed(&statements.lock_destinations, &lock_params),
        )
        .await;
        begun.map_err(unavailable)?;
        let destinations: Vec<String> =
            locked.map_err(unavailable)?.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>().map_err(corrupt)?;
        if destinations.is_empty() {
            return Ok(Vec::new());
        }
        let claim_params: [Param<'_>; 2] = [(&destinations, Type::TEXT_ARRAY), (&limit, Type::INT8)];
        let rows = client.query_typed(&statements.claim, &claim_params).await.map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let names: Vec<String> = row.try_get("header_names")?;
                let values: Vec<String> = row.try_get("header_values")?;
                Ok(OutgoingMessage {
                    id: MessageId::from_stored(row.try_get("id")?),
                    destination: row.try_get("destination")?,
                    payload: row.try_get("payload")?,
                    headers: names.into_iter().zip(values).collect(),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(corrupt)
    }

    /// The publisher's answers, one per message, within [`PUBLISH_TIMEOUT`].
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        let mut results = match tokio::time::timeout(PUBLISH_TIMEOUT, self.publisher.publish(batch)).await {
            Ok(results) => results,
            Err(_) => {
                let unknown = format!("no confirm within {} s", PUBLISH_TIMEOUT.as_secs());
                return batch.iter().map(|_| Err(PublishError::new(unknown.as_str()))).collect();
            }
        };
        one_per_message(&mut results, batch.len());
        results
    }

    /// Marks the batch's rows sent or failed, and commits.
    async fn settle(&self, client: &deadpool_postgres::Client, outcome: &Outcome<'_>) -> Result<(), StoreError> {
        let statements = self.store.outbox_statements();
        if !outcome.sent.is_empty() {
            let ids: Vec<&str> = outcome.sent.iter().map(|message| message.id.as_str()).collect();
            client.execute_typed(&statements.mark_sent, &[(&ids, Type::TEXT_ARRAY)]).await.map_err(unavailable)?;
        }
        if !outcome.failed.is_empty() {
            let ids: Vec<&str> = outcome.failed.iter().map(|(message, _)| message.id.as_str()).collect();
            let errors: Vec<&str> = outcome.failed.iter().map(|(_, error)| error.message()).collect();
            let (first, max) = (FIRST_RETRY_BACKOFF.as_secs_f64(), MAX_RETRY_BACKOFF.as_secs_f64());
            let params: [Param<'_>; 4] =
                [(&ids, Type::TEXT_ARRAY), (&errors, Type::TEXT_ARRAY), (&first, Type::FLOAT8), (&max, Type::FLOAT8)];
            client.execute_typed(&statements.mark_failed, &params).await.map_err(unavailable)?;
        }
        client.batch_execute("COMMIT").await.map_err(unavailable)
    }
}

/// A batch's messages split by the publisher's answers.
struct Outcome<'a> {
    sent: Vec<&'a OutgoingMessage>,
    failed: Vec<(&'a OutgoingMessage, PublishError)>,
}

impl<'a> Outcome<'a> {
    fn of(batch: &'a [OutgoingMessage], results: Vec<Result<(), PublishError>>) -> Self {
        let mut outcome = Self { sent: Vec::new(), failed: Vec::new() };
        for (message, result) in batch.iter().zip(results) {
            match result {
                Ok(()) => outcome.sent.push(message),
                Err(error) => outcome.failed.push((message, error)),
            }
        }
        outcome
    }

    /// Counters per destination, a debug line per batch, a warning per destination that had failures.
    fn report(&self) {
        let mut sent: BTreeMap<&str, u64> = BTreeMap::new();
        for message in &self.sent {
            *sent.entry(message.destination.as_str()).or_default() += 1;
        }
        for (destination, count) in &sent {
            metrics::counter!(observe::OUTBOX_SENT, "destination" => destination.to_string()).increment(*count);
        }
        let mut failed: BTreeMap<&str, (u64, &PublishError)> = BTreeMap::new();
        for (message, error) in &self.failed {
            failed.entry(message.destination.as_str()).or_insert((0, error)).0 += 1;
        }
        for (destination, (count, error)) in &failed {
            metrics::counter!(observe::OUTBOX_FAILED, "destination" => destination.to_string()).increment(*count);
            tracing::warn!(
                destination,
                failed = count,
                %error,
                "outbox messages were not confirmed by the broker; they are tried again after a backoff"
            );
        }
        tracing::debug!(sent = self.sent.len(), failed = self.failed.len(), "relayed an outbox batch");
    }
}

/// Makes `results` one per message: a publisher that answered for fewer messages failed the others (their fate is
/// unknown), and answers beyond the batch are dropped.
fn one_per_message(results: &mut Vec<Result<(), PublishError>>, messages: usize) {
    results.truncate(messages);
    while results.len() < messages {
        results.push(Err(PublishError::new("the publisher gave no result for this message")));
    }
}

fn unavailable(error: tokio_postgres::Error) -> StoreError {
    failed(StoreErrorKind::Unavailable, error)
}

fn corrupt(error: tokio_postgres::Error) -> StoreError {
    failed(StoreErrorKind::Corrupt, error)
}

fn timed_out(doing: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Timeout, format!("no answer from PostgreSQL in time while {doing}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> OutgoingMessage {
        OutgoingMessage {
            id: MessageId::from_stored(id.to_owned()),
            destination: "d".to_owned(),
            payload: Vec::new(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_message_without_a_result_failed() {
        let mut results = vec![Ok(())];
        one_per_message(&mut results, 3);
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_err());
        let mut extra = vec![Ok(()), Ok(()), Ok(())];
        one_per_message(&mut extra, 2);
        assert_eq!(extra.len(), 2);
    }

    #[test]
    fn the_outcome_splits_the_batch_by_answer() {
        let batch = [message("a"), message("b"), message("c")];
        let outcome = Outcome::of(&batch, vec![Ok(()), Err(PublishError::new("nack")), Ok(())]);
        let sent: Vec<&str> = outcome.sent.iter().map(|message| message.id.as_str()).collect();
        assert_eq!(sent, ["a", "c"]);
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!((outcome.failed[0].0.id.as_str(), outcome.failed[0].1.message()), ("b", "nack"));
    }
}
