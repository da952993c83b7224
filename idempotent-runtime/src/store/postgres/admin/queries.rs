//! The operator queries of [`crate::admin`] on PostgreSQL: what is in flight, one record, releasing a stuck one,
//! and counts by state, as SQL over the store's table.

use std::time::{Duration, SystemTime};

use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::{Counts, InFlight, InFlightPage, RecordDetails, Refusal, ReleaseOutcome, Selector, State};
use crate::digest::Digest;
use crate::store::{PostgresStore, StoreError, StoreErrorKind};

const LIST_SQL: &str = "
SELECT route, method, key_hash, scope_hash, created_at, locked_until,
       greatest(0, extract(epoch FROM now() - created_at))::float8 AS age_secs,
       locked_until <= now() AS stuck,
       count(*) OVER () AS total
FROM {table}
WHERE state = 'in_progress' AND (locked_until > now() OR expires_at > now())
  AND (NOT $1 OR locked_until <= now())
ORDER BY created_at, key_hash, scope_hash, method, route
LIMIT $2";

/// `condition` names the states of [`crate::admin::State`] by the take-over rule of [`crate::store::claim_verdict`]:
/// in progress while the lease holds, stuck once it lapsed (a retry may take over), expired past `expires_at`.
const SHOW_SQL: &str = "
SELECT route, method, key_hash, scope_hash, token, status, created_at, completed_at, locked_until, expires_at,
       greatest(0, extract(epoch FROM now() - created_at))::float8 AS age_secs,
       greatest(0, extract(epoch FROM locked_until - now()))::float8 AS lease_secs,
       CASE
           WHEN state = 'completed' AND expires_at > now() THEN 'completed'
           WHEN state = 'completed' THEN 'expired'
           WHEN locked_until > now() THEN 'in_progress'
           WHEN expires_at > now() THEN 'stuck'
           ELSE 'expired'
       END AS condition,
       coalesce(header_names, '{}') AS header_names,
       octet_length(body)::bigint AS body_len
FROM {table}
WHERE key_hash = $1 AND scope_hash = $2 AND ($3::text IS NULL OR route = $3) AND ($4::text IS NULL OR method = $4)
ORDER BY route, method";

/// Deletes the record read by `SHOW_SQL` if it still carries the same token and (unless forced) is still stuck, and
/// wakes requests that wait for it, as a release by its owner does.
const RELEASE_SQL: &str = concat!(
    "
WITH done AS (
    DELETE FROM {table}
    WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5
      AND ($6 OR (state = 'in_progress' AND locked_until <= now() AND expires_at > now()))
    RETURNING has_waiters
), woken AS (
    SELECT pg_notify('",
    notify_channel!(),
    "', $7) FROM done WHERE has_waiters
)
SELECT (SELECT count(*) FROM done) AS changed, (SELECT count(*) FROM woken) AS woken"
);
// `woken` is referenced above on purpose: PostgreSQL skips a SELECT CTE nobody reads.

const COUNTS_SQL: &str = "
SELECT count(*) FILTER (WHERE state = 'in_progress' AND locked_until > now()) AS in_progress,
       count(*) FILTER (WHERE state = 'in_progress' AND locked_until <= now() AND expires_at > now()) AS stuck,
       count(*) FILTER (WHERE state = 'completed' AND expires_at > now()) AS completed,
       count(*) FILTER (WHERE (state = 'completed' AND expires_at <= now())
                           OR (state = 'in_progress' AND locked_until <= now() AND expires_at <= now())) AS expired
FROM {table}";

/// Lists records in progress that have not expired, oldest first, at most `limit` of them; with `stuck_only`, only
/// those whose lease lapsed.
///
/// # Errors
///
/// A [`StoreError`] when the database cannot be reached, the query fails, or a row does not decode.
pub async fn list_in_flight(store: &PostgresStore, stuck_only: bool, limit: usize) -> Result<InFlightPage, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = query(store, LIST_SQL, &[(&stuck_only, Type::BOOL), (&limit, Type::INT8)]).await?;
    let total = match rows.first() {
        Some(row) => count(row, "total")?,
        None => 0,
    };
    let records = rows
        .iter()
        .map(|row| {
            Ok(InFlight {
                route: row.try_get("route").map_err(decode_failed)?,
                method: row.try_get("method").map_err(decode_failed)?,
                key_hash: digest(row, "key_hash")?,
                scope_hash: digest(row, "scope_hash")?,
                created_at: row.try_get("created_at").map_err(decode_failed)?,
                locked_until: row.try_get("locked_until").map_err(decode_failed)?,
                age: seconds(row, "age_secs")?,
                stuck: row.try_get("stuck").map_err(decode_failed)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(InFlightPage { records, total })
}

/// Every record that matches the selector, expired ones included, ordered by route and method.
///
/// # Errors
///
/// A [`StoreError`] when the database cannot be reached, the query fails, or a row does not decode.
pub async fn show(store: &PostgresStore, selector: &Selector) -> Result<Vec<RecordDetails>, StoreError> {
    Ok(select(store, selector).await?.into_iter().map(|(details, _token)| details).collect())
}

/// Releases (deletes) the one record that matches the selector, so that the next request with its key runs the
/// handler; requests waiting for it are woken.
///
/// Only a [`State::Stuck`] record is released unless `force` is set: see [`Refusal`] for what forcing risks. A
/// forced release of a record whose handler still runs is safe for the table (that handler's completion is then
/// fenced and discarded), but its retry runs the handler a second time.
///
/// # Errors
///
/// A [`StoreError`] when the database cannot be reached or a statement fails. Finding nothing, finding several
/// records, or refusing to release one are not errors: they are [`ReleaseOutcome`]s.
pub async fn release(store: &PostgresStore, selector: &Selector, force: bool) -> Result<ReleaseOutcome, StoreError> {
    let mut matches = select(store, selector).await?;
    let (record, token) = match matches.len() {
        0 => return Ok(ReleaseOutcome::NotFound),
        1 => matches.remove(0),
        _ => return Ok(ReleaseOutcome::Ambiguous(matches.into_iter().map(|(details, _token)| details).collect())),
    };
    let refusal = match record.state {
        State::Stuck => None,
        State::InProgress => Some(Refusal::LeaseHolds { remaining: record.lease_remaining.unwrap_or_default() }),
        State::Completed => Some(Refusal::Completed),
        State::Expired => Some(Refusal::Expired),
    };
    if let Some(reason) = refusal
        && !force
    {
        return Ok(ReleaseOutcome::Refused { record, reason });
    }
    let id = record.id();
    let notification = crate::store::postgres::notify_payload(&id);
    let rows = query(
        store,
        RELEASE_SQL,
        &[
            (&id.key_hash, Type::BYTEA),
            (&id.scope_hash, Type::BYTEA),
            (&id.method, Type::TEXT),
            (&id.route, Type::TEXT),
            (&token, Type::INT8),
            (&force, Type::BOOL),
            (&notification, Type::TEXT),
        ],
    )
    .await?;
    let deleted = match rows.first() {
        Some(row) => count(row, "changed")? == 1,
        None => false,
    };
    Ok(if deleted {
        ReleaseOutcome::Released { record, forced: refusal.is_some() }
    } else {
        ReleaseOutcome::Changed { record }
    })
}

/// Counts the records in each [`State`] (one scan of the table).
///
/// # Errors
///
/// A [`StoreError`] when the database cannot be reached or the query fails.
pub async fn counts(store: &PostgresStore) -> Result<Counts, StoreError> {
    let rows = query(store, COUNTS_SQL, &[]).await?;
    let row = rows.first().ok_or_else(|| StoreError::new(StoreErrorKind::Corrupt, "the count returned no row"))?;
    Ok(Counts {
        in_progress: count(row, "in_progress")?,
        stuck: count(row, "stuck")?,
        completed: count(row, "completed")?,
        expired: count(row, "expired")?,
    })
}

async fn select(store: &PostgresStore, selector: &Selector) -> Result<Vec<(RecordDetails, i64)>, StoreError> {
    let rows = query(
        store,
        SHOW_SQL,
        &[
            (&selector.key_hash, Type::BYTEA),
            (&selector.scope_hash, Type::BYTEA),
            (&selector.route, Type::TEXT),
            (&selector.method, Type::TEXT),
        ],
    )
    .await?;
    rows.iter().map(details_from_row).collect()
}

fn details_from_row(row: &Row) -> Result<(RecordDetails, i64), StoreError> {
    let state = match row.try_get::<_, &str>("condition").map_err(decode_failed)? {
        "in_progress" => State::InProgress,
        "stuck" => State::Stuck,
        "completed" => State::Completed,
        _ => State::Expired,
    };
    let status: Option<i16> = row.try_get("status").map_err(decode_failed)?;
    let locked_until: Option<SystemTime> = row.try_get("locked_until").map_err(decode_failed)?;
    let lease_secs: Option<f64> = row.try_get("lease_secs").map_err(decode_failed)?;
    let body_len: Option<i64> = row.try_get("body_len").map_err(decode_failed)?;
    let details = RecordDetails {
        route: row.try_get("route").map_err(decode_failed)?,
        method: row.try_get("method").map_err(decode_failed)?,
        key_hash: digest(row, "key_hash")?,
        scope_hash: digest(row, "scope_hash")?,
        state,
        status: status.and_then(|status| u16::try_from(status).ok()),
        created_at: row.try_get("created_at").map_err(decode_failed)?,
        completed_at: row.try_get("completed_at").map_err(decode_failed)?,
        locked_until,
        expires_at: row.try_get("expires_at").map_err(decode_failed)?,
        age: seconds(row, "age_secs")?,
        lease_remaining: lease_secs.map(|secs| Duration::try_from_secs_f64(secs).unwrap_or_default()),
        header_names: row.try_get("header_names").map_err(decode_failed)?,
        body_len: body_len.and_then(|len| usize::try_from(len).ok()),
    };
    Ok((details, row.try_get("token").map_err(decode_failed)?))
}

/// Why [`operator_store`] could not make a store.
#[derive(Debug)]
pub enum OperatorStoreError {
    /// The URL does not parse as a PostgreSQL URL (the parser's message).
    InvalidUrl(String),
    /// The pool could not be set up (its message).
    Pool(String),
}

impl std::fmt::Display for OperatorStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidUrl(message) => write!(f, "not a PostgreSQL URL ({message})"),
            Self::Pool(message) => write!(f, "could not set up a connection pool: {message}"),
        }
    }
}

impl std::error::Error for OperatorStoreError {}

/// A store for an operator tool: a pool of its own of `max_size` connections on `url` (a 5 s connect timeout
/// unless the URL sets one), on the table in `schema`, else in the connection's search path. Nothing connects
/// yet: [`check_table`] is the first contact. The schema is named in every statement, so the URL may name a
/// transaction-mode pooler.
///
/// # Errors
///
/// [`OperatorStoreError`] when the URL does not parse or the pool cannot be set up.
pub fn operator_store(url: &str, schema: Option<&str>, max_size: usize) -> Result<PostgresStore, OperatorStoreError> {
    use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

    let mut config: tokio_postgres::Config =
        url.parse().map_err(|error: tokio_postgres::Error| OperatorStoreError::InvalidUrl(error.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let manager =
        Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(|error| OperatorStoreError::Pool(error.to_string()))?;
    let store = PostgresStore::new(pool);
    Ok(match schema {
        Some(schema) => store.with_schema(schema),
        None => store,
    })
}

/// Where the store's table was looked for, and whether it is there: an operator tool checks it before its first
/// query, to answer "no table" rather than a failed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    /// The table exists where the store's statements name it.
    pub present: bool,
    /// The connection's `search_path` (where an unqualified table is looked for).
    pub search_path: String,
}

/// Whether the store's table exists (in its schema, else in the connection's search path).
///
/// # Errors
///
/// A [`StoreError`] when no connection can be had or the server fails.
pub async fn check_table(store: &PostgresStore) -> Result<TableCheck, StoreError> {
    let table = store.table().qualified_name();
    let rows = query(store, CHECK_TABLE_SQL, &[(&table, Type::TEXT)]).await?;
    let row =
        rows.first().ok_or_else(|| StoreError::new(StoreErrorKind::Corrupt, "the table check returned no row"))?;
    Ok(TableCheck {
        present: row.try_get("present").map_err(decode_failed)?,
        search_path: row.try_get("path").map_err(decode_failed)?,
    })
}

const CHECK_TABLE_SQL: &str = "SELECT to_regclass($1) IS NOT NULL AS present, current_setting('search_path') AS path";

/// Runs one of this module's statements on the store's table, under the store's timeout.
async fn query(
    store: &PostgresStore,
    template: &str,
    params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
) -> Result<Vec<Row>, StoreError> {
    let sql = store.table().render(template);
    store
        .bounded(async {
            let client = store.pool().get().await.map_err(crate::store::postgres::statement::pool_failed)?;
            crate::store::postgres::statement::query_in(
                &client,
                crate::store::postgres::statement::StatementMode::Unnamed,
                &sql,
                params,
            )
            .await
            .map_err(|error| crate::store::postgres::statement::failed(StoreErrorKind::Unavailable, error))
        })
        .await
}

fn digest(row: &Row, column: &str) -> Result<Digest, StoreError> {
    let bytes: Vec<u8> = row.try_get(column).map_err(decode_failed)?;
    bytes.try_into().map_err(|_| StoreError::new(StoreErrorKind::Corrupt, format!("{column} is not 32 bytes")))
}

fn seconds(row: &Row, column: &str) -> Result<Duration, StoreError> {
    let secs: f64 = row.try_get(column).map_err(decode_failed)?;
    Ok(Duration::try_from_secs_f64(secs).unwrap_or_default())
}

fn count(row: &Row, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column).map_err(decode_failed)?;
    Ok(u64::try_from(value).unwrap_or(0))
}

fn decode_failed(error: tokio_postgres::Error) -> StoreError {
    crate::store::postgres::statement::failed(StoreErrorKind::Corrupt, error)
}
