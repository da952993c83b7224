//! How far behind the relays are: [`backlog`] for the whole outbox, [`backlog_by_destination`] per destination
//! (the admin CLI's `outbox` subcommand).

use std::time::Duration;

use crate::observe;
use crate::store::postgres::statement::failed;
use crate::store::{PostgresStore, StoreError, StoreErrorKind};

/// The unsent rows of an outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// Rows committed and not yet confirmed by the broker.
    pub waiting: u64,
    /// The age of the oldest of them (since its enqueue); `None` when nothing waits.
    pub oldest_unsent: Option<Duration>,
    /// Rows whose last attempt failed (they wait for their next attempt).
    pub failing: u64,
}

impl Backlog {
    /// Sets the gauges [`observe::OUTBOX_WAITING`] and [`observe::OUTBOX_OLDEST_UNSENT_SECONDS`].
    pub(crate) fn record(&self) {
        metrics::gauge!(observe::OUTBOX_WAITING).set(self.waiting as f64);
        metrics::gauge!(observe::OUTBOX_OLDEST_UNSENT_SECONDS)
            .set(self.oldest_unsent.map_or(0.0, |age| age.as_secs_f64()));
    }
}

/// The unsent rows of one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationBacklog {
    /// The routing key or subject.
    pub destination: String,
    /// Rows committed and not yet confirmed.
    pub waiting: u64,
    /// The age of the oldest of them.
    pub oldest_unsent: Duration,
    /// Rows whose last attempt failed.
    pub failing: u64,
    /// The broker's answer to the most recently enqueued failing row, if any fails.
    pub last_error: Option<String>,
}

/// The backlog of `store`'s outbox, for metrics, the admin CLI and tests. A running relay also sets it as gauges
/// about once a second.
///
/// # Errors
///
/// A [`StoreError`] when the query failed or timed out (the table is missing: run [`PostgresStore::migrate`]).
pub async fn backlog(store: &PostgresStore) -> Result<Backlog, StoreError> {
    let rows = store.query(&store.outbox_statements().backlog, &[]).await?;
    let row = rows.first().ok_or_else(|| StoreError::new(StoreErrorKind::Corrupt, "the backlog query gave no row"))?;
    let waiting: i64 = row.try_get("waiting").map_err(corrupt)?;
    let oldest: Option<f64> = row.try_get("oldest_secs").map_err(corrupt)?;
    let failing: i64 = row.try_get("failing").map_err(corrupt)?;
    Ok(Backlog { waiting: waiting.unsigned_abs(), oldest_unsent: oldest.map(age), failing: failing.unsigned_abs() })
}

/// The backlog per destination (destinations with unsent rows only), by destination name.
///
/// # Errors
///
/// As [`backlog`].
pub async fn backlog_by_destination(store: &PostgresStore) -> Result<Vec<DestinationBacklog>, StoreError> {
    let rows = store.query(&store.outbox_statements().backlog_by_destination, &[]).await?;
    rows.iter()
        .map(|row| {
            let waiting: i64 = row.try_get("waiting")?;
            let oldest: f64 = row.try_get("oldest_secs")?;
            let failing: i64 = row.try_get("failing")?;
            Ok(DestinationBacklog {
                destination: row.try_get("destination")?,
                waiting: waiting.unsigned_abs(),
                oldest_unsent: age(oldest),
                failing: failing.unsigned_abs(),
                last_error: row.try_get("last_error")?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(corrupt)
}

/// Seconds as a duration; a negative age (clock skew between the server's transactions) is zero.
fn age(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or_default()
}

fn corrupt(error: tokio_postgres::Error) -> StoreError {
    failed(StoreErrorKind::Corrupt, error)
}
