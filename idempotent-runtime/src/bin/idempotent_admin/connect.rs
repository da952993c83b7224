//! The CLI's connection: a small pool on the operator's URL, checked before the first query (the server answers,
//! the table exists), with messages that say how to fix what is wrong.

use idempotent_runtime::admin;
use idempotent_runtime::{PostgresStore, StoreErrorKind};

use crate::{Failure, START_POSTGRES};

/// A store on a small pool on the URL, checked: the server answers and the table exists (in `--schema`, else in
/// the connection's search path). The schema is named in every statement, never set on the connection, so the URL
/// may name a transaction-mode pooler (PgBouncer).
pub(crate) async fn connect(url: &str, schema: Option<&str>) -> Result<PostgresStore, Failure> {
    let shown = redact(url);
    if schema.is_some_and(str::is_empty) {
        return Err(Failure::Usage("--schema needs a schema name".to_owned()));
    }
    let store = admin::operator_store(url, schema, 2).map_err(|error| match error {
        admin::OperatorStoreError::InvalidUrl(message) => Failure::Usage(format!(
            "--database-url {shown} is not a PostgreSQL URL ({message}); expected e.g. postgres://user@host:5432/db"
        )),
        other => Failure::Usage(other.to_string()),
    })?;
    let check = admin::check_table(&store).await.map_err(|error| match error.kind() {
        StoreErrorKind::Unavailable | StoreErrorKind::Timeout if error.sqlstate().is_none() => Failure::Usage(format!(
            "cannot connect to PostgreSQL at {shown}: {}\n\
             Is the server running? Start the local one with\n    {START_POSTGRES}\n\
             or name a server that accepts connections with --database-url URL (or DATABASE_URL).",
            error_chain(&error)
        )),
        _ => Failure::Usage(format!("PostgreSQL at {shown} failed: {}", error_chain(&error))),
    })?;
    if !check.present {
        let place = match schema {
            Some(schema) => format!("schema {schema:?}"),
            None => format!("search_path {:?}", check.search_path),
        };
        return Err(Failure::Usage(format!(
            "no idempotency_records table in {place} at {shown}: pass --schema with the schema the app uses, or \
             create the table (PostgresStore::migrate(), or idempotent-runtime/sql/schema.sql)"
        )));
    }
    Ok(store)
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.split_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// An error with its causes, e.g. "error connecting to server: Connection refused (os error 111)".
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
