//! Broker adapters for the receivers: what to tell the broker about a delivery, from what the receiver answered.
//!
//! | the receiver answered | [`Disposition`] | RabbitMQ ([`amqp`], feature `amqp`) | NATS JetStream ([`nats`], feature `nats`) |
//! |---|---|---|---|
//! | `Ok` (applied now, or replayed) | [`Disposition::Ack`] | `basic.ack` | double ack (waits for the server's confirmation) |
//! | [`ReceiveError::InFlight`] (another delivery of the key runs) | [`Disposition::Redeliver`] after its `retry_after` (at most [`MAX_REDELIVERY_DELAY`]) | `basic.nack` with requeue, sent after the delay | `NAK` with the delay |
//! | [`ReceiveError::StoreUnavailable`] | [`Disposition::Redeliver`] after [`STORE_REDELIVERY_DELAY`] | as above | as above |
//! | [`ReceiveError::KeyReused`] (same key, another payload) | [`Disposition::DeadLetter`], logged | `basic.reject` without requeue: the queue's dead-letter route | `TERM`: never redelivered (the server's `MSG_TERMINATED` advisory carries it) |
//! | [`ReceiveError::Json`] (a result that does not (de)serialize: it never will) | [`Disposition::DeadLetter`], logged | as above | as above |
//! | [`ReceiveError::Failed`] (the work's own error) | **the app's choice**: the closure given to [`Disposition::of`] | | |
//! | a message without a key | [`Disposition::DeadLetter`] ([`Disposition::no_key`]) | | |
//!
//! The work's own errors are the app's to classify: a transient one (a downstream timeout) wants
//! [`Disposition::Redeliver`], a permanent one (a transfer to an account that does not exist) wants
//! [`Disposition::DeadLetter`]. Either way nothing was stored (and with a [`TransactionalReceiver`], nothing the
//! work wrote was committed), so a redelivery runs the work again.
//!
//! [`TransactionalReceiver`]: crate::TransactionalReceiver

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(feature = "nats")]
pub mod nats;

use std::time::Duration;

use crate::receiver::{ReceiveError, Received};

/// The longest a duplicate of an in-flight key is held back before its redelivery: the running one usually ends
/// long before its lease would lapse.
pub const MAX_REDELIVERY_DELAY: Duration = Duration::from_secs(5);

/// How long a delivery that met an unavailable store is held back before its redelivery.
pub const STORE_REDELIVERY_DELAY: Duration = Duration::from_secs(1);

/// What to tell the broker about a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done, now or by an earlier delivery: acknowledge (the stored result is committed).
    Ack,
    /// Not done, but may be later: have the broker deliver it again after `delay`.
    Redeliver {
        /// How long to hold the message back first.
        delay: Duration,
    },
    /// Never applicable: send it to the dead-letter route and never redeliver it.
    DeadLetter {
        /// Why, for the log line.
        reason: String,
    },
}

impl Disposition {
    /// The disposition of a receiver's answer (see the [module](self) table); `on_failed` decides for the work's
    /// own errors, which only the app can classify.
    pub fn of<T, E>(
        answer: &Result<Received<T>, ReceiveError<E>>,
        on_failed: impl FnOnce(&E) -> Disposition,
    ) -> Disposition {
        match answer {
            Ok(_) => Self::Ack,
            Err(ReceiveError::Failed(error)) => on_failed(error),
            Err(ReceiveError::InFlight { retry_after }) => {
                Self::Redeliver { delay: (*retry_after).min(MAX_REDELIVERY_DELAY) }
            }
            Err(ReceiveError::StoreUnavailable(_)) => Self::Redeliver { delay: STORE_REDELIVERY_DELAY },
            Err(ReceiveError::KeyReused) => {
                Self::DeadLetter { reason: "its key was already used with a different payload".to_owned() }
            }
            Err(ReceiveError::Json(error)) => {
                Self::DeadLetter { reason: format!("its result is not valid JSON for its type: {error}") }
            }
        }
    }

    /// The disposition of a message that carries no usable key: it can never be deduplicated, so it is not applied.
    pub fn no_key(what: &str) -> Disposition {
        Self::DeadLetter { reason: format!("it carries no idempotency key ({what})") }
    }
}

/// The log line of a dead-lettered message, the same for every broker.
#[cfg(any(feature = "amqp", feature = "nats"))]
fn log_dead_letter(broker: &str, key: Option<&str>, reason: &str) {
    let key = key.map_or_else(|| "none".to_owned(), crate::http::key::redact);
    tracing::warn!(%broker, %key, "dead-lettered a message, not applied: {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreError, StoreErrorKind};

    fn of(answer: Result<Received<()>, ReceiveError<&'static str>>) -> Disposition {
        Disposition::of(&answer, |_| Disposition::Redeliver { delay: Duration::from_secs(7) })
    }

    #[test]
    fn every_answer_maps_to_what_the_broker_must_do() {
        assert_eq!(of(Ok(Received { result: (), replayed: true })), Disposition::Ack);
        assert_eq!(of(Ok(Received { result: (), replayed: false })), Disposition::Ack);
        assert_eq!(
            of(Err(ReceiveError::InFlight { retry_after: Duration::from_millis(300) })),
            Disposition::Redeliver { delay: Duration::from_millis(300) }
        );
        // A 30 s lease is not how long the running delivery needs: capped.
        assert_eq!(
            of(Err(ReceiveError::InFlight { retry_after: Duration::from_secs(30) })),
            Disposition::Redeliver { delay: MAX_REDELIVERY_DELAY }
        );
        let unavailable = StoreError::new(StoreErrorKind::Unavailable, "down");
        assert_eq!(
            of(Err(ReceiveError::StoreUnavailable(unavailable))),
            Disposition::Redeliver { delay: STORE_REDELIVERY_DELAY }
        );
        assert!(matches!(of(Err(ReceiveError::KeyReused)), Disposition::DeadLetter { .. }));
        // The app's choice for its own errors.
        assert_eq!(of(Err(ReceiveError::Failed("boom"))), Disposition::Redeliver { delay: Duration::from_secs(7) });
    }
}
