//! The consumer of the `orders` example's `order.created` events on NATS JetStream: each event applied once to
//! PostgreSQL through the inbox, however often the relay sent it and the stream delivered it.
//!
//! ```sh
//! export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres NATS_URL=nats://127.0.0.1:4222
//! cargo run --example orders                          # POST /orders enqueues order.created; the relay sends it
//! cargo run --example order_events_nats -- consume    # applies each event once to table order_events
//! ```
//!
//! `consume` pulls from the durable consumer `order-events-consumer` of the stream `ORDER_EVENTS` (subject
//! `order.created`; created if missing, with the 2 min duplicate window the relay's `Nats-Msg-Id` is checked
//! against) with explicit acknowledgements and a 5 s ack wait (a killed consumer's message comes back within
//! seconds), and applies each event through the transactional receiver, keyed by the `Idempotency-Key` header
//! (the outbox's deterministic id): one row in `order_events (message_id text PRIMARY KEY, order_id bigint NOT
//! NULL, applied_at timestamptz NOT NULL DEFAULT now())` (created at start), written in the same PostgreSQL
//! transaction as the message's idempotency record, then `HANDLER_DELAY_MS` of sleep inside that transaction. The
//! message is acknowledged (and the acknowledgement confirmed by the server) only after the commit. A copy of an
//! applied event replays the stored result and writes nothing. The client re-establishes a lost connection. The
//! process exits 0 once the consumer has been idle for `IDLE_EXIT_MS`.
//!
//! Output as `order_events_amqp`'s, with the last line `order_events_nats: idle ...; deliveries D, applied A,
//! replayed R, redelivered X, dead-lettered Y, reconnects Z`.
//!
//! Environment: `NATS_URL` (default `nats://127.0.0.1:4222`), `DATABASE_URL` (required), `HANDLER_DELAY_MS`
//! (default 0), `IDLE_EXIT_MS` (default 3000), and, for the test suite's private names, `NATS_STREAM` (default
//! `ORDER_EVENTS`), `NATS_SUBJECT` (default `order.created`), `NATS_CONSUMER` (default `order-events-consumer`).

mod common;
mod inbox_common;
mod order_events_common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::inbox_common::nats_consumer::{Consumer, durable_consumer};
use crate::inbox_common::{Error, env_or, millis_from_env};
use crate::order_events_common::{OrderEvents, inbox_from_env, require_consume};

const EXAMPLE: &str = "order_events_nats";
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

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
    let url = env_or("NATS_URL", DEFAULT_NATS_URL);
    let stream_name = env_or("NATS_STREAM", "ORDER_EVENTS");
    let subject = env_or("NATS_SUBJECT", "order.created");
    let consumer_name = env_or("NATS_CONSUMER", "order-events-consumer");
    let inbox = inbox_from_env(EXAMPLE).await?;
    let delay = millis_from_env("HANDLER_DELAY_MS", 0)?;
    let idle = millis_from_env("IDLE_EXIT_MS", 3000)?;

    let client = async_nats::ConnectOptions::new()
        .name(format!("{EXAMPLE} pid {}", std::process::id()))
        .connect(&url)
        .await
        .map_err(|error| format!("cannot reach NATS at NATS_URL ({url}): {error}"))?;
    let stream = jetstream::new(client.clone())
        .get_or_create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![subject],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|error| {
            format!("cannot create the JetStream stream {stream_name} (is JetStream on? `-js`): {error}")
        })?;
    let consumer = durable_consumer(&stream, &consumer_name).await?;
    println!("{EXAMPLE}: consuming {consumer_name} from stream {stream_name} (pid {})", std::process::id());
    let consumer = Consumer {
        example: EXAMPLE,
        client: &client,
        consumer: &consumer,
        inbox: &inbox,
        application: &OrderEvents,
        delay,
        idle,
    };
    consumer.run().await
}
