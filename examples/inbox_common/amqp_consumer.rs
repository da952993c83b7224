//! The consumer loop of the RabbitMQ examples (`inbox_amqp`, `order_events_amqp`): manual acknowledgements, each
//! delivery applied through the inbox by the example's [`Application`] and settled from what the receiver answered,
//! a lost connection re-established, and an exit once the queue has been idle.

use std::time::Duration;

use futures_util::StreamExt as _;
use idempotent_runtime::TransactionalReceiver;
use idempotent_runtime::inbox::{Disposition, amqp};
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Application, Error, Tally, outcome_word};

/// How many unacknowledged messages RabbitMQ hands one consumer: above 1, so that a message held back for a
/// delayed redelivery does not stall the others.
const PREFETCH: u16 = 16;

/// A connection named after the example and its role, and a channel on which the durable `queue` is declared.
pub(crate) async fn connect(example: &str, role: &str, url: &str, queue: &str) -> Result<(Connection, Channel), Error> {
    let name = format!("{example} {role} pid {}", std::process::id());
    let connection = Connection::connect(url, ConnectionProperties::default().with_connection_name(name.into()))
        .await
        .map_err(|error| format!("cannot reach RabbitMQ at AMQP_URL ({url}): {error}"))?;
    let channel = connection.create_channel().await?;
    channel.queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default()).await?;
    Ok((connection, channel))
}

/// What a consumer run needs: where to consume, the inbox, and the example's settings.
pub(crate) struct Consumer<'a, A> {
    pub(crate) example: &'a str,
    pub(crate) url: &'a str,
    pub(crate) queue: &'a str,
    pub(crate) inbox: &'a TransactionalReceiver,
    pub(crate) application: &'a A,
    /// `HANDLER_DELAY_MS`: how long the work sleeps inside its transaction after its write.
    pub(crate) delay: Duration,
    /// `IDLE_EXIT_MS`: the run ends once the queue has been idle this long.
    pub(crate) idle: Duration,
}

impl<A: Application> Consumer<'_, A> {
    /// Consumes until the queue has been idle, reconnecting after a lost connection (at most 20 times), and prints
    /// the run's last line (`<example>: idle for N ms; deliveries ...`).
    pub(crate) async fn run(&self) -> Result<(), Error> {
        println!("{}: consuming queue {} (pid {})", self.example, self.queue, std::process::id());
        let mut tally = Tally::default();
        loop {
            match self.consume_until_idle(&mut tally).await {
                Ok(()) => break,
                // RabbitMQ puts this connection's unacknowledged messages back by itself: nothing to undo.
                Err(error) if tally.reconnects < 20 => {
                    tally.reconnects += 1;
                    println!("lost the broker connection ({error}); reconnecting");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return Err(error),
            }
        }
        println!("{}: idle for {} ms; {}", self.example, self.idle.as_millis(), tally.summary());
        Ok(())
    }

    /// Consumes on one connection until the queue has been idle (Ok) or the connection fails (Err).
    async fn consume_until_idle(&self, tally: &mut Tally) -> Result<(), Error> {
        let (connection, channel) = connect(self.example, "consume", self.url, self.queue).await?;
        channel.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
        let tag = format!("{}-{}", self.example, std::process::id());
        let mut consumer = channel
            .basic_consume(
                self.queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        // Messages held back for a delayed redelivery; the queue is not idle while any is.
        let mut held_back = JoinSet::new();
        let mut last_activity = Instant::now();
        loop {
            tokio::select! {
                next = consumer.next() => {
                    let delivery = match next {
                        Some(Ok(delivery)) => delivery,
                        Some(Err(error)) => return Err(error.into()),
                        None => return Err("the broker cancelled the consumer".into()),
                    };
                    if let Some(hold_back) = self.handle(delivery, tally).await? {
                        held_back.spawn(hold_back);
                    }
                    last_activity = Instant::now();
                }
                Some(_) = held_back.join_next(), if !held_back.is_empty() => last_activity = Instant::now(),
                () = tokio::time::sleep_until(last_activity + self.idle), if held_back.is_empty() => break,
            }
        }
        connection.close(200, "idle".into()).await?;
        Ok(())
    }

    /// Applies one delivery and settles it; a delivery to redeliver later comes back as the future that does so.
    async fn handle(
        &self,
        delivery: Delivery,
        tally: &mut Tally,
    ) -> Result<Option<impl Future<Output = ()> + Send + 'static>, Error> {
        let Some(key) = amqp::message_key(&delivery).map(str::to_owned) else {
            let disposition = Disposition::no_key("no message_id");
            tally.dead_lettered += 1;
            amqp::settle(&delivery, &disposition).await?;
            return Ok(None);
        };
        let answer = self.application.apply(self.inbox, &key, &delivery.data, self.delay).await;
        let disposition = Disposition::of(&answer, |error| self.application.on_failed(error));
        tally.count(&answer, &disposition);
        println!("{} {key}", outcome_word(&answer));
        if let Disposition::Redeliver { .. } = disposition {
            return Ok(Some(async move {
                // A failed nack means the connection is gone: RabbitMQ redelivers the message anyway.
                let _ = amqp::settle(&delivery, &disposition).await;
            }));
        }
        amqp::settle(&delivery, &disposition).await?;
        Ok(None)
    }
}
