//! How the PostgreSQL store sends its statements:
//!
//! - by default ([`StatementMode::Prepared`] once the [`probe`] allowed it) each statement is prepared once per
//!   connection under a name (tokio-postgres' `prepare_typed_cached`), what every tokio-postgres application does:
//!   planned once, and correct on a direct connection and behind a pooler that tracks protocol-level prepared
//!   statements (PgBouncer >= 1.21 with `max_prepared_statements`);
//! - behind a transaction-mode pooler that does not track them, found by the probe or by a named statement's
//!   failure ([`choice`]), or on request, statements go the pooler-safe way ([`StatementMode::Shared`],
//!   [`shared`]): prepared once per backend with SQL `PREPARE` under a name derived from their text, and run with
//!   `EXECUTE`;
//! - inside a transaction and for a stored response on the pooler-safe way
//!   ([`StatementMode::binding_arguments`]), and on request ([`StatementMode::Unnamed`]), statements are sent
//!   unnamed with their parameter types in one round trip (`Parse`/`Bind`/`Execute`/`Sync`): nothing outlives
//!   the round trip, and the server plans them every time.
//!
//! Errors keep what the server said: the SQLSTATE and its message, not tokio-postgres' bare `db error`.

use std::fmt;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

use crate::store::{StoreError, StoreErrorKind};

mod choice;
mod literal;
mod probe;
mod shared;

pub(crate) use self::choice::StatementChoice;

/// One statement parameter and its PostgreSQL type (an unnamed statement is not described before it runs).
pub(crate) type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// How statements reach the server; see [`crate::PostgresStore::with_pooler_safe_statements`],
/// [`crate::PostgresStore::with_unnamed_statements`] and [`crate::PostgresStore::with_prepared_statements`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatementMode {
    /// Prepared once per backend under a name derived from the text, run with `EXECUTE`: correct through any
    /// pooler, outside explicit transactions.
    Shared,
    /// Unnamed statements: correct through any pooler, inside a transaction too.
    Unnamed,
    /// Named statements prepared once per connection: on a direct connection, or behind a pooler that tracks
    /// them.
    Prepared,
}

impl StatementMode {
    /// The mode for a statement whose arguments must be bound, not written into its text: shared statements are
    /// sent unnamed then. Two kinds of statement need it:
    ///
    /// - those inside an explicit transaction, which a statement the backend does not know would abort;
    /// - those carrying a stored response (headers, body): PostgreSQL logs the text of a failed statement (a
    ///   backend's first `EXECUTE` of a name fails by design) and shows it in `pg_stat_activity`, while bound
    ///   values are not logged on error by default (`log_parameter_max_length_on_error = 0`).
    pub(crate) fn binding_arguments(self) -> Self {
        match self {
            Self::Shared => Self::Unnamed,
            mode => mode,
        }
    }
}

/// Runs a statement in `mode` and returns its rows. A named statement that met a pooler without statement
/// tracking ran nothing: it switches `choice`, and is sent again the way `choice` now gives (as `adapt` adapts it).
pub(crate) async fn query(
    client: &ClientWrapper,
    choice: &StatementChoice,
    mode: StatementMode,
    adapt: fn(StatementMode) -> StatementMode,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    match query_in(client, mode, sql, params).await {
        Err(error) if choice.switched_by(mode, sqlstate(&error)) => {
            query_in(client, adapt(choice.settled()), sql, params).await
        }
        rows => rows,
    }
}

/// Runs a statement in `mode` and returns the number of rows it changed; sent again as [`query`] says.
pub(crate) async fn execute(
    client: &ClientWrapper,
    choice: &StatementChoice,
    mode: StatementMode,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, tokio_postgres::Error> {
    match execute_in(client, mode, sql, params).await {
        Err(error) if choice.switched_by(mode, sqlstate(&error)) => {
            execute_in(client, choice.settled(), sql, params).await
        }
        changed => changed,
    }
}

/// Runs a statement in `mode` and returns its rows.
pub(crate) async fn query_in(
    client: &ClientWrapper,
    mode: StatementMode,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    match mode {
        StatementMode::Shared => shared::query(client, sql, params).await,
        StatementMode::Unnamed => client.query_typed(sql, params).await,
        StatementMode::Prepared => {
            let types = types(params);
            let named = async { client.query(&client.prepare_typed_cached(sql, &types).await?, &values(params)).await };
            match named.await {
                Err(error) if is_stale_plan(&error) => {
                    let again =
                        async { client.query(&prepare_again(client, sql, &types).await?, &values(params)).await };
                    match again.await {
                        Err(again) if is_stale_plan(&again) => client.query_typed(sql, params).await,
                        // Inside a transaction the refusal aborted it: the caller may start it again.
                        Err(again) if again.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => Err(error),
                        rows => rows,
                    }
                }
                rows => rows,
            }
        }
    }
}

/// Runs a statement in `mode` and returns the number of rows it changed.
pub(crate) async fn execute_in(
    client: &ClientWrapper,
    mode: StatementMode,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, tokio_postgres::Error> {
    match mode {
        StatementMode::Shared => shared::execute(client, sql, params).await,
        StatementMode::Unnamed => client.execute_typed(sql, params).await,
        StatementMode::Prepared => {
            let types = types(params);
            let named =
                async { client.execute(&client.prepare_typed_cached(sql, &types).await?, &values(params)).await };
            match named.await {
                Err(error) if is_stale_plan(&error) => {
                    let again =
                        async { client.execute(&prepare_again(client, sql, &types).await?, &values(params)).await };
                    match again.await {
                        Err(again) if is_stale_plan(&again) => client.execute_typed(sql, params).await,
                        // Inside a transaction the refusal aborted it: the caller may start it again.
                        Err(again) if again.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => Err(error),
                        changed => changed,
                    }
                }
                changed => changed,
            }
        }
    }
}

/// Prepares a named statement on this connection unless it already is (other modes prepare nothing ahead), so
/// that running it then sends its `Bind` at once: for a statement pipelined with another one, such as a
/// completion with its `COMMIT`, which must reach the server in the order they were written.
pub(crate) async fn prepare_ahead(
    client: &ClientWrapper,
    mode: StatementMode,
    sql: &str,
    params: &[Param<'_>],
) -> Result<(), tokio_postgres::Error> {
    if mode == StatementMode::Prepared {
        client.prepare_typed_cached(sql, &types(params)).await?;
    }
    Ok(())
}

/// The SQLSTATE of a server's error.
pub(crate) fn sqlstate(error: &tokio_postgres::Error) -> Option<&str> {
    error.code().map(SqlState::code)
}

/// `cached plan must not change result type`: a migration changed a result column's type under a named
/// statement, which the backend then refuses for as long as it lives. Matched by code, not by the message, which
/// the server translates. The refused statement ran nothing.
pub(crate) fn is_stale_plan(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
}

/// Forgets a named statement this connection cached and prepares it afresh (under a new name: dropping the old
/// statement closes its name on the server). Behind a pooler that tracks prepared statements the new name may
/// still reach the backend's stale statement (PgBouncer shares one server-side statement per text): the caller
/// then sends that request unnamed.
async fn prepare_again(
    client: &ClientWrapper,
    sql: &str,
    types: &[Type],
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    drop(client.statement_cache.remove(sql, types));
    client.prepare_typed_cached(sql, types).await
}

fn types(params: &[Param<'_>]) -> Vec<Type> {
    params.iter().map(|(_, ty)| ty.clone()).collect()
}

fn values<'a>(params: &[Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|(value, _)| *value).collect()
}

/// A [`StoreError`] of `kind` that says what went wrong in PostgreSQL's own words.
pub(crate) fn failed(kind: StoreErrorKind, error: tokio_postgres::Error) -> StoreError {
    StoreError::new(kind, PostgresError(error))
}

/// A pool that could not hand out a connection, with the server's reason when it has one.
pub(crate) fn pool_failed(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Timeout(_) => StoreError::new(StoreErrorKind::Timeout, error),
        deadpool_postgres::PoolError::Backend(error) => failed(StoreErrorKind::Unavailable, error),
        error => StoreError::new(StoreErrorKind::Unavailable, error),
    }
}

/// A tokio-postgres error whose text carries the server's SQLSTATE and message (or the underlying I/O error),
/// which tokio-postgres' own `Display` leaves out.
#[derive(Debug)]
struct PostgresError(tokio_postgres::Error);

/// What went wrong in PostgreSQL's own words (the SQLSTATE and message, or the I/O error), for a log line.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    Described(error).to_string()
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Described(&self.0).fmt(f)
    }
}

/// Writes a tokio-postgres error with the server's SQLSTATE and message, or its chain of causes.
struct Described<'a>(&'a tokio_postgres::Error);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            write!(f, "SQLSTATE {}: {}: {}", db.code().code(), db.severity(), db.message())?;
            if let Some(detail) = db.detail() {
                write!(f, " (detail: {detail})")?;
            }
            return Ok(());
        }
        write!(f, "{}", self.0)?;
        let mut cause = std::error::Error::source(&self.0);
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl std::error::Error for PostgresError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// PostgreSQL's part of [`StoreError`].
impl StoreError {
    /// The SQLSTATE of the PostgreSQL error behind this one, if the server answered with an error (e.g.
    /// `"57P01"` when an administrator shut the backend down). The error's text carries it too, with the
    /// server's message.
    pub fn sqlstate(&self) -> Option<&str> {
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            if let Some(db) = error.downcast_ref::<tokio_postgres::error::DbError>() {
                return Some(db.code().code());
            }
            cause = error.source();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_their_cause() {
        // A closed port: the connection error carries the operating system's reason.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let error = runtime
            .block_on(tokio_postgres::connect("postgres://nobody@127.0.0.1:1/none", tokio_postgres::NoTls))
            .err()
            .expect("nothing listens on port 1");
        let text = failed(StoreErrorKind::Unavailable, error).to_string();
        assert!(text.starts_with("idempotency store unavailable: error connecting to server: "), "{text}");
        assert!(text.len() > "idempotency store unavailable: error connecting to server: ".len(), "{text}");
    }
}
