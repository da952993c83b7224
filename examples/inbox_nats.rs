//! The inbox on NATS JetStream: each transfer applied to PostgreSQL exactly once, however often the stream
//! delivers it, by competing consumers that may be killed at any time.
//!
//! ```sh
//! cargo run --example inbox_nats -- publish 200       # 200 transfers, each sent 1 to 3 times, shuffled
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example inbox_nats -- consume
//! ```
//!
//! `publish N` sends N logical transfers (`{"account": ..., "amount": ...}`) to the subject `ledger.transfers` of
//! the stream `LEDGER` (created if missing), each 1 to 3 times as separate messages carrying the same key in the
//! header `Idempotency-Key`, and each copy its own `Nats-Msg-Id`, so that the stream's publish deduplication does
//! not hide the duplicates; shuffled. It waits for the stream's acknowledgement of every message, prints one
//! line and exits.
//!
//! `consume` pulls from the durable consumer `ledger-consumer` (explicit acknowledgements, a 5 s ack wait: a
//! killed consumer's message comes back within seconds) and applies each message through the transactional
//! receiver: one row in `inbox_ledger (message_id text, account text, amount bigint, applied_at timestamptz)`
//! (created at start), written in the same PostgreSQL transaction as the message's idempotency record and its
//! stored result, then `HANDLER_DELAY_MS` of sleep inside that transaction. The message is acknowledged (and the
//! acknowledgement confirmed by the server) only after the commit. A duplicate whose first copy is being applied
//! elsewhere is NAKed with a delay; a copy of an applied message replays the stored result and writes nothing; a
//! key reused with another body is terminated (never redelivered) with a log line. A lost connection is
//! re-established by the client. The process exits 0 once the consumer has been idle for `IDLE_EXIT_MS`.
//!
//! Output as `inbox_amqp`'s: one line per delivery (`writing <key>`, then `<outcome> <key>`) and a last line
//! `inbox_nats: idle ...; deliveries D, applied A, replayed R, redelivered X, dead-lettered Y, reconnects Z`.
//!
//! Environment: `NATS_URL` (default `nats://127.0.0.1:4222`), `DATABASE_URL` (required by `consume`),
//! `HANDLER_DELAY_MS` (default 0), `IDLE_EXIT_MS` (default 3000), and, for the test suite's private names,
//! `NATS_STREAM` (default `LEDGER`), `NATS_SUBJECT` (default `ledger.transfers`), `NATS_CONSUMER` (default
//! `ledger-consumer`); `PUBLISH_MANIFEST=<path>` makes `publish` write `<key> <copies>` lines there.

mod common;
mod inbox_common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, header};
use idempotent_runtime::TransactionalReceiver;
use idempotent_runtime::inbox::nats;

use crate::inbox_common::nats_consumer::{Consumer, durable_consumer};
use crate::inbox_common::{
    Command, Error, Ledger, command, copies_to_publish, env_or, inbox_from_env, millis_from_env,
};

const EXAMPLE: &str = "inbox_nats";
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The stream, subject and durable consumer names.
struct Names {
    stream: String,
    subject: String,
    consumer: String,
}

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
    let url = env_or("NATS_URL", DEFAULT_NATS_URL);
    let names = Names {
        stream: env_or("NATS_STREAM", "LEDGER"),
        subject: env_or("NATS_SUBJECT", "ledger.transfers"),
        consumer: env_or("NATS_CONSUMER", "ledger-consumer"),
    };
    match command {
        Command::Publish(n) => publish(&url, &names, n).await,
        Command::Consume => {
            let inbox = inbox_from_env(EXAMPLE).await?;
            let delay = millis_from_env("HANDLER_DELAY_MS", 0)?;
            let idle = millis_from_env("IDLE_EXIT_MS", 3000)?;
            consume(&url, &names, &inbox, delay, idle).await
        }
    }
}

async fn connect(url: &str, names: &Names) -> Result<(async_nats::Client, jetstream::stream::Stream), Error> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("{EXAMPLE} pid {}", std::process::id()))
        .event_callback(|event| async move {
            if matches!(event, async_nats::Event::Disconnected) {
                println!("lost the broker connection; the client reconnects");
            }
        })
        .connect(url)
        .await
        .map_err(|error| format!("cannot reach NATS at NATS_URL ({url}): {error}"))?;
    let context = jetstream::new(client.clone());
    let stream = context
        .get_or_create_stream(stream::Config {
            name: names.stream.clone(),
            subjects: vec![names.subject.clone()],
            ..Default::default()
        })
        .await
        .map_err(|error| {
            format!("cannot create the JetStream stream {} (is JetStream on? `-js`): {error}", names.stream)
        })?;
    Ok((client, stream))
}

async fn publish(url: &str, names: &Names, n: usize) -> Result<(), Error> {
    let (client, _) = connect(url, names).await?;
    let context = jetstream::new(client.clone());
    let (run, copies) = copies_to_publish(n);
    let mut acks = Vec::with_capacity(copies.len());
    for copy in &copies {
        let mut headers = HeaderMap::new();
        headers.insert(nats::KEY_HEADER, copy.key.as_str());
        // Each copy its own id: the stream's publish dedup must not hide the duplicates the consumer must handle.
        headers.insert(header::NATS_MESSAGE_ID, format!("{}.{}", copy.key, copy.copy).as_str());
        acks.push(context.publish_with_headers(names.subject.clone(), headers, copy.body.clone().into()).await?);
    }
    for ack in acks {
        ack.await?;
    }
    client.flush().await?;
    inbox_common::write_manifest(&copies)?;
    println!(
        "{EXAMPLE}: published {n} transfers as {} messages to stream {} subject {} (run {run})",
        copies.len(),
        names.stream,
        names.subject
    );
    Ok(())
}

async fn consume(
    url: &str,
    names: &Names,
    inbox: &TransactionalReceiver,
    delay: Duration,
    idle: Duration,
) -> Result<(), Error> {
    let (client, stream) = connect(url, names).await?;
    let consumer = durable_consumer(&stream, &names.consumer).await?;
    println!("{EXAMPLE}: consuming {} from stream {} (pid {})", names.consumer, names.stream, std::process::id());
    let consumer =
        Consumer { example: EXAMPLE, client: &client, consumer: &consumer, inbox, application: &Ledger, delay, idle };
    consumer.run().await
}
