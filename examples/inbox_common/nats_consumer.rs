//! The consumer loop of the NATS JetStream examples (`inbox_nats`, `order_events_nats`): a durable pull consumer
//! with explicit acknowledgements, each message applied through the inbox by the example's [`Application`] and
//! settled from what the receiver answered, and an exit once the stream has been idle. The client re-establishes a
//! lost connection by itself.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt as _;
use idempotent_runtime::TransactionalReceiver;
use idempotent_runtime::inbox::{Disposition, nats};

use super::{Application, Error, Tally, outcome_word};

/// How long the server waits for an acknowledgement before it redelivers: short, so that a killed consumer's
/// message is applied by another within seconds; longer than any handler needs.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// How many messages one pull asks for: a few, so that a killed consumer holds few.
const PULL_BATCH: usize = 4;

/// The durable consumer `name` of `stream` (created if missing), acknowledged message by message.
pub(crate) async fn durable_consumer(
    stream: &jetstream::stream::Stream,
    name: &str,
) -> Result<jetstream::consumer::PullConsumer, Error> {
    let config = pull::Config {
        durable_name: Some(name.to_owned()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        ..Default::default()
    };
    Ok(stream
        .get_or_create_consumer(name, config)
        .await
        .map_err(|error| format!("cannot create the durable consumer {name}: {error}"))?)
}

/// What a consumer run needs: the client (for its reconnect count), the consumer, the inbox, and the example's
/// settings.
pub(crate) struct Consumer<'a, A> {
    pub(crate) example: &'a str,
    pub(crate) client: &'a async_nats::Client,
    pub(crate) consumer: &'a jetstream::consumer::PullConsumer,
    pub(crate) inbox: &'a TransactionalReceiver,
    pub(crate) application: &'a A,
    /// `HANDLER_DELAY_MS`: how long the work sleeps inside its transaction after its write.
    pub(crate) delay: Duration,
    /// `IDLE_EXIT_MS`: the run ends once no message came for this long.
    pub(crate) idle: Duration,
}

impl<A: Application> Consumer<'_, A> {
    /// Consumes until no message came for `idle`, and prints the run's last line (`<example>: idle for N ms;
    /// deliveries ...`).
    pub(crate) async fn run(&self) -> Result<(), Error> {
        let mut tally = Tally::default();
        let mut messages = self.pull_messages().await?;
        loop {
            let next = match tokio::time::timeout(self.idle, messages.next()).await {
                Err(_) => break,
                Ok(next) => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                // Heartbeat gaps and pull errors around a reconnect: the stream carries on.
                Some(Err(error)) => {
                    println!("pull error ({error}); carrying on");
                    continue;
                }
                None => {
                    messages = self.pull_messages().await?;
                    continue;
                }
            };
            let Some(key) = nats::message_key(&message).map(str::to_owned) else {
                tally.dead_lettered += 1;
                settle(&message, &Disposition::no_key("no Idempotency-Key header")).await;
                continue;
            };
            let answer = self.application.apply(self.inbox, &key, &message.payload, self.delay).await;
            let disposition = Disposition::of(&answer, |error| self.application.on_failed(error));
            tally.count(&answer, &disposition);
            println!("{} {key}", outcome_word(&answer));
            settle(&message, &disposition).await;
        }
        // Counted from the client's own connection events.
        let connects = self.client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed);
        tally.reconnects = usize::try_from(connects.saturating_sub(1)).unwrap_or(usize::MAX);
        println!("{}: idle for {} ms; {}", self.example, self.idle.as_millis(), tally.summary());
        Ok(())
    }

    /// The consumer's messages, pulled a few at a time: a large batch would sit in one process's buffer
    /// (unavailable to the competing consumers, and stuck until the ack wait if that process is killed).
    async fn pull_messages(&self) -> Result<pull::Stream, Error> {
        Ok(self.consumer.stream().max_messages_per_batch(PULL_BATCH).messages().await?)
    }
}

async fn settle(message: &jetstream::Message, disposition: &Disposition) {
    // A lost acknowledgement is redelivered after the ack wait, and replayed: log it and carry on.
    if let Err(error) = nats::settle(message, disposition).await {
        println!("could not settle a message ({error}); it will be redelivered");
    }
}
