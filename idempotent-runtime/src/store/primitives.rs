//! What the runtime and a store exchange: the claim asked for and its answer, the owner's handle on a claimed
//! record, and the answers of completion, heartbeat and purge.

use std::time::Duration;

use crate::digest::Digest;
use crate::record::Record;
use crate::record_id::RecordId;

/// What a request asks of the store before its handler may run.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The record's identity.
    pub id: RecordId,
    /// The request's fingerprint.
    pub fingerprint: Digest,
    /// The fencing token of this attempt: completion and release only succeed while the record carries it, so a
    /// stale worker whose claim was taken over cannot overwrite the newer attempt.
    pub token: i64,
    /// How long the claim is protected from take-over.
    pub lease: Duration,
    /// How long the record lives (renewed when it completes).
    pub ttl: Duration,
}

/// The answer to a [`ClaimRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the record now and must complete or release it.
    Acquired {
        /// True when an existing record was taken over: its lease lapsed (a crashed worker) or it expired.
        took_over: bool,
    },
    /// A live record exists and the caller does not own it.
    Existing(Record),
}

/// An attempt that owns a record: the handle its heartbeat, completion and release present. The token fences
/// them: they act only while the record still carries it (docs/glossary.md: attempt, token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The record's identity.
    pub id: RecordId,
    /// The fencing token the record was claimed with.
    pub token: i64,
}

/// The answer to [`Store::complete`](super::Store::complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The response is stored and will be replayed.
    Stored,
    /// The record no longer carries this lease's token (another attempt took it over): nothing was written.
    Fenced,
}

/// The answer to [`Store::heartbeat`](super::Store::heartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The lease was renewed: the record is still this attempt's.
    Held,
    /// The record no longer carries this lease's token (taken over, completed or released).
    Lost,
}

/// What one [`Store::purge_batch`](super::Store::purge_batch) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeBatch {
    /// Records looked at (at most the batch size).
    pub examined: usize,
    /// Expired records deleted among them.
    pub deleted: usize,
    /// True when this batch reached the end of the table: the next batch starts a new pass.
    pub pass_complete: bool,
}
