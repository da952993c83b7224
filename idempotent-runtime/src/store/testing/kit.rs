//! Running the whole contract on one store: every case in sequence, each failure named by its case.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;

use super::claims::*;
use super::completion::*;
use super::heartbeat::*;
use super::lookup::*;
use super::purge::*;
use super::takeover::*;
use super::timeouts::*;
use super::waiters::*;
use crate::store::Store;

/// Declares the cases once: their names ([`CASES`]) and how each is called on a shared store.
macro_rules! cases {
    ($($case:ident($takes:ident)),* $(,)?) => {
        /// The name of every case of the kit, in the order [`run_all`] runs them: the names of the functions of
        /// [`crate::store::testing`] that check the contract, for [`Kit::skip`].
        pub const CASES: &[&str] = &[$(stringify!($case)),*];

        /// Runs the case named `name` on `store`.
        async fn run_case(name: &str, store: &Arc<dyn Store>) {
            match name {
                $(stringify!($case) => cases!(@call $takes $case store),)*
                _ => unreachable!("{name} is not a case of the kit"),
            }
        }
    };
    (@call shared $case:ident $store:ident) => { $case(&**$store).await };
    (@call owned $case:ident $store:ident) => { $case(Arc::clone($store)).await };
}

cases!(
    // Claims.
    one_claim_wins_and_the_record_is_replayed_after_completion(shared),
    claims_stay_exact_when_retries_dominate(shared),
    concurrent_claims_of_one_record_acquire_exactly_once(owned),
    concurrent_take_overs_of_a_lapsed_claim_acquire_exactly_once(owned),
    // Take-over and fencing.
    a_dead_workers_claim_is_taken_over_and_its_late_completion_is_fenced(shared),
    a_different_request_cannot_take_over_a_lapsed_claim(shared),
    an_expired_claim_is_taken_over_by_any_request(shared),
    a_stale_token_cannot_complete_renew_or_release_the_new_claim(shared),
    a_running_claim_outlives_its_ttl_until_its_lease_ends(shared),
    // Heartbeat.
    heartbeat_keeps_a_claim_and_reports_a_lost_one(shared),
    a_late_heartbeat_renews_a_lapsed_lease_nobody_took_over(shared),
    a_heartbeat_keeps_a_claim_past_its_ttl(shared),
    heartbeat_of_a_token_the_record_does_not_carry_is_lost(shared),
    // Completion and release.
    a_completion_retried_with_its_own_lease_is_stored_not_fenced(shared),
    release_frees_the_key_and_a_stale_release_does_nothing(shared),
    a_completion_keeps_status_headers_and_body_exactly(shared),
    a_completion_keeps_the_record_for_its_own_ttl_not_the_lease(shared),
    // Waiters.
    waiter_is_woken_by_completion(shared),
    waiter_is_woken_by_release(shared),
    waiter_returns_at_its_timeout(shared),
    waiter_on_a_dead_workers_claim_returns_once_the_lease_lapses(shared),
    waiter_of_a_dead_worker_takes_over_once_the_lease_lapses(shared),
    waiter_on_a_taken_over_record_is_woken_by_the_new_attempts_completion(shared),
    // Reads, lookups and expiry.
    expired_records_read_as_absent_and_are_claimed_afresh(shared),
    lookup_finds_the_most_recent_live_record_on_any_route(shared),
    lookup_never_reports_another_scopes_record(shared),
    lookup_ignores_expired_records(shared),
    // Purge (fails on a store whose `purge_batch` is unsupported, unless left out with `Kit::without_purge`).
    purge_deletes_only_expired_records(shared),
    purge_sweeps_a_large_store_in_bounded_batches(shared),
    // A store that stops answering, bounded by the runtime.
    a_store_that_stops_answering_is_bounded_by_the_runtimes_timeout(owned),
);

/// The purge cases, which [`Kit::without_purge`] leaves out.
pub const PURGE_CASES: &[&str] =
    &["purge_deletes_only_expired_records", "purge_sweeps_a_large_store_in_bounded_batches"];

/// Runs every case of the kit on `store`, one after the other (they share the store: each case works in a random
/// scope of its own). Panics at the first case that fails, naming it and the rule it checks; a store without a purge
/// fails the purge cases (leave them out with [`Kit::without_purge`]).
///
/// Run it on a multi-thread runtime (see [`block_on`]) so that the concurrent cases claim in parallel.
pub async fn run_all(store: Arc<dyn Store>) {
    Kit::new(store).run().await;
}

/// The kit with options: which cases to leave out. [`run_all`] is `Kit::new(store).run()`.
#[derive(Clone)]
pub struct Kit {
    store: Arc<dyn Store>,
    skipped: Vec<&'static str>,
}

impl std::fmt::Debug for Kit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kit").field("skipped", &self.skipped).finish_non_exhaustive()
    }
}

impl Kit {
    /// Every case, on `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, skipped: Vec::new() }
    }

    /// Leaves the case named `case` out (one of [`CASES`]), e.g. a case the store knowingly does not meet yet.
    ///
    /// # Panics
    ///
    /// When `case` is not the name of a case (a typo would otherwise skip nothing).
    #[must_use]
    pub fn skip(mut self, case: &str) -> Self {
        let known = CASES.iter().find(|known| **known == case);
        let known = known.unwrap_or_else(|| panic!("`{case}` is not a case of the store conformance kit: {CASES:?}"));
        self.skipped.push(known);
        self
    }

    /// Leaves out the purge cases ([`PURGE_CASES`]), for a store that keeps the trait's default `purge_batch`
    /// (which answers `Unsupported`): without this, those cases fail on such a store.
    #[must_use]
    pub fn without_purge(self) -> Self {
        PURGE_CASES.iter().fold(self, |kit, case| kit.skip(case))
    }

    /// Runs the cases not skipped, in the order of [`CASES`], printing each name as it starts.
    ///
    /// # Panics
    ///
    /// At the first case that fails: "store conformance case `name` failed: ..." with the rule it broke.
    pub async fn run(self) {
        for case in CASES.iter().filter(|case| !self.skipped.contains(case)) {
            println!("store conformance: {case}");
            let ran = AssertUnwindSafe(run_case(case, &self.store)).catch_unwind().await;
            if let Err(panic) = ran {
                panic!("store conformance case `{case}` failed: {}", message(&*panic));
            }
        }
        for case in &self.skipped {
            println!("store conformance: {case} skipped");
        }
    }
}

/// A panic's message, if it has one.
fn message(panic: &(dyn Any + Send)) -> &str {
    panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("")
}

/// Runs `future` to completion on a new multi-thread runtime with every driver enabled, as a store's own `#[test]`
/// calls the kit: the kit's concurrent cases then claim in parallel. Create the store inside `future`, since a
/// store may be bound to the runtime it connected on.
///
/// # Panics
///
/// When the runtime cannot be built, or `future` panics.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("build a multi-thread runtime for the store conformance kit")
        .block_on(future)
}
