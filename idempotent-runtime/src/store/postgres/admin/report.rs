//! What the operator queries answer: record states, in-flight pages, one record's details, counts, and the
//! outcome of a release.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::record_id::RecordId;

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

/// One record in progress, as [`list_in_flight`](crate::admin::list_in_flight) returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The route pattern.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The key's digest ([`crate::to_hex`] for display).
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

/// A page of [`list_in_flight`](crate::admin::list_in_flight): the oldest records first, and how many matched in all.
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

/// Records per state, as [`counts`](crate::admin::counts) finds them.
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

/// Why [`release`](crate::admin::release) left a record alone.
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

/// What [`release`](crate::admin::release) did.
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
