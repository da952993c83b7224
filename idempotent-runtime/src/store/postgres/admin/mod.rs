//! Operator queries over the `idempotency_records` table (PostgreSQL only): what is in flight, what is stuck, one
//! record, releasing a stuck one, and counts by state. The `idempotent-admin` binary (feature `cli`) is a thin
//! front end over this module; the functions are public so that an app can expose the same answers elsewhere.
//!
//! Every function takes the app's [`crate::PostgresStore`] and uses its pool, its table (the schema given to
//! [`crate::PostgresStore::with_schema`], else the connection's `search_path`) and its timeout; like the store's own,
//! the statements are unnamed, so they work through a transaction-mode pooler. Purging is
//! [`crate::store::purge::purge_expired`] on the same store.
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

mod queries;
mod report;
mod selector;

pub use self::queries::{
    OperatorStoreError, TableCheck, check_table, counts, list_in_flight, operator_store, release, show,
};
pub use self::report::{Counts, InFlight, InFlightPage, RecordDetails, Refusal, ReleaseOutcome, State};
pub use self::selector::{SCOPE_FORMS, Scope, ScopeParseError, Selector, key_hash};
