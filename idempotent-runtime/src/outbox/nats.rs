//! NATS JetStream through [`async_nats`] (feature `nats`): [`NatsPublisher`], the relay's publisher.

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream;

use super::{OutgoingMessage, PublishError, Publisher};
use crate::inbox::nats::KEY_HEADER;

/// Publishes the relay's batches to NATS JetStream: each message to the subject named by its destination, with
/// the headers `Nats-Msg-Id` = its [`super::MessageId`] (the stream drops a copy within its duplicate window) and
/// [`KEY_HEADER`] (`Idempotency-Key`) = the id (what [`crate::inbox::nats::message_key`] reads), plus the
/// message's own headers. A message counts as sent once the stream acknowledged it (`PublishAck`; a duplicate the
/// stream dropped is acknowledged too).
///
/// A subject that no stream captures gets no ack (`no responders`): the message fails and is retried, so create
/// the stream before the relay runs. The client reconnects by itself after a connection failure; the messages
/// whose ack did not come fail meanwhile and are retried after their backoff.
#[derive(Debug, Clone)]
pub struct NatsPublisher {
    context: jetstream::Context,
}

impl NatsPublisher {
    /// Connects to the server at `url` (`nats://host:4222`).
    ///
    /// # Errors
    ///
    /// The server could not be reached.
    pub async fn connect(url: &str) -> Result<Self, async_nats::ConnectError> {
        Ok(Self::new(async_nats::connect(url).await?))
    }

    /// A publisher on a client the app already has (its options: credentials, name, reconnect policy).
    pub fn new(client: async_nats::Client) -> Self {
        Self { context: jetstream::new(client) }
    }
}

#[async_trait::async_trait]
impl Publisher for NatsPublisher {
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        // Publish everything first (the acks come back pipelined), then await the acks.
        let mut acks = Vec::with_capacity(batch.len());
        for message in batch {
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, message.id.as_str());
            headers.insert(KEY_HEADER, message.id.as_str());
            // The id's two headers are the relay's: a message header of the same name is left out.
            let own = |name: &str| name.eq_ignore_ascii_case("Nats-Msg-Id") || name.eq_ignore_ascii_case(KEY_HEADER);
            for (name, value) in message.headers.iter().filter(|(name, _)| !own(name)) {
                headers.append(name.as_str(), value.as_str());
            }
            let payload = message.payload.clone().into();
            acks.push(self.context.publish_with_headers(message.destination.clone(), headers, payload).await);
        }
        // The acks are awaited together: after a cut connection each one fails on its own timeout, and in turn
        // they would hold the batch (and its destination) for the batch size times that timeout.
        futures_util::future::join_all(acks.into_iter().map(|ack| async move {
            match ack {
                Ok(ack) => ack.await.map(drop).map_err(|error| PublishError::new(format!("no ack: {error}"))),
                Err(error) => Err(PublishError::new(format!("publish failed: {error}"))),
            }
        }))
        .await
    }
}
