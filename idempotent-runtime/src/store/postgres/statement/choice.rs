//! Which way a store sends its statements: the way its owner set, or, by default, named statements once the
//! [`probe`](super::probe) found that they work on the pool's connections, and the pooler-safe way for good once
//! the probe or a statement's failure shows a transaction-mode pooler that does not track them.
//!
//! The probe runs in the background from the store's first statement on; until it has answered, statements are
//! sent unnamed, which is correct on any connection and logs nothing. So no request waits for the probe, and a
//! pool too busy to lend the probe a second connection at once delays only the choice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

use super::StatementMode;
use super::probe::{self, Finding};

/// How long after a probe that decided nothing the next one may start.
const PROBE_RETRY: Duration = Duration::from_secs(1);

/// The way a store sends statements, shared by its clones.
#[derive(Debug, Default)]
pub(crate) struct StatementChoice {
    /// Set by the store's owner; `None` detects.
    set: Option<StatementMode>,
    /// The probe's verdict (detecting stores only), once it answered.
    probed: OnceLock<StatementMode>,
    /// A probe is running.
    probing: AtomicBool,
    /// When a probe that decided nothing may run again.
    next_probe: Mutex<Option<Instant>>,
    /// A named statement failed the way it does behind a pooler that does not track statements.
    switched: AtomicBool,
}

impl StatementChoice {
    /// The way `mode` sets, with no probe and no switch.
    pub(crate) fn fixed(mode: StatementMode) -> Self {
        Self { set: Some(mode), ..Self::default() }
    }

    /// The way statements go now. Until the probe answered (it starts on the first call, in the background, on
    /// `pool`), statements go unnamed. A probe that could not reach the server decides nothing, and a later
    /// statement starts another.
    pub(crate) fn mode(self: &std::sync::Arc<Self>, pool: &Pool) -> StatementMode {
        let mode = self.settled();
        if self.set.is_none() && self.probed.get().is_none() && self.probe_due() {
            self.start_probe(pool);
        }
        mode
    }

    /// Whether a probe may start now (none runs, and the last one that decided nothing is a second old); marks it
    /// running.
    fn probe_due(&self) -> bool {
        let next = self.next_probe.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if next.is_some_and(|next| Instant::now() < next) {
            return false;
        }
        !self.probing.swap(true, Ordering::AcqRel)
    }

    fn start_probe(self: &std::sync::Arc<Self>, pool: &Pool) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.probing.store(false, Ordering::Release);
            return;
        };
        let (choice, pool) = (self.clone(), pool.clone());
        runtime.spawn(async move {
            match probe::probe(&pool).await {
                Ok(finding) => {
                    let _ = choice.probed.set(decide(finding));
                }
                Err(error) => {
                    tracing::debug!(%error, "the statement probe decided nothing; it runs again in a second");
                    *choice.next_probe.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(Instant::now() + PROBE_RETRY);
                }
            }
            choice.probing.store(false, Ordering::Release);
        });
    }

    /// The way statements go now, without starting a probe: unnamed until the probe answered.
    pub(crate) fn settled(&self) -> StatementMode {
        match (self.set, self.switched.load(Ordering::Relaxed), self.probed.get()) {
            (Some(mode), _, _) => mode,
            (None, true, _) => StatementMode::Shared,
            (None, false, Some(mode)) => *mode,
            (None, false, None) => StatementMode::Unnamed,
        }
    }

    /// After a statement sent in `mode` failed with the SQLSTATE `sqlstate`: whether that was a named statement
    /// meeting a pooler that does not track statements. Such a failure had no effect (the server refused the name
    /// before running anything), so the caller may send the statement again the pooler-safe way, which every later
    /// statement takes too. Says so once, naming the setting.
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
                 are sent unnamed (planned every time); PostgresStore::with_prepared_statements() selects named \
                 statements, PostgresStore::with_pooler_safe_statements() those for a pooler that does not track \
                 them"
            );
            StatementMode::Unnamed
        }
    }
}

/// A named statement's failures that a transaction-mode pooler without statement tracking causes: the name is
/// unknown on the backend reached (`26000`), was already taken there by another client (`42P05`), or names
/// another client's statement with another number of parameters (`08P01`).
const POOLER_SYMPTOMS: [SqlState; 3] =
    [SqlState::INVALID_SQL_STATEMENT_NAME, SqlState::DUPLICATE_PSTATEMENT, SqlState::PROTOCOL_VIOLATION];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_the_probe_answers_statements_go_unnamed_and_a_set_way_stays() {
        assert_eq!(StatementChoice::default().settled(), StatementMode::Unnamed);
        for mode in [StatementMode::Shared, StatementMode::Unnamed, StatementMode::Prepared] {
            assert_eq!(StatementChoice::fixed(mode).settled(), mode);
        }
        let probed = StatementChoice::default();
        probed.probed.set(StatementMode::Prepared).unwrap();
        assert_eq!(probed.settled(), StatementMode::Prepared);
    }

    #[test]
    fn only_a_named_statement_failing_as_behind_such_a_pooler_switches_a_detecting_store() {
        let detecting = StatementChoice::default();
        detecting.probed.set(StatementMode::Prepared).unwrap();
        assert!(!detecting.switched_by(StatementMode::Prepared, Some("23505")), "another error");
        assert!(!detecting.switched_by(StatementMode::Prepared, None), "not the server's error");
        assert!(!detecting.switched_by(StatementMode::Shared, Some("26000")), "not a named statement");
        assert_eq!(detecting.settled(), StatementMode::Prepared);
        for symptom in ["26000", "42P05", "08P01"] {
            assert!(detecting.switched_by(StatementMode::Prepared, Some(symptom)), "{symptom}");
        }
        assert_eq!(detecting.settled(), StatementMode::Shared, "for good");
        let set = StatementChoice::fixed(StatementMode::Prepared);
        assert!(!set.switched_by(StatementMode::Prepared, Some("26000")), "a set way is kept");
        assert_eq!(set.settled(), StatementMode::Prepared);
    }

    #[test]
    fn a_probe_that_cannot_tell_leaves_statements_unnamed() {
        assert_eq!(decide(Finding::Direct), StatementMode::Prepared);
        assert_eq!(decide(Finding::TrackingPooler), StatementMode::Prepared);
        assert_eq!(decide(Finding::NonTrackingPooler("26000".into())), StatementMode::Shared);
        assert_eq!(decide(Finding::Unknown("a pool of one".into())), StatementMode::Unnamed);
    }
}
