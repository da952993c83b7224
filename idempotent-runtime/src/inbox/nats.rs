//! NATS JetStream through [`async_nats`]: the key of a message, and its settlement from a [`Disposition`].
//!
//! ```no_run
//! use idempotent_runtime::inbox::{Disposition, nats};
//! use idempotent_runtime::TransactionalReceiver;
//!
//! # async fn demo(inbox: TransactionalReceiver, message: nats::async_nats::jetstream::Message) -> Result<(), nats::async_nats::Error> {
//! let Some(key) = nats::message_key(&message) else {
//!     return nats::settle(&message, &Disposition::no_key("no Idempotency-Key header")).await;
//! };
//! let answer = inbox
//!     .run("ledger", key, &message.payload, |tx| async move {
//!         tx.execute("INSERT INTO ledger (message_id) VALUES ($1)", &[&key]).await.map(|_| b"applied".to_vec())
//!     })
//!     .await;
//! // The app's choice for its own errors: here, a failed INSERT is tried again a second later.
//! let disposition = Disposition::of(&answer, |_| Disposition::Redeliver { delay: std::time::Duration::from_secs(1) });
//! nats::settle(&message, &disposition).await
//! # }
//! ```
//!
//! The key travels in a header, [`KEY_HEADER`], not in `Nats-Msg-Id`: the stream's own publish deduplication
//! (by `Nats-Msg-Id`, within its duplicate window) is a publisher-side guard and hides copies only inside that
//! window; the consumer-side dedup must hold for any copy, however late. A dead-lettered message is terminated
//! (`+TERM`): never redelivered, and reported by the server's `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED`
//! advisory, which a dead-letter consumer may subscribe to.

pub use async_nats;

use async_nats::jetstream::{AckKind, Message};

use super::{Disposition, log_dead_letter};

/// The header that carries a message's idempotency key.
pub const KEY_HEADER: &str = "Idempotency-Key";

/// The message's idempotency key: its [`KEY_HEADER`] header. `None` when it is missing or empty.
pub fn message_key(message: &Message) -> Option<&str> {
    let value = message.headers.as_ref()?.get(KEY_HEADER)?;
    Some(value.as_str()).filter(|key| !key.is_empty())
}

/// Tells JetStream what became of the message: an acknowledgement that waits for the server's confirmation
/// (so `Ok` means the message will not come back); for [`Disposition::Redeliver`], `NAK` with the delay; for
/// [`Disposition::DeadLetter`], logs and `+TERM`.
///
/// An error means the acknowledgement may be lost: the server then redelivers the message once the consumer's
/// ack wait passes, and the receiver replays the stored result, so nothing is applied twice.
pub async fn settle(message: &Message, disposition: &Disposition) -> Result<(), async_nats::Error> {
    match disposition {
        Disposition::Ack => message.double_ack().await,
        Disposition::Redeliver { delay } => message.ack_with(AckKind::Nak(Some(*delay))).await,
        Disposition::DeadLetter { reason } => {
            log_dead_letter("nats", message_key(message), reason);
            message.ack_with(AckKind::Term).await
        }
    }
}
