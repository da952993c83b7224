//! The consumer of the `orders` example's `order.created` events on RabbitMQ: each event applied once to
//! PostgreSQL through the inbox, however often the relay sent it and the broker delivered it.
//!
//! ```sh
//! export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f
//! cargo run --example orders                          # POST /orders enqueues order.created; the relay sends it
//! cargo run --example order_events_amqp -- consume    # applies each event once to table order_events
//! ```
//!
//! `consume` declares the durable queue `order_events` (the relay of `orders` publishes there, on the default
//! exchange), consumes it with manual acknowledgements (prefetch 16) and applies each event through the
//! transactional receiver, keyed by the AMQP `message_id` (the outbox's deterministic id): one row in
//! `order_events (message_id text PRIMARY KEY, order_id bigint NOT NULL, applied_at timestamptz NOT NULL DEFAULT
//! now())` (created at start), written in the same PostgreSQL transaction as the message's idempotency record,
//! then `HANDLER_DELAY_MS` of sleep inside that transaction. The message is acknowledged only after the commit. A
//! copy of an applied event (the relay sent it again after a crash, or the broker redelivered it) replays the
//! stored result and writes nothing. A lost broker connection is re-established. The process exits 0 once the
//! queue has been idle for `IDLE_EXIT_MS`.
//!
//! Output as `inbox_amqp`'s: one line per delivery (`writing <key>` once the row is written, then `<outcome>
//! <key>`: `applied`, `replayed`, `in-flight`, `key-reused`, `store-unavailable` or `failed`) and a last line
//! `order_events_amqp: idle ...; deliveries D, applied A, replayed R, redelivered X, dead-lettered Y, reconnects Z`.
//!
//! Environment: `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`), `DATABASE_URL` (required),
//! `HANDLER_DELAY_MS` (default 0), `IDLE_EXIT_MS` (default 3000), and `AMQP_QUEUE` (default `order_events`: the
//! test suite uses a queue of its own, and gives `orders` the same).

mod common;
mod inbox_common;
mod order_events_common;

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

use crate::inbox_common::{Error, Tally, env_or, millis_from_env, outcome_word};
use crate::order_events_common::{apply, inbox_from_env, on_failed, require_consume};

const EXAMPLE: &str = "order_events_amqp";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// How many unacknowledged messages RabbitMQ hands one consumer: above 1, so that a message held back for a
/// delayed redelivery does not stall the others.
const PREFETCH: u16 = 16;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    if let Err(error) = run().await {
        eprintln!("{EXAMPLE}: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Error> {
    require_consume(EXAMPLE)?;
    let url = env_or("AMQP_URL", DEFAULT_AMQP_URL);
    let queue = env_or("AMQP_QUEUE", "order_events");
    let inbox = inbox_from_env(EXAMPLE).await?;
    let delay = millis_from_env("HANDLER_DELAY_MS", 0)?;
    let idle = millis_from_env("IDLE_EXIT_MS", 3000)?;
    println!("{EXAMPLE}: consuming queue {queue} (pid {})", std::process::id());
    let mut tally = Tally::default();
    loop {
        match consume_until_idle(&url, &queue, &inbox, delay, idle, &mut tally).await {
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
    println!("{EXAMPLE}: idle for {} ms; {}", idle.as_millis(), tally.summary());
    Ok(())
}

async fn connect(url: &str, queue: &str) -> Result<(Connection, Channel), Error> {
    let name = format!("{EXAMPLE} pid {}", std::process::id());
    let connection = Connection::connect(url, ConnectionProperties::default().with_connection_name(name.into()))
        .await
        .map_err(|error| format!("cannot reach RabbitMQ at AMQP_URL ({url}): {error}"))?;
    let channel = connection.create_channel().await?;
    channel.queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default()).await?;
    Ok((connection, channel))
}

/// Consumes on one connection until the queue has been idle for `idle` (Ok) or the connection fails (Err).
async fn consume_until_idle(
    url: &str,
    queue: &str,
    inbox: &TransactionalReceiver,
    delay: Duration,
    idle: Duration,
    tally: &mut Tally,
) -> Result<(), Error> {
    let (connection, channel) = connect(url, queue).await?;
    channel.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    let tag = format!("{EXAMPLE}-{}", std::process::id());
    let mut consumer = channel
        .basic_consume(queue.into(), tag.as_str().into(), BasicConsumeOptions::default(), FieldTable::default())
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
                if let Some(hold_back) = handle(inbox, delivery, delay, tally).await? {
                    held_back.spawn(hold_back);
                }
                last_activity = Instant::now();
            }
            Some(_) = held_back.join_next(), if !held_back.is_empty() => last_activity = Instant::now(),
            () = tokio::time::sleep_until(last_activity + idle), if held_back.is_empty() => break,
        }
    }
    connection.close(200, "idle".into()).await?;
    Ok(())
}

/// Applies one delivery and settles it; a delivery to redeliver later comes back as the future that does so.
async fn handle(
    inbox: &TransactionalReceiver,
    delivery: Delivery,
    delay: Duration,
    tally: &mut Tally,
) -> Result<Option<impl Future<Output = ()> + Send + 'static>, Error> {
    let Some(key) = amqp::message_key(&delivery).map(str::to_owned) else {
        let disposition = Disposition::no_key("no message_id");
        tally.dead_lettered += 1;
        amqp::settle(&delivery, &disposition).await?;
        return Ok(None);
    };
    let answer = apply(inbox, &key, &delivery.data, delay).await;
    let disposition = Disposition::of(&answer, on_failed);
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
