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

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};

use crate::inbox_common::amqp_consumer::{Consumer, connect};
use crate::inbox_common::{
    Command, Error, Ledger, command, copies_to_publish, env_or, inbox_from_env, millis_from_env,
};

const EXAMPLE: &str = "inbox_amqp";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

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
            let consumer = Consumer {
                example: EXAMPLE,
                url: &url,
                queue: &queue,
                inbox: &inbox,
                application: &Ledger,
                delay: millis_from_env("HANDLER_DELAY_MS", 0)?,
                idle: millis_from_env("IDLE_EXIT_MS", 3000)?,
            };
            consumer.run().await
        }
    }
}

async fn publish(url: &str, queue: &str, n: usize) -> Result<(), Error> {
    let (connection, channel) = connect(EXAMPLE, "publish", url, queue).await?;
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
