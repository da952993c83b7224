//! The transactional receiver (the inbox) on a real PostgreSQL: the dedup record, the consumer's writes and the
//! stored result commit in one transaction, so a crash leaves nothing and frees the key at once, a redelivery
//! after the commit replays and writes nothing, and a reused key is refused without being applied.

mod support;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures_util::FutureExt as _;
use idempotent_runtime::{
    MemoryStore, NotTransactional, PostgresStore, ReceiveError, Received, Receiver, StoreErrorKind,
    TransactionalReceiver,
};
use support::postgres::TestSchema;
use tokio::sync::oneshot;

const NAMESPACE: &str = "ledger-consumer";
const TRANSFER: &[u8] = br#"{"account": "acct-1", "amount": 1000}"#;

/// A fresh schema with the idempotency table and the consumer's ledger.
struct Inbox {
    schema: TestSchema,
    pool: Pool,
    receiver: TransactionalReceiver,
}

impl Inbox {
    async fn new() -> Self {
        let schema = TestSchema::create().await;
        let pool = schema.pool(8);
        let store = PostgresStore::new(pool.clone());
        store.migrate().await.expect("migrate the test schema");
        let client = pool.get().await.expect("a connection");
        client.batch_execute("CREATE TABLE ledger (message_id text NOT NULL, amount bigint NOT NULL)").await.unwrap();
        Self { schema, pool, receiver: TransactionalReceiver::new(store) }
    }

    /// Ledger rows of `key`, as any other connection sees them (committed only).
    async fn rows(&self, key: &str) -> i64 {
        let client = self.pool.get().await.expect("a connection");
        client.query_one("SELECT count(*) FROM ledger WHERE message_id = $1", &[&key]).await.unwrap().get(0)
    }

    /// Applies `key` with `payload`: one ledger row, written through the receiver's transaction.
    async fn apply(
        &self,
        key: &str,
        payload: &[u8],
        runs: &Runs,
    ) -> Result<Received, ReceiveError<tokio_postgres::Error>> {
        self.receiver
            .run(NAMESPACE, key, payload, |tx| async move {
                runs.0.fetch_add(1, Ordering::SeqCst);
                tx.execute("INSERT INTO ledger (message_id, amount) VALUES ($1, 1000)", &[&key]).await?;
                Ok(format!("entry for {key}").into_bytes())
            })
            .await
    }

    async fn cleanup(self) {
        drop(self.receiver);
        self.pool.close();
        self.schema.drop_schema().await;
    }
}

/// How many times a closure ran.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn the_result_is_answered_only_once_committed_and_a_redelivery_replays_it_without_writing() {
    let inbox = Inbox::new().await;
    let runs = Runs::default();
    let first = inbox.apply("m-1", TRANSFER, &runs).await.expect("the first delivery applies");
    assert!(!first.replayed);
    // `Ok` means committed (the moment to acknowledge): another connection sees the row already.
    assert_eq!(inbox.rows("m-1").await, 1);

    let again = inbox.apply("m-1", TRANSFER, &runs).await.expect("the redelivery replays");
    assert!(again.replayed, "a redelivery after the commit replays");
    assert_eq!(again.result, first.result, "the stored result, byte for byte");
    assert_eq!(runs.count(), 1, "the closure did not run for the redelivery");
    assert_eq!(inbox.rows("m-1").await, 1, "no second row");
    inbox.cleanup().await;
}

#[tokio::test]
async fn a_crash_between_the_write_and_the_commit_leaves_no_row_and_frees_the_key_at_once() {
    let inbox = Inbox::new().await;
    let (written_tx, written) = oneshot::channel::<i32>();
    let (crashed_tx, crashed) = oneshot::channel::<()>();
    let crashing = inbox.receiver.run(NAMESPACE, "m-2", TRANSFER, |tx| async move {
        tx.execute("INSERT INTO ledger (message_id, amount) VALUES ('m-2', 1000)", &[]).await?;
        let backend: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
        let _ = written_tx.send(backend);
        // The process "dies" here: its connection is cut, as the kernel cuts a killed process's sockets.
        let _ = crashed.await;
        Ok::<_, tokio_postgres::Error>(b"never stored".to_vec())
    });
    let crash = async {
        let backend = written.await.expect("the closure wrote its row");
        let client = inbox.pool.get().await.unwrap();
        let terminated: bool = client.query_one("SELECT pg_terminate_backend($1)", &[&backend]).await.unwrap().get(0);
        assert!(terminated, "the consumer's connection was cut");
        let _ = crashed_tx.send(());
    };
    let (answer, ()) = tokio::join!(crashing, crash);
    assert!(
        matches!(&answer, Err(ReceiveError::StoreUnavailable(_))),
        "nothing was committed, so the message must not be acknowledged: {answer:?}"
    );
    assert_eq!(inbox.rows("m-2").await, 0, "the write rolled back with the claim");

    // The redelivery comes at once (the lease is 30 s): the key is free, the work runs, one row.
    let runs = Runs::default();
    let redelivery = inbox.apply("m-2", TRANSFER, &runs).await.expect("the redelivery applies at once");
    assert!(!redelivery.replayed);
    assert_eq!(runs.count(), 1);
    assert_eq!(inbox.rows("m-2").await, 1, "exactly one row");
    inbox.cleanup().await;
}

#[tokio::test]
async fn an_error_a_panic_or_a_cancellation_rolls_the_writes_back_and_frees_the_key() {
    let inbox = Inbox::new().await;
    let failed = inbox
        .receiver
        .run(NAMESPACE, "m-3", TRANSFER, |tx| async move {
            tx.execute("INSERT INTO ledger (message_id, amount) VALUES ('m-3', 1000)", &[]).await.unwrap();
            Err::<Vec<u8>, _>("the downstream service said no")
        })
        .await;
    assert!(matches!(failed, Err(ReceiveError::Failed("the downstream service said no"))));
    assert_eq!(inbox.rows("m-3").await, 0);

    let panicked = AssertUnwindSafe(inbox.receiver.run(NAMESPACE, "m-3", TRANSFER, |tx| async move {
        tx.execute("INSERT INTO ledger (message_id, amount) VALUES ('m-3', 1000)", &[]).await?;
        if tx.is_closed() {
            return Ok(Vec::new());
        }
        panic!("the consumer's bug");
    }))
    .catch_unwind()
    .await;
    let panicked: std::thread::Result<Result<Received, ReceiveError<tokio_postgres::Error>>> = panicked;
    assert!(panicked.is_err(), "the panic resumes in the caller");
    assert_eq!(inbox.rows("m-3").await, 0);

    let (started_tx, started) = oneshot::channel::<()>();
    let cancelled = inbox.receiver.run(NAMESPACE, "m-3", TRANSFER, |tx| async move {
        tx.execute("INSERT INTO ledger (message_id, amount) VALUES ('m-3', 1000)", &[]).await?;
        let _ = started_tx.send(());
        std::future::pending::<()>().await;
        Ok::<Vec<u8>, tokio_postgres::Error>(Vec::new())
    });
    tokio::select! {
        _ = cancelled => unreachable!("the work never finishes"),
        _ = started => {} // dropping `cancelled` here cancels it mid-work
    }
    assert_eq!(inbox.rows("m-3").await, 0);

    // The rollback of the cancelled one runs in the background: a delivery that waits for the key's transaction
    // gets it as soon as it ends, and applies once.
    let runs = Runs::default();
    let waiting = inbox.receiver.clone().on_conflict_wait(Duration::from_secs(5));
    let applied = waiting
        .run(NAMESPACE, "m-3", TRANSFER, |tx| async move {
            runs.0.fetch_add(1, Ordering::SeqCst);
            tx.execute("INSERT INTO ledger (message_id, amount) VALUES ('m-3', 1000)", &[])
                .await
                .map(|_| b"ok".to_vec())
        })
        .await
        .expect("the key is free again");
    assert!(!applied.replayed);
    assert_eq!(inbox.rows("m-3").await, 1);
    inbox.cleanup().await;
}

#[tokio::test]
async fn work_whose_own_sql_failed_commits_nothing_even_if_it_answers_ok() {
    let inbox = Inbox::new().await;
    let answer = inbox
        .receiver
        .run(NAMESPACE, "m-4", TRANSFER, |tx| async move {
            tx.execute("INSERT INTO ledger (message_id, amount) VALUES ('m-4', 1000)", &[]).await.unwrap();
            // The consumer ignores its failed statement: the transaction is aborted all the same.
            let _ignored = tx.execute("INSERT INTO no_such_table VALUES (1)", &[]).await;
            Ok::<_, std::io::Error>(b"looks fine".to_vec())
        })
        .await;
    match answer {
        Err(ReceiveError::StoreUnavailable(error)) => assert_eq!(error.kind(), StoreErrorKind::TransactionAborted),
        other => panic!("nothing was committed, so no acknowledgement: {other:?}"),
    }
    assert_eq!(inbox.rows("m-4").await, 0);
    let runs = Runs::default();
    assert!(!inbox.apply("m-4", TRANSFER, &runs).await.expect("a redelivery runs again").replayed);
    assert_eq!(inbox.rows("m-4").await, 1);
    inbox.cleanup().await;
}

#[tokio::test]
async fn a_key_reused_with_another_payload_is_refused_and_not_applied() {
    let inbox = Inbox::new().await;
    let runs = Runs::default();
    inbox.apply("m-5", TRANSFER, &runs).await.expect("the original applies");
    let reused = inbox.apply("m-5", br#"{"account": "acct-2", "amount": 999999}"#, &runs).await;
    assert!(matches!(reused, Err(ReceiveError::KeyReused)), "{reused:?}");
    assert_eq!(runs.count(), 1, "the other payload's work never ran");
    assert_eq!(inbox.rows("m-5").await, 1, "only the original's row");
    inbox.cleanup().await;
}

#[tokio::test]
async fn a_duplicate_during_the_first_delivery_is_in_flight_or_waits_for_its_commit() {
    let inbox = Inbox::new().await;
    let (written_tx, written) = oneshot::channel::<()>();
    let (finish_tx, finish) = oneshot::channel::<()>();
    let first = inbox.receiver.run(NAMESPACE, "m-6", TRANSFER, |tx| async move {
        tx.execute("INSERT INTO ledger (message_id, amount) VALUES ('m-6', 1000)", &[]).await?;
        let _ = written_tx.send(());
        let _ = finish.await;
        Ok::<_, tokio_postgres::Error>(b"first".to_vec())
    });
    let duplicates = async {
        written.await.expect("the first delivery wrote");
        let runs = Runs::default();
        let busy = inbox.apply("m-6", TRANSFER, &runs).await;
        assert!(matches!(busy, Err(ReceiveError::InFlight { .. })), "redeliver later: {busy:?}");
        let waiting = inbox.receiver.clone().on_conflict_wait(Duration::from_secs(10));
        let waited = waiting.run(NAMESPACE, "m-6", TRANSFER, |_tx| async {
            runs.0.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(b"second".to_vec())
        });
        let release = async {
            // The waiting delivery blocks on the first one's transaction until it commits: seen blocked first.
            let blocked = Instant::now();
            // (The store reaches its table through the search path: its statements name no schema.)
            while !support::postgres::store_statement_waits_on_a_lock(&inbox.pool, "").await {
                assert!(blocked.elapsed() < Duration::from_secs(10), "the duplicate never waited on the first");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = finish_tx.send(());
        };
        let (waited, ()) = tokio::join!(waited, release);
        let waited = waited.expect("the waiting duplicate gets the first one's result");
        assert!(waited.replayed);
        assert_eq!(&waited.result[..], b"first");
        assert_eq!(runs.count(), 0, "no duplicate ran its work");
    };
    let (first, ()) = tokio::join!(first, duplicates);
    assert!(!first.expect("the first delivery applies").replayed);
    assert_eq!(inbox.rows("m-6").await, 1);
    inbox.cleanup().await;
}

#[tokio::test]
async fn a_store_without_transactions_refuses_to_build_a_transactional_receiver() {
    let plain = Receiver::new(MemoryStore::new());
    let refused = plain.transactional().expect_err("the memory store has no transactions");
    assert_eq!(refused, NotTransactional);
    let message = refused.to_string();
    assert!(message.contains("PostgresStore") && message.contains("Receiver::run"), "says the fix: {message}");
    assert!(Receiver::new(MemoryStore::new()).transactional().is_err());
    // `TransactionalReceiver::new(MemoryStore::new())` does not compile: the compile_fail doctest on it.

    let schema = TestSchema::create().await;
    let store = PostgresStore::new(schema.pool(2));
    assert!(Receiver::new(store).transactional().is_ok(), "PostgreSQL has transactions");
    schema.drop_schema().await;
}
