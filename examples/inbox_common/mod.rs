//! What the inbox consumer examples share: settings from the environment, the consumer loops of both brokers
//! ([`amqp_consumer`], [`nats_consumer`]) around an example's [`Application`], the outcome words and totals; and,
//! for `inbox_amqp` and `inbox_nats`, the ledger table, the transfers a `publish` run sends, and how one message
//! is applied ([`Ledger`]).
#![allow(dead_code)] // Each example uses part of it.

pub(crate) mod amqp_consumer;
pub(crate) mod nats_consumer;

use std::time::Duration;

use idempotent_runtime::inbox::Disposition;
use idempotent_runtime::{PostgresStore, ReceiveError, Received, TransactionalReceiver};
use serde::{Deserialize, Serialize};

use crate::common::{create_tables, postgres_config, postgres_pool};

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// The receiver's namespace: the consumer's one job, applying transfers to `inbox_ledger`.
pub(crate) const NAMESPACE: &str = "inbox_ledger";

/// The ledger, created at start (by every process: under a lock, `IF NOT EXISTS`).
const LEDGER_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS inbox_ledger (message_id text, account text, amount bigint, applied_at timestamptz)";

/// What a message's body says to do.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Transfer {
    pub(crate) account: String,
    pub(crate) amount: i64,
}

/// One broker message of a `publish` run: a copy of a logical transfer.
pub(crate) struct Copy {
    /// The transfer's key, the same on all its copies.
    pub(crate) key: String,
    /// Which copy of the transfer this is (1, 2 or 3).
    pub(crate) copy: usize,
    pub(crate) body: Vec<u8>,
}

/// `n` logical transfers, each sent 1 to 3 times, shuffled. Keys carry a per-run prefix, so a second run on the
/// same database applies its own transfers instead of replaying the first run's.
pub(crate) fn copies_to_publish(n: usize) -> (String, Vec<Copy>) {
    let run = format!("{:08x}", fastrand::u32(..));
    let mut copies = Vec::new();
    for number in 1..=n {
        let transfer = Transfer { account: format!("acct-{}", fastrand::u8(1..=9)), amount: fastrand::i64(1..10_000) };
        let body = serde_json::to_vec(&transfer).expect("a transfer serializes");
        let key = format!("transfer-{run}-{number:05}");
        for copy in 1..=fastrand::usize(1..=3) {
            copies.push(Copy { key: key.clone(), copy, body: body.clone() });
        }
    }
    fastrand::shuffle(&mut copies);
    (run, copies)
}

/// With `PUBLISH_MANIFEST=<path>`, `publish` also writes there how many copies of each key it sent (`<key>
/// <copies>` lines): the test suites check that every copy was acknowledged after its commit.
pub(crate) fn write_manifest(copies: &[Copy]) -> Result<(), String> {
    let Ok(path) = std::env::var("PUBLISH_MANIFEST") else { return Ok(()) };
    let mut per_key = std::collections::BTreeMap::<&str, usize>::new();
    for copy in copies {
        *per_key.entry(copy.key.as_str()).or_default() += 1;
    }
    let lines: String = per_key.iter().map(|(key, count)| format!("{key} {count}\n")).collect();
    std::fs::write(&path, lines).map_err(|error| format!("cannot write PUBLISH_MANIFEST {path}: {error}"))
}

/// `publish N` or `consume`, from the command line.
pub(crate) enum Command {
    Publish(usize),
    Consume,
}

pub(crate) fn command(example: &str) -> Result<Command, String> {
    let usage = format!("usage: cargo run --example {example} -- publish N | consume");
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["publish", n] => n.parse().map(Command::Publish).map_err(|_| format!("N must be a number: {n}\n{usage}")),
        ["consume"] => Ok(Command::Consume),
        _ => Err(usage),
    }
}

/// A variable's value, or its default.
pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|value| !value.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// A duration in milliseconds from the environment.
pub(crate) fn millis_from_env(name: &str, default: u64) -> Result<Duration, String> {
    match std::env::var(name) {
        Err(_) => Ok(Duration::from_millis(default)),
        Ok(value) => value
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("{name} must be a number of milliseconds, got {value:?}")),
    }
}

/// The consumer's side of PostgreSQL: the idempotency table, the ledger, and the transactional receiver.
pub(crate) async fn inbox_from_env(example: &str) -> Result<TransactionalReceiver, String> {
    receiver_from_env(example, LEDGER_SCHEMA).await
}

/// A consumer's side of PostgreSQL at `DATABASE_URL`: the idempotency table, the consumer's own `tables`
/// (`CREATE TABLE IF NOT EXISTS` statements), and the transactional receiver.
pub(crate) async fn receiver_from_env(example: &str, tables: &str) -> Result<TransactionalReceiver, String> {
    let url = std::env::var("DATABASE_URL").map_err(|_| {
        format!(
            "consume needs PostgreSQL: set DATABASE_URL, e.g.\n  \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example {example} -- consume"
        )
    })?;
    let pool = postgres_pool(postgres_config(&url)?)?;
    let store = PostgresStore::new(pool.clone());
    store.migrate().await.map_err(|error| format!("cannot prepare the idempotency table at DATABASE_URL: {error}"))?;
    create_tables(&pool, tables).await.map_err(|error| error.to_string())?;
    Ok(TransactionalReceiver::new(store))
}

/// Why applying a message failed; rolled back either way.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// The body is not a transfer: it never will be.
    NotATransfer(serde_json::Error),
    /// The ledger write failed: may work later.
    Database(tokio_postgres::Error),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotATransfer(error) => write!(f, "the message is not a transfer: {error}"),
            Self::Database(error) => write!(f, "the ledger write failed: {error}"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// What a consumer example does with one message: its work through the inbox, and its choice for the work's own
/// errors (only the app can tell a transient failure from a permanent one).
pub(crate) trait Application {
    /// The work's own error.
    type Error;

    /// Applies one message through `inbox`: the work's writes and the stored result commit in one transaction.
    async fn apply(
        &self,
        inbox: &TransactionalReceiver,
        key: &str,
        body: &[u8],
        delay: Duration,
    ) -> Result<Received, ReceiveError<Self::Error>>;

    /// What to tell the broker when the work failed.
    fn on_failed(&self, error: &Self::Error) -> Disposition;
}

/// The inbox examples' work: a transfer applied to `inbox_ledger`.
pub(crate) struct Ledger;

impl Application for Ledger {
    type Error = ApplyError;

    /// Applies one message: one ledger row, written in the receiver's transaction, then `delay` (still inside it: the
    /// window in which a crash must roll the row back). Prints `writing <key>` once the row is written.
    async fn apply(
        &self,
        inbox: &TransactionalReceiver,
        key: &str,
        body: &[u8],
        delay: Duration,
    ) -> Result<Received, ReceiveError<ApplyError>> {
        inbox
            .run(NAMESPACE, key, body, |tx| async move {
                let transfer: Transfer = serde_json::from_slice(body).map_err(ApplyError::NotATransfer)?;
                tx.execute(
                    "INSERT INTO inbox_ledger (message_id, account, amount, applied_at) VALUES ($1, $2, $3, now())",
                    &[&key, &transfer.account, &transfer.amount],
                )
                .await
                .map_err(ApplyError::Database)?;
                println!("writing {key}");
                tokio::time::sleep(delay).await;
                Ok::<_, ApplyError>(format!("applied {} to {}", transfer.amount, transfer.account).into_bytes())
            })
            .await
    }

    /// This app's choice for its own errors: a body that is not a transfer is dead-lettered, a failed write is tried
    /// again a second later.
    fn on_failed(&self, error: &ApplyError) -> Disposition {
        match error {
            ApplyError::NotATransfer(error) => Disposition::DeadLetter { reason: format!("not a transfer: {error}") },
            ApplyError::Database(_) => Disposition::Redeliver { delay: Duration::from_secs(1) },
        }
    }
}

/// The word a consumer prints for what became of a delivery (one line per delivery: `<word> <key>`).
pub(crate) fn outcome_word<E>(answer: &Result<Received, ReceiveError<E>>) -> &'static str {
    match answer {
        Ok(Received { replayed: false, .. }) => "applied",
        Ok(Received { replayed: true, .. }) => "replayed",
        Err(ReceiveError::InFlight { .. }) => "in-flight",
        Err(ReceiveError::KeyReused) => "key-reused",
        Err(ReceiveError::StoreUnavailable(_)) => "store-unavailable",
        Err(ReceiveError::Failed(_)) => "failed",
        Err(_) => "refused",
    }
}

/// What one consumer process saw.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) deliveries: usize,
    pub(crate) applied: usize,
    pub(crate) replayed: usize,
    pub(crate) redelivered: usize,
    pub(crate) dead_lettered: usize,
    pub(crate) reconnects: usize,
}

impl Tally {
    pub(crate) fn count<E>(&mut self, answer: &Result<Received, ReceiveError<E>>, disposition: &Disposition) {
        self.deliveries += 1;
        match (answer, disposition) {
            (Ok(Received { replayed: false, .. }), _) => self.applied += 1,
            (Ok(Received { replayed: true, .. }), _) => self.replayed += 1,
            (_, Disposition::Redeliver { .. }) => self.redelivered += 1,
            (_, Disposition::DeadLetter { .. }) => self.dead_lettered += 1,
            (Err(_), Disposition::Ack) => {}
        }
    }

    /// The last line a consumer prints (tools parse it): `deliveries D, applied A, replayed R, redelivered X,
    /// dead-lettered Y, reconnects Z`.
    pub(crate) fn summary(&self) -> String {
        format!(
            "deliveries {}, applied {}, replayed {}, redelivered {}, dead-lettered {}, reconnects {}",
            self.deliveries, self.applied, self.replayed, self.redelivered, self.dead_lettered, self.reconnects
        )
    }
}
