//! RabbitMQ through [`lapin`] (feature `amqp`): [`AmqpPublisher`], the relay's publisher with publisher confirms.

use std::collections::HashMap;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::{OutgoingMessage, PublishError, Publisher};

/// AMQP `delivery_mode` of a message that survives a broker restart (in a durable queue).
const PERSISTENT: u8 = 2;

/// Publishes the relay's batches to RabbitMQ, with publisher confirms: each message is published with
/// `message_id` = its [`super::MessageId`] (what [`crate::inbox::amqp::message_key`] reads), `delivery_mode`
/// persistent, and its headers as AMQP headers, to the exchange given to [`AmqpPublisher::with_exchange`] (the
/// default exchange `""` unless told) with the message's destination as the routing key. A message counts as
/// sent once the broker acked it.
///
/// A message is published `mandatory`: one that no queue takes (no queue bound for its routing key) is returned
/// by the broker and counts as failed, so it is retried rather than lost; declare the queues (or bindings)
/// before the relay runs. A `basic.nack` fails the message too.
///
/// After a connection or channel error the batch's unconfirmed messages fail, and the next batch connects again
/// (the relay retries the failed ones after their backoff).
pub struct AmqpPublisher {
    url: String,
    exchange: String,
    /// The connection and its confirm-mode channel; `None` after an error, until the next batch.
    link: tokio::sync::Mutex<Option<Link>>,
}

struct Link {
    /// Kept open as long as the channel is used.
    connection: Connection,
    channel: Channel,
}

impl std::fmt::Debug for AmqpPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpPublisher").field("exchange", &self.exchange).finish_non_exhaustive()
    }
}

impl AmqpPublisher {
    /// Connects to the broker at `url` (`amqp://user:password@host:port/vhost`) and opens a channel in confirm
    /// mode.
    ///
    /// # Errors
    ///
    /// The broker could not be reached or refused the connection or the channel.
    pub async fn connect(url: &str) -> Result<Self, lapin::Error> {
        let link = Link::open(url).await?;
        Ok(Self { url: url.to_owned(), exchange: String::new(), link: tokio::sync::Mutex::new(Some(link)) })
    }

    /// Publishes to `exchange` (declared by the app) instead of the default exchange; the message's destination
    /// is the routing key.
    #[must_use]
    pub fn with_exchange(mut self, exchange: &str) -> Self {
        exchange.clone_into(&mut self.exchange);
        self
    }

    /// Publishes every message, then awaits every confirm.
    async fn publish_on(&self, channel: &Channel, batch: &[OutgoingMessage]) -> (Vec<Result<(), PublishError>>, bool) {
        let mut confirms = Vec::with_capacity(batch.len());
        let mut broken = false;
        for message in batch {
            if broken {
                confirms.push(Err(PublishError::new("not published: the channel failed earlier in the batch")));
                continue;
            }
            let published = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    message.destination.as_str().into(),
                    BasicPublishOptions { mandatory: true, immediate: false },
                    &message.payload,
                    properties(message),
                )
                .await;
            match published {
                Ok(confirm) => confirms.push(Ok(confirm)),
                Err(error) => {
                    broken = true;
                    confirms.push(Err(PublishError::new(format!("publish failed: {error}"))));
                }
            }
        }
        // lapin hands a returned message to whichever confirm resolves next, not necessarily its own (an
        // unroutable message is returned at once, while persistent messages in a durable queue are confirmed
        // after they are written): returned messages are matched to the batch by their message_id.
        let mut answers = Vec::with_capacity(batch.len());
        let mut returned: HashMap<String, String> = HashMap::new();
        for confirm in confirms {
            let answer = match confirm {
                Err(error) => Err(error),
                Ok(confirm) => match confirm.await {
                    Ok(confirmation) => {
                        let acked = confirmation.is_ack();
                        if let Some(message) = confirmation.take_message() {
                            let reason =
                                format!("returned by the broker: {} {}", message.reply_code, message.reply_text);
                            match message.delivery.properties.message_id() {
                                Some(id) => drop(returned.insert(id.to_string(), reason)),
                                None => tracing::warn!(%reason, "RabbitMQ returned a message without a message_id"),
                            }
                        }
                        if acked { Ok(()) } else { Err(PublishError::new("refused by the broker (basic.nack)")) }
                    }
                    Err(error) => {
                        broken = true;
                        Err(PublishError::new(format!("no confirm: {error}")))
                    }
                },
            };
            answers.push(answer);
        }
        let results = batch
            .iter()
            .zip(answers)
            .map(|(message, answer)| match returned.get(message.id.as_str()) {
                Some(reason) => Err(PublishError::new(reason.as_str())),
                None => answer,
            })
            .collect();
        (results, broken)
    }
}

#[async_trait::async_trait]
impl Publisher for AmqpPublisher {
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        let mut slot = self.link.lock().await;
        // Taken out while the batch is out, put back only once its confirms all came: if this future is dropped
        // midway (the relay's publish timeout), the link goes with it. Its late confirms could otherwise settle
        // the next batch's, and a half-open connection would cost every later batch the whole timeout.
        let link = match slot.take().filter(Link::is_usable) {
            Some(link) => link,
            None => match Link::open(&self.url).await {
                Ok(opened) => opened,
                Err(error) => {
                    tracing::warn!(%error, "the outbox's AMQP publisher cannot reach the broker");
                    let error = PublishError::new(format!("cannot reach the broker: {error}"));
                    return batch.iter().map(|_| Err(error.clone())).collect();
                }
            },
        };
        let (results, broken) = self.publish_on(&link.channel, batch).await;
        if !broken {
            *slot = Some(link);
        }
        // A broken link is dropped here: the next batch opens a new connection.
        results
    }
}

impl Link {
    async fn open(url: &str) -> Result<Self, lapin::Error> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Self { connection, channel })
    }

    fn is_usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

fn properties(message: &OutgoingMessage) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in &message.headers {
        headers.insert(name.as_str().into(), AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())));
    }
    BasicProperties::default()
        .with_message_id(message.id.as_str().into())
        .with_delivery_mode(PERSISTENT)
        .with_headers(headers)
}
