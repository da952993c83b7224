//! The orders example's outbox relay: to the broker that `AMQP_URL` or `NATS_URL` names, its destination declared,
//! and a line printed for each batch (the end-to-end suite reads them to kill the relay mid-batch).

use idempotent_runtime::PostgresStore;
use idempotent_runtime::outbox::{OutboxRelay, OutgoingMessage, PublishError, Publisher};

/// What the route enqueues for each order: the destination names the event; the relay knows where it goes.
pub(crate) const ORDER_CREATED: &str = "order.created";

/// The relay's publisher, wrapped: sends `order.created` where the broker keeps order events, and prints each
/// batch (tools, such as the end-to-end suite, read these lines).
struct ReportingPublisher {
    inner: Box<dyn Publisher>,
    /// The queue (RabbitMQ) or subject (NATS) of `order.created`.
    order_created: String,
    /// How long a confirmed batch is held before the relay marks it sent (`RELAY_HOLD_MS`).
    hold: std::time::Duration,
}

#[async_trait::async_trait]
impl Publisher for ReportingPublisher {
    async fn publish(&self, batch: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        if batch.is_empty() {
            return Vec::new();
        }
        report(format_args!("relay: publishing {} messages", batch.len()));
        let routed: Vec<OutgoingMessage> = batch
            .iter()
            .map(|message| OutgoingMessage {
                id: message.id.clone(),
                destination: if message.destination == ORDER_CREATED {
                    self.order_created.clone()
                } else {
                    message.destination.clone()
                },
                payload: message.payload.clone(),
                headers: message.headers.clone(),
            })
            .collect();
        let results = self.inner.publish(&routed).await;
        let confirmed = results.iter().filter(|result| result.is_ok()).count();
        report(format_args!("relay: broker confirmed {confirmed} of {}", batch.len()));
        if !self.hold.is_zero() {
            tokio::time::sleep(self.hold).await;
        }
        report(format_args!("relay: sent {confirmed}"));
        results
    }
}

/// A number from the environment, or its default.
fn number_from_env(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => value.parse().map_err(|_| format!("{name} must be a number, got {value:?}")),
    }
}

/// The relay to the broker that `AMQP_URL` (first) or `NATS_URL` names, its destination declared; `None` when
/// neither is set. Also says where it relays to.
pub(crate) async fn relay_from_env(
    store: &PostgresStore,
) -> Result<Option<(OutboxRelay, String)>, Box<dyn std::error::Error>> {
    let env_or = |name: &str, default: &str| {
        std::env::var(name).ok().filter(|value| !value.is_empty()).unwrap_or(default.into())
    };
    let (inner, order_created, description): (Box<dyn Publisher>, String, String) =
        if let Ok(url) = std::env::var("AMQP_URL") {
            use lapin::options::QueueDeclareOptions;
            let queue = env_or("AMQP_QUEUE", "order_events");
            let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
                .await
                .map_err(|error| format!("cannot reach RabbitMQ at AMQP_URL ({url}): {error}"))?;
            let channel = connection.create_channel().await?;
            channel.queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), Default::default()).await?;
            connection.close(200, "declared".into()).await?;
            let publisher = idempotent_runtime::outbox::amqp::AmqpPublisher::connect(&url).await?;
            let description = format!("RabbitMQ queue {queue}");
            (Box::new(publisher), queue, description)
        } else if let Ok(url) = std::env::var("NATS_URL") {
            let stream = env_or("NATS_STREAM", "ORDER_EVENTS");
            let subject = env_or("NATS_SUBJECT", ORDER_CREATED);
            let client = async_nats::connect(&url)
                .await
                .map_err(|error| format!("cannot reach NATS at NATS_URL ({url}): {error}"))?;
            async_nats::jetstream::new(client.clone())
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: stream.clone(),
                    subjects: vec![subject.clone()],
                    // Copies of one id published within this window are stored once.
                    duplicate_window: std::time::Duration::from_secs(120),
                    ..Default::default()
                })
                .await
                .map_err(|error| format!("cannot create the JetStream stream {stream} (is JetStream on?): {error}"))?;
            let publisher = idempotent_runtime::outbox::nats::NatsPublisher::new(client);
            let description = format!("NATS JetStream stream {stream}, subject {subject}");
            (Box::new(publisher), subject, description)
        } else {
            return Ok(None);
        };
    let hold = std::time::Duration::from_millis(number_from_env("RELAY_HOLD_MS", 0)?);
    let batch_size = usize::try_from(number_from_env("RELAY_BATCH_SIZE", 100)?)?.max(1);
    let publisher = ReportingPublisher { inner, order_created, hold };
    let relay = OutboxRelay::builder(store, publisher).batch_size(batch_size).build();
    Ok(Some((relay, description)))
}

/// Prints one of the relay's lines: a stdout nobody reads any more (a closed pipe) must not stop the relay, as a
/// `println!` would, by panicking inside its task.
fn report(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}
