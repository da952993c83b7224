//! Operator queries over the `idempotency_records` table (PostgreSQL only): what is in flight, what is stuck, one
//! record, releasing a stuck one, and counts by state. The `idempotent-admin` binary (feature `cli`) is a thin
//! front end over this module; the functions are public so that an app can expose the same answers elsewhere.
//!
//! Every function takes the app's [`PostgresStore`] and uses its pool, its table (the schema given to
//! [`PostgresStore::with_schema`], else the connection's `search_path`) and its timeout; like the store's own,
//! the statements are unnamed, so they work through a transaction-mode pooler. Purging is
//! [`crate::purge::purge_expired`] on the same store.
//!
//! Records are stored under digests, never raw values: [`key_hash`] and [`Scope::hash`] compute them exactly as a
//! request does, so an operator can look a record up by the key a client sent and the scope it was sent in.
//!
//! The states, as [`counts`] groups them and as the store itself decides:
//!
//! - **in progress**: a handler runs (or ran) and its lease holds; no other request may take the record;
//! - **stuck**: in progress with a lapsed lease, i.e. its worker died or the store failed when the response was
//!   stored; a retry of the same request takes it over, or [`release`] frees it for any request;
//! - **completed**: its response is replayed until it expires;
//! - **expired**: treated as absent by every read and overwritten by the next claim; a purge deletes it.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::digest::{Digest, hash_parts, to_hex};
use crate::record::RecordId;
use crate::store::{PostgresStore, StoreError, StoreErrorKind};

/// The digest under which a key is stored: `key` is the unquoted key (as [`crate::IdempotencyKey::as_str`] gives
/// it; parse a raw header value with [`crate::IdempotencyKey::parse`] first).
pub fn key_hash(key: &str) -> Digest {
    crate::record_id::key_digest(key)
}

/// A scope value as a request resolves it, to compute the digest it is stored under.
///
/// The textual form (`FromStr` and `Display`) is the operator's: `user:<id>`, `global`, `header:<Name>=<value>`
/// or `function:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `scope = "user"`: the id the app's user resolver returned.
    User(String),
    /// `scope = "global"`.
    Global,
    /// `scope = "header:Name"`: the header's name (any case) and the value the request carried.
    Header {
        /// The header's name; compared case-insensitively, as HTTP does.
        name: String,
        /// The header's value, byte for byte.
        value: String,
    },
    /// `scope = path::to_fn`: the value the function returned.
    Function(String),
}

/// The scope forms [`Scope::from_str`] accepts, for error messages and help texts.
pub const SCOPE_FORMS: &str = "user:<id>, global, header:<Name>=<value>, function:<value>";

impl Scope {
    /// The digest under which records of this scope are stored (the same as the runtime's, kind included, so that
    /// user `42` and tenant `42` stay apart).
    pub fn hash(&self) -> Digest {
        match self {
            Self::User(user) => hash_parts(&[b"user", user.as_bytes()]),
            Self::Global => hash_parts(&[b"global"]),
            Self::Header { name, value } => {
                hash_parts(&[b"header", name.to_ascii_lowercase().as_bytes(), value.as_bytes()])
            }
            Self::Function(value) => hash_parts(&[b"function", value.as_bytes()]),
        }
    }
}

/// A scope selector that does not parse; its message lists the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeParseError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for ScopeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid scope {:?}: {}; expected one of: {SCOPE_FORMS}", self.input, self.reason)
    }
}

impl std::error::Error for ScopeParseError {}

impl FromStr for Scope {
    type Err = ScopeParseError;

    /// Parses `user:<id>`, `global`, `header:<Name>=<value>` or `function:<value>`. Values are taken verbatim
    /// (they may contain `:` and `=`); ids and header names may not be empty.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| ScopeParseError { input: input.to_owned(), reason };
        if input == "global" {
            return Ok(Self::Global);
        }
        let (kind, value) = input.split_once(':').ok_or_else(|| error("no kind before a `:`"))?;
        match kind {
            "user" if value.is_empty() => Err(error("the user id is empty")),
            "user" => Ok(Self::User(value.to_owned())),
            "global" => Err(error("`global` takes no value")),
            "header" => {
                let (name, value) = value.split_once('=').ok_or_else(|| error("a header scope needs `Name=value`"))?;
                let valid_name = !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_graphic() && byte != b':');
                if !valid_name {
                    return Err(error("the header name is empty or not a header name"));
                }
                Ok(Self::Header { name: name.to_owned(), value: value.to_owned() })
            }
            "function" => Ok(Self::Function(value.to_owned())),
            _ => Err(error("unknown kind")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(user) => write!(f, "user:{user}"),
            Self::Global => f.write_str("global"),
            Self::Header { name, value } => write!(f, "header:{name}={value}"),
            Self::Function(value) => write!(f, "function:{value}"),
        }
    }
}

/// Which records [`show`] and [`release`] act on: a key and a scope (as digests), optionally narrowed to one route
/// and method when the same key was used on several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// See [`key_hash`].
    pub key_hash: Digest,
    /// See [`Scope::hash`].
    pub scope_hash: Digest,
    /// The route pattern, e.g. `/payments/{id}`, compared exactly.
    pub route: Option<String>,
    /// The method, e.g. `POST`, compared exactly.
    pub method: Option<String>,
}

impl Selector {
    /// Selects the records of `key` in `scope`, on any route and method.
    pub fn new(key: &str, scope: &Scope) -> Self {
        Self { key_hash: key_hash(key), scope_hash: scope.hash(), route: None, method: None }
    }
}

/// Where a record stands, as the store decides it (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// In progress, lease holding.
    InProgress,
    /// In progress, lease lapsed, not expired.
    Stuck,
    /// Completed, not expired.
    Completed,
    /// Expired (either state): absent for every read.
    Expired,
}

impl State {
    /// A stable lowercase name: `in_progress`, `stuck`, `completed`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Stuck => "stuck",
            Self::Completed => "completed",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record in progress, as [`list_in_flight`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The route pattern.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The key's digest ([`to_hex`] for display).
    pub key_hash: Digest,
    /// The scope's digest.
    pub scope_hash: Digest,
    /// When the current attempt claimed the record.
    pub created_at: SystemTime,
    /// When its lease lapses (or lapsed).
    pub locked_until: SystemTime,
    /// Time since `created_at`, by the database's clock.
    pub age: Duration,
    /// Whether the lease lapsed ([`State::Stuck`]).
    pub stuck: bool,
}

/// A page of [`list_in_flight`]: the oldest records first, and how many matched in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightPage {
    /// At most the requested number of records, oldest first.
    pub records: Vec<InFlight>,
    /// How many records matched, beyond the limit too.
    pub total: u64,
}

/// Everything an operator may see of one record (never its fingerprint or fencing token, and not the body bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDetails {
    /// The route pattern.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The key's digest.
    pub key_hash: Digest,
    /// The scope's digest.
    pub scope_hash: Digest,
    /// Where it stands.
    pub state: State,
    /// The stored status, once completed.
    pub status: Option<u16>,
    /// When the current attempt claimed the record.
    pub created_at: SystemTime,
    /// When the response was stored.
    pub completed_at: Option<SystemTime>,
    /// End of the lease, while in progress.
    pub locked_until: Option<SystemTime>,
    /// When the record expires.
    pub expires_at: SystemTime,
    /// Time since `created_at`, by the database's clock.
    pub age: Duration,
    /// Time left on the lease (zero once lapsed), while in progress.
    pub lease_remaining: Option<Duration>,
    /// The stored response's header names, in order.
    pub header_names: Vec<String>,
    /// The stored body's length; `None` while in progress, or when the body was over the response cap.
    pub body_len: Option<usize>,
}

impl RecordDetails {
    /// The record's full identity.
    pub fn id(&self) -> RecordId {
        RecordId {
            key_hash: self.key_hash,
            scope_hash: self.scope_hash,
            method: self.method.clone(),
            route: self.route.clone(),
        }
    }
}

/// Records per state, as [`counts`] finds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// [`State::InProgress`].
    pub in_progress: u64,
    /// [`State::Stuck`].
    pub stuck: u64,
    /// [`State::Completed`].
    pub completed: u64,
    /// [`State::Expired`]: what a purge would delete now.
    pub expired: u64,
}

/// Why [`release`] left a record alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The lease still holds: the handler may still be running, and releasing would let a retry run it twice.
    LeaseHolds {
        /// Until the lease lapses and the record becomes stuck.
        remaining: Duration,
    },
    /// The response is stored: releasing means the next retry runs the handler again instead of replaying it.
    Completed,
    /// The record expired: it is already absent for every request, and a purge deletes it.
    Expired,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LeaseHolds { remaining } => write!(
                f,
                "the record is in progress and its lease holds for another {:.1}s: its handler may still be running",
                remaining.as_secs_f64()
            ),
            Self::Completed => f.write_str(
                "the record is completed: releasing it makes the next retry run the handler again instead of \
                 replaying the stored response",
            ),
            Self::Expired => f.write_str("the record expired: it is already ignored, and a purge deletes it"),
        }
    }
}

/// What [`release`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The record was deleted: the next request with its key runs the handler.
    Released {
        /// The record as it was before.
        record: RecordDetails,
        /// Whether `force` was needed (the record was not stuck).
        forced: bool,
    },
    /// The record was left alone; pass `force` to release it anyway.
    Refused {
        /// The record as it is.
        record: RecordDetails,
        /// Why.
        reason: Refusal,
    },
    /// No record matches.
    NotFound,
    /// Several records match (the key was used on several routes or methods); narrow the selector.
    Ambiguous(Vec<RecordDetails>),
    /// The record changed between reading and deleting it (completed, taken over or released meanwhile): nothing
    /// was deleted; look again.
    Changed {
        /// The record as it was read.
        record: RecordDetails,
    },
}

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
const RELEASE_SQL: &str = "
WITH done AS (
    DELETE FROM {table}
    WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5
      AND ($6 OR (state = 'in_progress' AND locked_until <= now() AND expires_at > now()))
    RETURNING has_waiters
), woken AS (
    SELECT pg_notify('idempotency_records', $7) FROM done WHERE has_waiters
)
SELECT (SELECT count(*) FROM done) AS changed, (SELECT count(*) FROM woken) AS woken";
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
    let notification = to_hex(&id.digest());
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

/// Runs one of this module's statements on the store's table, under the store's timeout.
async fn query(
    store: &PostgresStore,
    template: &str,
    params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
) -> Result<Vec<Row>, StoreError> {
    let sql = store.table().render(template);
    store
        .bounded(async {
            let client = store.pool().get().await.map_err(crate::store::pool_failed)?;
            crate::store::postgres_query(&client, crate::store::StatementMode::Unnamed, &sql, params)
                .await
                .map_err(|error| crate::store::postgres_failed(StoreErrorKind::Unavailable, error))
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
    crate::store::postgres_failed(StoreErrorKind::Corrupt, error)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::HttpRequest;
    use actix_web::test::TestRequest;

    use super::*;
    use crate::scope::{ScopeSpec, UserResolver};

    fn tenant(request: &HttpRequest) -> Option<String> {
        request.headers().get("x-tenant")?.to_str().ok().map(str::to_owned)
    }

    #[test]
    fn parses_every_form() {
        assert_eq!("user:alice".parse(), Ok(Scope::User("alice".to_owned())));
        assert_eq!("user:a:b=c".parse(), Ok(Scope::User("a:b=c".to_owned())));
        assert_eq!("global".parse(), Ok(Scope::Global));
        assert_eq!(
            "header:X-Tenant-Id=acme=1".parse(),
            Ok(Scope::Header { name: "X-Tenant-Id".to_owned(), value: "acme=1".to_owned() })
        );
        assert_eq!(
            "header:X-Tenant-Id=".parse(),
            Ok(Scope::Header { name: "X-Tenant-Id".to_owned(), value: String::new() })
        );
        assert_eq!("function:t-42".parse(), Ok(Scope::Function("t-42".to_owned())));
        for scope in ["user:alice", "global", "header:X-Tenant-Id=acme", "function:t-42"] {
            assert_eq!(scope.parse::<Scope>().unwrap().to_string(), scope);
        }
    }

    #[test]
    fn refuses_malformed_selectors_listing_the_forms() {
        for bad in [
            "",
            "alice",
            "user",
            "user:",
            "tenant:42",
            "global:x",
            "header:X-Tenant",
            "header:=v",
            "header:a b=v",
            "User:x",
        ] {
            let error = bad.parse::<Scope>().unwrap_err().to_string();
            assert!(error.contains(SCOPE_FORMS), "{bad:?}: {error}");
            assert!(error.contains(&format!("{bad:?}")), "{bad:?}: {error}");
        }
    }

    #[test]
    fn hashes_as_the_runtime_resolves() {
        let request = TestRequest::default()
            .insert_header(("Authorization", "alice"))
            .insert_header(("X-Tenant", "acme"))
            .to_http_request();
        let resolver: UserResolver =
            Arc::new(|request| request.headers().get("authorization")?.to_str().ok().map(str::to_owned));
        let runtime = |spec: ScopeSpec| spec.resolve(&request, Some(&resolver)).unwrap();
        assert_eq!(Scope::User("alice".to_owned()).hash(), runtime(ScopeSpec::User));
        assert_eq!(Scope::Global.hash(), runtime(ScopeSpec::Global));
        // The macro lowercases the header name; the operator may write it in any case.
        let header = Scope::Header { name: "X-Tenant".to_owned(), value: "acme".to_owned() };
        assert_eq!(header.hash(), runtime(ScopeSpec::Header("x-tenant")));
        assert_eq!(Scope::Function("acme".to_owned()).hash(), runtime(ScopeSpec::Function(tenant)));
        assert_ne!(Scope::User("acme".to_owned()).hash(), Scope::Function("acme".to_owned()).hash());
    }
}
