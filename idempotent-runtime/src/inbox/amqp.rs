//! RabbitMQ through [`lapin`]: the key of a delivery, and its settlement from a [`Disposition`].
//!
//! ```no_run
//! use idempotent_runtime::inbox::{Disposition, amqp};
//! use idempotent_runtime::TransactionalReceiver;
//!
//! # async fn demo(inbox: TransactionalReceiver, delivery: amqp::lapin::message::Delivery) -> Result<(), amqp::lapin::Error> {
//! let Some(key) = amqp::message_key(&delivery) else {
//!     return amqp::settle(&delivery, &Disposition::no_key("no message_id")).await;
//! };
//! let answer = inbox
//!     .run("ledger", key, &delivery.data, |tx| async move {
//!         tx.execute("INSERT INTO ledger (message_id) VALUES ($1)", &[&key]).await.map(|_| b"applied".to_vec())
//!     })
//!     .await;
//! // The app's choice for its own errors: here, a failed INSERT is tried again a second later.
//! let disposition = Disposition::of(&answer, |_| Disposition::Redeliver { delay: std::time::Duration::from_secs(1) });
//! amqp::settle(&delivery, &disposition).await
//! # }
//! ```
//!
//! Dead-lettering is `basic.reject` without requeue: RabbitMQ sends the message to the queue's dead-letter
//! exchange when one is configured (a policy, e.g. `rabbitmqctl set_policy ledger-dlx '^ledger$'
//! '{"dead-letter-exchange":"","dead-letter-routing-key":"ledger.dead"}' --apply-to queues`), and drops it
//! otherwise. Either way it is never applied, and a warning is logged.

pub use lapin;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};

use super::{Disposition, log_dead_letter};

/// The delivery's idempotency key: its AMQP `message_id` property, which publishers set for exactly this (one id
/// per logical message, the same on every copy). `None` when it is missing or empty.
pub fn message_key(delivery: &Delivery) -> Option<&str> {
    delivery.properties.message_id().as_ref().map(|id| id.as_str()).filter(|id| !id.is_empty())
}

/// Tells RabbitMQ what became of the delivery: `basic.ack`; for [`Disposition::Redeliver`], waits out the delay
/// and then `basic.nack` with requeue (AMQP has no delayed nack; the message stays unacknowledged, so invisible
/// to other consumers, meanwhile: spawn this call to keep consuming, and give the channel a prefetch above 1);
/// for [`Disposition::DeadLetter`], logs and `basic.reject` without requeue.
///
/// An error means the channel or connection is gone: RabbitMQ then redelivers every unacknowledged message of
/// it by itself, so there is nothing to undo.
pub async fn settle(delivery: &Delivery, disposition: &Disposition) -> Result<(), lapin::Error> {
    match disposition {
        Disposition::Ack => delivery.ack(BasicAckOptions::default()).await.map(drop),
        Disposition::Redeliver { delay } => {
            tokio::time::sleep(*delay).await;
            delivery.nack(BasicNackOptions { multiple: false, requeue: true }).await.map(drop)
        }
        Disposition::DeadLetter { reason } => {
            log_dead_letter("amqp", message_key(delivery), reason);
            delivery.reject(BasicRejectOptions { requeue: false }).await.map(drop)
        }
    }
}
