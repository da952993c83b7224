//! The inbox on RabbitMQ: each transfer applied to PostgreSQL exactly once, however often the broker delivers it,
//! by competing consumers that may be killed at any time.
//!
//! ```sh
//! cargo run --example inbox_amqp -- publish 200       # 200 transfers, each sent 1 to 3 times, shuffled
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example inbox_amqp -- consume
//! ```
//!
//! `publish N` sends N logical transfers (`{"account": ..., "amount": ...}`), each 1 to 3 times as separate
//! persistent messages carrying the same key in their AMQP `message_id`, shuffled, to the durable queue `ledger`
//! (publisher confirms: when it exits, the broker has them all), prints one line and exits.
//!
//! `consume` declares the queue, consumes it with manual acknowledgements (prefetch 16) and applies each message
//! through the transactional receiver: one row in `inbox_ledger (message_id text, account text, amount bigint,
//! applied_at timestamptz)` (created at start), written in the same PostgreSQL transaction as the message's
//! idempotency record and its stored result, then `HANDLER_DELAY_MS` of sleep inside that transaction. The message
//! is acknowledged only after the commit. A duplicate whose first copy is being applied elsewhere is put back a
//! second later; a copy of an applied message replays the stored result and writes nothing; a key reused with
//! another body is rejected to the queue's dead-letter route (see `inbox::amqp`) with a log line. A lost broker
//! connection is re-established. The process exits 0 once the queue has been idle for `IDLE_EXIT_MS`.
//!
//! It prints one line per delivery (`writing <key>` once the row is written, then `<outcome> <key>`, the outcome
//! being `applied`, `replayed`, `in-flight`, `key-reused`, `store-unavailable` or `failed`) and a last line
//! `inbox_amqp: idle ...; deliveries D, applied A, replayed R, redelivered X, dead-lettered Y, reconnects Z`.
//!
//! Environment: `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`), `DATABASE_URL` (required by
//! `consume`), `HANDLER_DELAY_MS` (default 0), `IDLE_EXIT_MS` (default 3000), and `AMQP_QUEUE` (default `ledger`:
//! the test suite uses a queue of its own so that it never meets a user's run); `PUBLISH_MANIFEST=<path>` makes
//! `publish` write `<key> <copies>` lines there, for the test suite.

mod common;
mod inbox_common;

use std::time::Duration;

use futures_util::StreamExt as _;
use idempotent_runtime::TransactionalReceiver;
use idempotent_runtime::inbox::{Disposition, amqp};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::inbox_common::{
    Command, Error, Tally, apply, command, copies_to_publish, env_or, inbox_from_env, millis_from_env,
};

const EXAMPLE: &str = "inbox_amqp";
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
    let command = command(EXAMPLE)?;
    let url = env_or("AMQP_URL", DEFAULT_AMQP_URL);
    let queue = env_or("AMQP_QUEUE", "ledger");
    match command {
        Command::Publish(n) => publish(&url, &queue, n).await,
        Command::Consume => {
            let inbox = inbox_from_env(EXAMPLE).await?;
            let delay = millis_from_env("HANDLER_DELAY_MS", 0)?;
            let idle = millis_from_env("IDLE_EXIT_MS", 3000)?;
            consume(&url, &queue, &inbox, delay, idle).await
        }
    }
}

async fn connect(url: &str, queue: &str, role: &str) -> Result<(Connection, Channel), Error> {
    let name = format!("{EXAMPLE} {role} pid {}", std::process::id());
    let connection = Connection::connect(url, ConnectionProperties::default().with_connection_name(name.into()))
        .await
        .map_err(|error| format!("cannot reach RabbitMQ at AMQP_URL ({url}): {error}"))?;
    let channel = connection.create_channel().await?;
    channel.queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default()).await?;
    Ok((connection, channel))
}

async fn publish(url: &str, queue: &str, n: usize) -> Result<(), Error> {
    let (connection, channel) = connect(url, queue, "publish").await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let (run, copies) = copies_to_publish(n);
    let mut confirms = Vec::with_capacity(copies.len());
    for copy in &copies {
        let properties = BasicProperties::default()
            .with_message_id(copy.key.as_str().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2); // persistent: survives a broker restart, as the durable queue does
        let confirm = channel
            .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), &copy.body, properties)
            .await?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        if !confirm.await?.is_ack() {
            return Err("RabbitMQ refused a message (publisher confirm nack)".into());
        }
    }
    connection.close(200, "published".into()).await?;
    inbox_common::write_manifest(&copies)?;
    println!("{EXAMPLE}: published {n} transfers as {} messages to queue {queue} (run {run})", copies.len());
    Ok(())
}

async fn consume(
    url: &str,
    queue: &str,
    inbox: &TransactionalReceiver,
    delay: Duration,
    idle: Duration,
) -> Result<(), Error> {
    println!("{EXAMPLE}: consuming queue {queue} (pid {})", std::process::id());
    let mut tally = Tally::default();
    loop {
        match consume_until_idle(url, queue, inbox, delay, idle, &mut tally).await {
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

/// Consumes on one connection until the queue has been idle for `idle` (Ok) or the connection fails (Err).
async fn consume_until_idle(
    url: &str,
    queue: &str,
    inbox: &TransactionalReceiver,
    delay: Duration,
    idle: Duration,
    tally: &mut Tally,
) -> Result<(), Error> {
    let (connection, channel) = connect(url, queue, "consume").await?;
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
    let disposition = Disposition::of(&answer, inbox_common::on_failed);
    tally.count(&answer, &disposition);
    println!("{} {key}", inbox_common::outcome_word(&answer));
    if let Disposition::Redeliver { .. } = disposition {
        return Ok(Some(async move {
            // A failed nack means the connection is gone: RabbitMQ redelivers the message anyway.
            let _ = amqp::settle(&delivery, &disposition).await;
        }));
    }
    amqp::settle(&delivery, &disposition).await?;
    Ok(None)
}
