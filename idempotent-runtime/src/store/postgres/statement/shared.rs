//! The pooler-safe statement mode (`with_pooler_safe_statements()`, or what the default finds behind a pooler that
//! does not track prepared statements): each statement is prepared once per backend with SQL `PREPARE`, under a name
//! derived from its text, and run with `EXECUTE name(<arguments as literals>)`.
//!
//! An unnamed statement is parsed and planned on every request; that was 2.4× PostgreSQL's CPU per replay and
//! the library's largest cost (BENCHMARKS.md). A prepared statement skips both, but tokio-postgres' named
//! statements (`s0`, `s1`, ...) break behind a transaction-mode pooler: the next round trip may reach another
//! backend, where the name is unknown or, worse, names another connection's statement. Here the name is a digest
//! of the statement's text and parameter types, so on any backend it can only mean this statement, and every
//! connection that reaches the backend shares it. A backend that does not have it yet answers `26000`: the
//! statement is then prepared (on whichever backend the pooler picks; `42P05` means it already was) and this one
//! request runs unnamed, which is correct anywhere. Each backend thus learns each statement once.
//!
//! Only for statements in their own implicit transaction (inside an explicit one, a `26000` would abort the
//! transaction) whose arguments may appear in the server's log (not a stored response): the others are sent
//! unnamed ([`super::StatementMode::binding_arguments`]).

use std::fmt::Write as _;

use deadpool_postgres::ClientWrapper;
use sha2::{Digest as _, Sha256};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::Param;
use super::literal;

/// Arguments longer than this are bound to an unnamed statement instead: a literal doubles a value's bytes and the
/// server's parser would scan them. (Stored responses are always bound: `StatementMode::binding_arguments`.)
const MAX_LITERAL_BYTES: usize = 64 * 1024;

/// One statement run under its shared name.
struct Call<'a> {
    name: String,
    /// `EXECUTE name(...)` with this request's arguments.
    execute: String,
    /// The parameters' types, as `PREPARE` lists them.
    types: String,
    sql: &'a str,
}

impl<'a> Call<'a> {
    /// `None` when an argument cannot be written as a literal (unknown type, too long).
    fn new(sql: &'a str, params: &[Param<'_>]) -> Option<Self> {
        let mut types = Vec::with_capacity(params.len());
        for (_, ty) in params {
            types.push(literal::type_name(ty)?);
        }
        let types = types.join(", ");
        let digest = Sha256::new().chain_update(sql).chain_update([0]).chain_update(&types).finalize();
        let mut name = String::from("idempotent_");
        for byte in &digest[..16] {
            write!(name, "{byte:02x}").ok()?;
        }
        let mut execute = format!("EXECUTE {name}");
        if !params.is_empty() {
            execute.push('(');
            for (index, (value, ty)) in params.iter().enumerate() {
                if index > 0 {
                    execute.push_str(", ");
                }
                literal::write(*value, ty, &mut execute, MAX_LITERAL_BYTES)?;
            }
            execute.push(')');
        }
        Some(Self { name, execute, types, sql })
    }

    /// `PREPARE name(types) AS sql`, written only for a backend that lacks the statement.
    fn prepare(&self) -> String {
        let Self { name, types, sql, .. } = self;
        if types.is_empty() { format!("PREPARE {name} AS {sql}") } else { format!("PREPARE {name}({types}) AS {sql}") }
    }
}

/// Runs a statement and returns its rows.
pub(super) async fn query(
    client: &ClientWrapper,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let Some(call) = Call::new(sql, params) else { return client.query_typed(sql, params).await };
    match client.query_typed(&call.execute, &[]).await {
        Err(error) => {
            recover(client, &call, error).await?;
            client.query_typed(sql, params).await
        }
        rows => rows,
    }
}

/// Runs a statement and returns the number of rows it changed.
pub(super) async fn execute(
    client: &ClientWrapper,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, tokio_postgres::Error> {
    let Some(call) = Call::new(sql, params) else { return client.execute_typed(sql, params).await };
    match client.execute_typed(&call.execute, &[]).await {
        Err(error) => {
            recover(client, &call, error).await?;
            client.execute_typed(sql, params).await
        }
        changed => changed,
    }
}

/// After an `EXECUTE` failed: makes the backend learn the statement when it did not know it, forgets it when its
/// plan went stale, and returns any other error as it is. The failed `EXECUTE` changed nothing, so the caller
/// then runs the statement unnamed, which is correct on any backend.
async fn recover(
    client: &ClientWrapper,
    call: &Call<'_>,
    error: tokio_postgres::Error,
) -> Result<(), tokio_postgres::Error> {
    match error.code() {
        Some(code) if *code == SqlState::INVALID_SQL_STATEMENT_NAME => {
            match client.batch_execute(&call.prepare()).await {
                // Already prepared on the backend this round trip reached (a pooler picks one per transaction).
                Err(error) if error.code() == Some(&SqlState::DUPLICATE_PSTATEMENT) => Ok(()),
                // The server or a proxy refused `PREPARE`: this request runs unnamed all the same.
                Err(error) if error.as_db_error().is_some() => {
                    warn_once_prepare_refused(&error);
                    Ok(())
                }
                result => result,
            }
        }
        // `cached plan must not change result type` (a migration changed a result column's type): the backend
        // would refuse the name for as long as it lives. Behind a pooler the `DEALLOCATE` may reach another
        // backend, which may not know the name: whatever it answers, this request runs unnamed, and the stale
        // backend is asked again the next time a request meets it. Matched by code, not by the message, which
        // the server translates.
        Some(code) if *code == SqlState::FEATURE_NOT_SUPPORTED => {
            if let Err(error) = client.batch_execute(&format!("DEALLOCATE {}", call.name)).await
                && error.as_db_error().is_none()
            {
                return Err(error);
            }
            Ok(())
        }
        _ => Err(error),
    }
}

/// Says once per process that `PREPARE` is refused: every statement then pays a failed round trip first.
fn warn_once_prepare_refused(error: &tokio_postgres::Error) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        let reason = error.as_db_error().map(|db| format!("SQLSTATE {}: {}", db.code().code(), db.message()));
        tracing::warn!(
            reason = reason.as_deref().unwrap_or("unknown"),
            "the server refused SQL PREPARE: idempotency statements run unnamed after a failed EXECUTE each time; \
             PostgresStore::with_unnamed_statements() sends them unnamed directly"
        );
    });
}

#[cfg(test)]
mod tests {
    use tokio_postgres::types::Type;

    use super::*;

    #[test]
    fn a_name_belongs_to_one_text_and_one_list_of_types() {
        let key = vec![1_u8, 2];
        let call = Call::new("SELECT $1", &[(&key, Type::BYTEA)]).unwrap();
        assert_eq!(call.name.len(), "idempotent_".len() + 32);
        assert_eq!(call.execute, format!("EXECUTE {}(E'\\\\x0102'::bytea)", call.name));
        assert_eq!(call.prepare(), format!("PREPARE {}(bytea) AS SELECT $1", call.name));
        let as_text = Call::new("SELECT $1", &[(&"a", Type::TEXT)]).unwrap();
        let other_text = Call::new("SELECT $1 ", &[(&key, Type::BYTEA)]).unwrap();
        assert_ne!(as_text.name, call.name);
        assert_ne!(other_text.name, call.name);
        assert_eq!(Call::new("SELECT $1", &[(&vec![9_u8], Type::BYTEA)]).unwrap().name, call.name);
    }

    #[test]
    fn long_or_unknown_arguments_are_bound_instead() {
        let body = vec![0_u8; MAX_LITERAL_BYTES];
        assert!(Call::new("SELECT $1", &[(&body, Type::BYTEA)]).is_none());
        assert!(Call::new("SELECT $1", &[(&1.5_f32, Type::FLOAT4)]).is_none());
        assert_eq!(
            Call::new("SELECT 1", &[]).unwrap().prepare(),
            format!("PREPARE {} AS SELECT 1", Call::new("SELECT 1", &[]).unwrap().name)
        );
    }
}
