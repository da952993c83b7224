//! The broker side of the relay: [`Publisher`], which ships a batch and says which messages the broker confirmed.

use std::fmt;

use async_trait::async_trait;

use super::OutgoingMessage;

/// Publishes the relay's batches to a broker. Implemented by [`super::amqp::AmqpPublisher`] (feature `amqp`) and
/// [`super::nats::NatsPublisher`] (feature `nats`); implement it for another broker, or for tests.
///
/// The contract the relay relies on: one result per message, in the batch's order, and `Ok` only once the broker
/// **confirmed** the message (a publisher confirm, a stream's ack). A message whose fate is unknown (the connection
/// dropped before its confirm) is an `Err`: the relay sends it again later, with the same id, and the consumer's
/// inbox absorbs the copy if the first one did arrive.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes the batch, in order; one result per message, `Ok` only once the broker confirmed it.
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>>;
}

/// Why a message was not confirmed: the broker's refusal (a nack, an unroutable message, no stream for the
/// subject) or a lost connection. The relay stores its text as the row's `last_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError(String);

impl PublishError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PublishError {}

impl From<String> for PublishError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for PublishError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}
