//! The attempt: what one request (or one delivery) does with its key, written once for every front end.
//!
//! An attempt claims its record, or waits for a duplicate in flight and claims again ([`claim_or_wait`]); a
//! record it does not own is decided in one way everywhere ([`Existing::decide`]: key reused first, then replay,
//! then in flight). An acquired claim runs its work under the heartbeat ([`under_lease`]) or in the store's
//! transaction, then is settled by [`keep`] or [`Held::abandon`], with the same completion rules for all.
//!
//! Files, one concept each: `claim` (claim or wait), `existing` (the decision on a record not owned), `held` (a
//! claim while its work runs, and settling it), `lease` (the heartbeat and its view of the lease),
//! `claim_guard` (completing with retries, releasing when dropped), `bounded` (the store-operation timeout).
//!
//! The HTTP flow (`handle`) and the receivers differ only in how they run the work and how they turn the core's
//! outcome into their answer (a response or problem, or `Received` / `ReceiveError`). Every store call the runtime
//! makes is bounded by one timeout, applied in one place ([`BoundedStore`]), so a store that hangs is answered as
//! unavailable instead of hanging the request.

mod bounded;
mod claim;
mod claim_guard;
mod existing;
mod held;
mod lease;

pub(crate) use self::bounded::BoundedStore;
pub use self::bounded::DEFAULT_STORE_TIMEOUT;

/// The default time a completed attempt's result is replayed (a route's or a receiver's `ttl`).
pub const DEFAULT_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);
/// The default time an attempt's claim is protected from take-over without a heartbeat (its lease).
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(30);
pub(crate) use self::claim::{Claimed, TxClaimed, claim_in_transaction, claim_or_wait};
pub(crate) use self::existing::Existing;
pub(crate) use self::held::{Held, Kept, Lease, TransactionHold, keep, under_lease};
