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

use crate::inbox_common::amqp_consumer::Consumer;
use crate::inbox_common::{Error, env_or, millis_from_env};
use crate::order_events_common::{OrderEvents, inbox_from_env, require_consume};

const EXAMPLE: &str = "order_events_amqp";
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
    require_consume(EXAMPLE)?;
    let url = env_or("AMQP_URL", DEFAULT_AMQP_URL);
    let queue = env_or("AMQP_QUEUE", "order_events");
    let inbox = inbox_from_env(EXAMPLE).await?;
    let consumer = Consumer {
        example: EXAMPLE,
        url: &url,
        queue: &queue,
        inbox: &inbox,
        application: &OrderEvents,
        delay: millis_from_env("HANDLER_DELAY_MS", 0)?,
        idle: millis_from_env("IDLE_EXIT_MS", 3000)?,
    };
    consumer.run().await
}
