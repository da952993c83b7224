//! `examples/consumer.rs` run as a user runs it: every message applied once, however often it was delivered.

mod support;

use std::process::Command;

use support::Connection;
use support::example_process::example_binary;
use support::postgres::TestSchema;

/// Runs the example; returns its standard output, after checking that it succeeded.
fn run_consumer(database_url: Option<&str>, seed: u64) -> String {
    run_consumer_listening(database_url, None, seed)
}

/// [`run_consumer`] with `DATABASE_LISTEN_URL` (the direct connection for notifications) when given.
fn run_consumer_listening(database_url: Option<&str>, listen_url: Option<&str>, seed: u64) -> String {
    let mut command = Command::new(example_binary("consumer"));
    command.env_remove("DATABASE_URL").env_remove("DATABASE_LISTEN_URL").env("CONSUMER_SEED", seed.to_string());
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    if let Some(url) = listen_url {
        command.env("DATABASE_LISTEN_URL", url);
    }
    let output = command.output().expect("run the consumer example");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    assert!(output.status.success(), "the example failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Checks the summary line and each message's line: delivered at least twice, processed exactly once.
fn assert_each_message_processed_once(stdout: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    let summary = lines.last().expect("a summary line");
    let numbers: Vec<usize> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    let [messages, deliveries, processed, replayed] = numbers[..] else {
        panic!("unexpected summary line: {summary:?}\n{stdout}");
    };
    assert_eq!(
        summary,
        &format!("{messages} messages, {deliveries} deliveries, {processed} processed, {replayed} replayed"),
        "no delivery was refused (nacked):\n{stdout}"
    );
    assert_eq!(messages, 20);
    assert_eq!(processed, messages, "every message processed exactly once:\n{stdout}");
    assert_eq!(replayed, deliveries - processed, "every other delivery replayed:\n{stdout}");
    assert!(deliveries >= 2 * messages && deliveries <= 4 * messages, "{deliveries} deliveries");

    let per_message: Vec<&str> = lines.iter().copied().filter(|line| line.starts_with("message ")).collect();
    assert_eq!(per_message.len(), messages);
    for line in per_message {
        assert!(line.contains(", processed 1, "), "{line}");
        assert!(!line.contains("NOT EXACTLY ONCE"), "{line}");
    }
}

#[test]
fn in_memory_every_message_is_processed_once() {
    for seed in [6, 7] {
        assert_each_message_processed_once(&run_consumer(None, seed));
    }
}

#[actix_web::test]
async fn on_postgres_every_message_is_processed_once_across_runs() {
    let schema = TestSchema::create().await;
    // Twice on one database: each run's messages are its own (their ids carry a per-run prefix).
    for seed in [6, 7] {
        let stdout = run_consumer(Some(&schema.database_url()), seed);
        assert!(stdout.starts_with("consumer example: PostgreSQL"), "{stdout}");
        assert_each_message_processed_once(&stdout);
    }
    schema.drop_schema().await;
}

/// Wait mode behind a transaction-mode pooler, listening on a direct connection as docs/guide/postgres-in-production.md asks.
#[actix_web::test]
async fn behind_pgbouncer_with_a_direct_listening_connection_every_message_is_processed_once() {
    let schema = TestSchema::create().await;
    let (url, bouncer) = Connection::PgBouncer.database_url(&schema);
    let stdout = run_consumer_listening(Some(&url), Some(&schema.database_url()), 6);
    assert_each_message_processed_once(&stdout);
    drop(bouncer);
    schema.drop_schema().await;
}

/// Misconfigured: the listening connection goes through the pooler too, which loses the notifications. Waiters
/// still end correctly: they look at the record every second.
#[actix_web::test]
async fn behind_pgbouncer_listening_through_the_pooler_every_message_is_still_processed_once() {
    let schema = TestSchema::create().await;
    let (url, bouncer) = Connection::PgBouncer.database_url(&schema);
    let stdout = run_consumer_listening(Some(&url), None, 7);
    assert_each_message_processed_once(&stdout);
    drop(bouncer);
    schema.drop_schema().await;
}
