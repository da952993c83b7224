//! How the PostgreSQL store sends its statements, so that they work through a transaction-mode pooler
//! (PgBouncer, RDS Proxy, Supavisor):
//!
//! - by default ([`StatementMode::Shared`], [`shared`]) each statement is prepared once per backend under a name
//!   derived from its text, and run with `EXECUTE`: planned once, and correct whichever backend a round trip
//!   reaches;
//! - inside a transaction, for a stored response ([`StatementMode::binding_arguments`]), and on request
//!   ([`StatementMode::Unnamed`]), statements are sent unnamed with their parameter types in one round trip
//!   (`Parse`/`Bind`/`Execute`/`Sync`): nothing outlives the round trip, and the server plans them every time;
//! - a named statement prepared once per connection ([`StatementMode::Prepared`], tokio-postgres'
//!   `prepare_cached`) breaks behind such a pooler, where the next round trip may reach another backend; it stays
//!   an opt-in for direct connections.
//!
//! Errors keep what the server said: the SQLSTATE and its message, not tokio-postgres' bare `db error`.

use std::fmt;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::store::{StoreError, StoreErrorKind};

mod literal;
mod shared;

/// One statement parameter and its PostgreSQL type (an unnamed statement is not described before it runs).
pub(crate) type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// How statements reach the server; see [`crate::PostgresStore::with_unnamed_statements`] and
/// [`crate::PostgresStore::with_prepared_statements`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum StatementMode {
    /// Prepared once per backend under a name derived from the text, run with `EXECUTE`: correct through any
    /// pooler, outside explicit transactions.
    #[default]
    Shared,
    /// Unnamed statements: correct through any pooler, inside a transaction too.
    Unnamed,
    /// Named statements prepared once per connection: direct connections only.
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

/// Runs a statement and returns its rows.
pub(crate) async fn query(
    client: &ClientWrapper,
    mode: StatementMode,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    match mode {
        StatementMode::Shared => shared::query(client, sql, params).await,
        StatementMode::Unnamed => client.query_typed(sql, params).await,
        StatementMode::Prepared => {
            let statement = client.prepare_typed_cached(sql, &types(params)).await?;
            client.query(&statement, &values(params)).await
        }
    }
}

/// Runs a statement and returns the number of rows it changed.
pub(crate) async fn execute(
    client: &ClientWrapper,
    mode: StatementMode,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, tokio_postgres::Error> {
    match mode {
        StatementMode::Shared => shared::execute(client, sql, params).await,
        StatementMode::Unnamed => client.execute_typed(sql, params).await,
        StatementMode::Prepared => {
            let statement = client.prepare_typed_cached(sql, &types(params)).await?;
            client.execute(&statement, &values(params)).await
        }
    }
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

impl fmt::Display for PostgresError {
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
