//! A message consumer with at-least-once delivery, made effectively-once by the receiver: every message is
//! applied to the ledger once, however often and in whatever order it is delivered.
//!
//! ```sh
//! cargo run --example consumer                                                        # MemoryStore, in-memory ledger
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example consumer  # PostgreSQL for both
//! ```
//!
//! A seeded "broker" delivers 20 messages 2 to 4 times each, shuffled, to 4 workers that take deliveries
//! concurrently, so duplicates of one message often arrive while its first delivery is still being applied (those
//! wait for it: `on_conflict_wait`). Each message's processing appends an entry to the ledger and returns a receipt;
//! redeliveries get the stored receipt. The example prints, per message, how often it was delivered and how many
//! ledger entries it produced, then a summary line, and exits non-zero if any message was applied twice or never.
//! `CONSUMER_SEED` changes the delivery order. Message ids carry a per-run prefix, so runs against one database
//! do not replay each other.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use idempotent_runtime::{MemoryStore, PostgresStore, ReceiveError, Received, Receiver, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::types::Type;

use crate::common::{create_tables, listen_config, postgres_config, postgres_pool};

const MESSAGES: usize = 20;
const WORKERS: usize = 4;
const DEFAULT_SEED: u64 = 6;
/// The receiver's namespace: the consumer's name.
const CONSUMER: &str = "ledger-consumer";

const LEDGER_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS consumer_ledger (
    entry      bigserial   PRIMARY KEY,
    message_id text        NOT NULL,
    account    text        NOT NULL,
    amount     bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS consumer_ledger_message_id ON consumer_ledger (message_id);
";

/// A message as the broker delivers it: an id (the idempotency key) and a payload (fingerprinted).
#[derive(Debug, Clone)]
struct Message {
    number: usize,
    id: String,
    payload: String,
}

/// What the message's body says to do.
#[derive(Debug, Serialize, Deserialize)]
struct Transfer {
    account: String,
    amount: i64,
}

/// What processing a message returns; stored, and handed to every redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Receipt {
    entry: i64,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where processed messages land.
enum Ledger {
    Memory(Mutex<Vec<String>>),
    Postgres(Pool),
}

impl Ledger {
    /// Appends one entry for the message; returns the entry's number.
    async fn append(&self, message_id: &str, transfer: &Transfer) -> Result<i64, Error> {
        match self {
            Self::Memory(entries) => {
                let mut entries = entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                entries.push(message_id.to_owned());
                Ok(i64::try_from(entries.len())?)
            }
            Self::Postgres(pool) => {
                let client = pool.get().await?;
                let row = client
                    .query_typed_one(
                        "INSERT INTO consumer_ledger (message_id, account, amount) VALUES ($1, $2, $3) RETURNING entry",
                        &[(&message_id, Type::TEXT), (&transfer.account, Type::TEXT), (&transfer.amount, Type::INT8)],
                    )
                    .await?;
                Ok(row.get(0))
            }
        }
    }

    /// How many entries the message produced.
    async fn entries_of(&self, message_id: &str) -> Result<usize, Error> {
        match self {
            Self::Memory(entries) => {
                let entries = entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(entries.iter().filter(|id| *id == message_id).count())
            }
            Self::Postgres(pool) => {
                let client = pool.get().await?;
                let row = client
                    .query_typed_one(
                        "SELECT count(*) FROM consumer_ledger WHERE message_id = $1",
                        &[(&message_id, Type::TEXT)],
                    )
                    .await?;
                Ok(usize::try_from(row.get::<_, i64>(0))?)
            }
        }
    }
}

/// What the workers saw for one message.
#[derive(Debug, Default)]
struct Tally {
    delivered: usize,
    processed: usize,
    replayed: usize,
    nacked: usize,
    receipts: Vec<Receipt>,
    /// Deliveries of this message being handled right now.
    running: usize,
    /// Deliveries that arrived while another delivery of this message was being handled.
    overlapping: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let (store, ledger, backend): (Arc<dyn Store>, Ledger, &str) = match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let config = postgres_config(&url)?;
            let pool = postgres_pool(config.clone())?;
            // The listener lets a duplicate wait for the running delivery without polling (behind a pooler, give
            // it a direct connection in DATABASE_LISTEN_URL).
            let store = PostgresStore::new(pool.clone()).with_listener(listen_config(config)?);
            store.migrate().await.map_err(|error| format!("cannot prepare the idempotency table: {error}"))?;
            create_tables(&pool, LEDGER_SCHEMA).await?;
            (Arc::new(store), Ledger::Postgres(pool), "PostgreSQL (DATABASE_URL) store and ledger")
        }
        Err(_) => (Arc::new(MemoryStore::new()), Ledger::Memory(Mutex::default()), "in-memory store and ledger"),
    };
    let seed = std::env::var("CONSUMER_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or(DEFAULT_SEED);
    let mut rng = fastrand::Rng::with_seed(seed);
    let run = format!("{:08x}", fastrand::u32(..));
    let messages: Vec<Message> = (1..=MESSAGES)
        .map(|number| {
            let transfer = Transfer { account: format!("acct-{}", rng.u8(1..=5)), amount: rng.i64(100..10_000) };
            let payload = serde_json::to_string(&transfer).expect("a transfer serializes");
            Message { number, id: format!("{run}-{number:02}"), payload }
        })
        .collect();
    // At-least-once: each message 2 to 4 times, in any order.
    let mut deliveries: Vec<Message> =
        messages.iter().flat_map(|message| std::iter::repeat_n(message.clone(), rng.usize(2..=4))).collect();
    rng.shuffle(&mut deliveries);
    println!(
        "consumer example: {backend}, {} deliveries of {MESSAGES} messages to {WORKERS} workers (seed {seed})",
        deliveries.len()
    );

    // A duplicate that arrives while its first delivery is being applied waits for it and gets its receipt.
    let receiver = Receiver::new(store).on_conflict_wait(Duration::from_secs(10));
    let ledger = Arc::new(ledger);
    let tallies = Arc::new(Mutex::new(BTreeMap::<usize, Tally>::new()));
    let (broker, queue) = mpsc::channel::<Message>(WORKERS);
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (receiver, ledger, tallies, queue) = (receiver.clone(), ledger.clone(), tallies.clone(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let Some(message) = queue.lock().await.recv().await else { break };
                    consume(&receiver, &ledger, &tallies, message).await;
                }
            })
        })
        .collect();
    for delivery in deliveries {
        broker.send(delivery).await?;
    }
    drop(broker);
    for worker in workers {
        worker.await?;
    }

    let tallies = std::mem::take(&mut *tallies.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let (mut deliveries, mut processed, mut replayed, mut nacked, mut overlapping, mut wrong) = (0, 0, 0, 0, 0, 0);
    for message in &messages {
        let tally = &tallies[&message.number];
        // The ledger is the truth: how many entries did this message produce?
        let entries = ledger.entries_of(&message.id).await.map_err(|error| error.to_string())?;
        let once = entries == 1 && tally.processed == 1 && tally.receipts.windows(2).all(|pair| pair[0] == pair[1]);
        wrong += usize::from(!once);
        let receipt = tally.receipts.first().map_or_else(|| "none".to_owned(), |receipt| receipt.entry.to_string());
        let mut line = format!(
            "message {:02}: delivered {}, processed {entries}, replayed {}, ledger entry #{receipt}",
            message.number, tally.delivered, tally.replayed
        );
        if tally.overlapping > 0 {
            line += &format!(" ({} concurrent)", tally.overlapping);
        }
        if tally.nacked > 0 {
            line += &format!(", nacked {}", tally.nacked);
        }
        if !once {
            line += " <- NOT EXACTLY ONCE";
        }
        println!("{line}");
        deliveries += tally.delivered;
        processed += entries;
        replayed += tally.replayed;
        nacked += tally.nacked;
        overlapping += tally.overlapping;
    }
    println!("{overlapping} deliveries arrived while another delivery of their message was being processed");
    let nacked = if nacked > 0 { format!(", {nacked} nacked") } else { String::new() };
    println!("{MESSAGES} messages, {deliveries} deliveries, {processed} processed, {replayed} replayed{nacked}");
    if wrong > 0 {
        eprintln!("{wrong} messages were not applied exactly once");
        std::process::exit(1);
    }
    Ok(())
}

/// Handles one delivery as a consumer of an at-least-once broker does: acknowledge on a result (fresh or
/// replayed), redeliver later otherwise.
async fn consume(receiver: &Receiver, ledger: &Ledger, tallies: &Mutex<BTreeMap<usize, Tally>>, message: Message) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        arrived(tallies, &message);
        let outcome = receiver
            .run_json(CONSUMER, &message.id, &message.payload, || async {
                let transfer: Transfer = serde_json::from_str(&message.payload)?;
                // The work takes a while, so duplicates overlap with it.
                tokio::time::sleep(Duration::from_millis(fastrand::u64(10..40))).await;
                let entry = ledger.append(&message.id, &transfer).await?;
                Ok::<_, Error>(Receipt { entry })
            })
            .await;
        let Some(retry_after) = tally(tallies, &message, outcome) else { return };
        if attempt == 5 {
            eprintln!("message {:02}: giving up after {attempt} attempts", message.number);
            return;
        }
        tokio::time::sleep(retry_after.min(Duration::from_secs(1))).await;
    }
}

/// Notes that a delivery of the message is being handled.
fn arrived(tallies: &Mutex<BTreeMap<usize, Tally>>, message: &Message) {
    let mut tallies = tallies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let tally = tallies.entry(message.number).or_default();
    tally.overlapping += usize::from(tally.running > 0);
    tally.running += 1;
}

/// Counts one delivery's outcome; returns when to redeliver if it was not acknowledged.
fn tally(
    tallies: &Mutex<BTreeMap<usize, Tally>>,
    message: &Message,
    outcome: Result<Received<Receipt>, ReceiveError<Error>>,
) -> Option<Duration> {
    let mut tallies = tallies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let tally = tallies.entry(message.number).or_default();
    tally.delivered += 1;
    tally.running -= 1;
    let retry_after = match outcome {
        Ok(received) => {
            if received.replayed {
                tally.replayed += 1;
            } else {
                tally.processed += 1;
            }
            tally.receipts.push(received.result);
            return None;
        }
        // The broker would redeliver later: here, the same worker retries after a pause.
        Err(ReceiveError::InFlight { retry_after }) => retry_after,
        Err(error) => {
            eprintln!("message {:02}: {error}; redelivering", message.number);
            Duration::from_millis(200)
        }
    };
    tally.nacked += 1;
    Some(retry_after)
}
