//! Which way a store sends its statements: the way its owner set, or, by default, named statements once the
//! [`probe`](super::probe) found that they work on the pool's connections, and the pooler-safe way for good once
//! the probe or a statement's failure shows a transaction-mode pooler that does not track them.

use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Pool;
use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;

use super::StatementMode;
use super::probe::{self, Finding};

/// The way a store sends statements, shared by its clones.
#[derive(Debug, Default)]
pub(crate) struct StatementChoice {
    /// Set by the store's owner; `None` detects.
    set: Option<StatementMode>,
    /// The probe's verdict (detecting stores only), once it ran.
    probed: OnceCell<StatementMode>,
    /// A named statement failed the way it does behind a pooler that does not track statements.
    switched: AtomicBool,
}

impl StatementChoice {
    /// The way `mode` sets, with no probe and no switch.
    pub(crate) fn fixed(mode: StatementMode) -> Self {
        Self { set: Some(mode), ..Self::default() }
    }

    /// The way statements go now, probing the pool's connections first if no probe ran yet. A probe that could
    /// not reach the server decides nothing, and the next statement probes again.
    pub(crate) async fn mode(&self, pool: &Pool) -> Result<StatementMode, deadpool_postgres::PoolError> {
        if let Some(mode) = self.set {
            return Ok(mode);
        }
        if self.switched.load(Ordering::Relaxed) {
            return Ok(StatementMode::Shared);
        }
        let probed = self.probed.get_or_try_init(async || probe::probe(pool).await.map(decide)).await?;
        Ok(if self.switched.load(Ordering::Relaxed) { StatementMode::Shared } else { *probed })
    }

    /// The way statements go now, for a caller that already holds a connection (the probe ran before its claim);
    /// the pooler-safe way if no probe ran.
    pub(crate) fn settled(&self) -> StatementMode {
        match (self.set, self.switched.load(Ordering::Relaxed), self.probed.get()) {
            (Some(mode), _, _) => mode,
            (None, false, Some(mode)) => *mode,
            (None, _, _) => StatementMode::Shared,
        }
    }

    /// After a statement sent in `mode` failed with the SQLSTATE `sqlstate`: whether that was a named statement meeting a pooler
    /// that does not track statements. Such a failure had no effect (the server refused the name before running
    /// anything), so the caller may send the statement again the pooler-safe way, which every later statement
    /// takes too. Says so once, naming the setting.
    pub(crate) fn switched_by(&self, mode: StatementMode, sqlstate: Option<&str>) -> bool {
        let Some(sqlstate) = sqlstate.filter(|code| POOLER_SYMPTOMS.iter().any(|symptom| symptom.code() == *code))
        else {
            return false;
        };
        if self.set.is_some() || mode != StatementMode::Prepared {
            return false;
        }
        if !self.switched.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                sqlstate,
                "a named statement failed the way it does behind a transaction-mode pooler that does not track \
                 prepared statements (PgBouncer 1.20 or older): idempotency statements now use the pooler-safe \
                 way; PostgresStore::with_pooler_safe_statements() selects it from the start"
            );
        }
        true
    }
}

/// The mode a detecting store takes after its probe, said in the log: a warning where the pooler-safe way is
/// chosen, since every statement then costs more (and a backend's first use of each logs an error).
fn decide(finding: Finding) -> StatementMode {
    match finding {
        Finding::Direct | Finding::TrackingPooler => {
            tracing::debug!(?finding, "idempotency statements are named, prepared once per connection");
            StatementMode::Prepared
        }
        Finding::NonTrackingPooler(evidence) => {
            tracing::warn!(
                %evidence,
                "the pool's connections go through a transaction-mode pooler that does not track prepared \
                 statements (PgBouncer 1.20 or older): idempotency statements use the pooler-safe way; \
                 PostgresStore::with_pooler_safe_statements() selects it without this probe"
            );
            StatementMode::Shared
        }
        Finding::Unknown(reason) => {
            tracing::warn!(
                %reason,
                "could not tell whether the pool's connections may use named statements: idempotency statements \
                 use the pooler-safe way; PostgresStore::with_prepared_statements() selects named statements"
            );
            StatementMode::Shared
        }
    }
}

/// A named statement's failures that a transaction-mode pooler without statement tracking causes: the name is
/// unknown on the backend reached (`26000`), was already taken there by another client (`42P05`), or names
/// another client's statement with another number of parameters (`08P01`).
const POOLER_SYMPTOMS: [SqlState; 3] =
    [SqlState::INVALID_SQL_STATEMENT_NAME, SqlState::DUPLICATE_PSTATEMENT, SqlState::PROTOCOL_VIOLATION];
