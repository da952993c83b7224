//! The inbox example on a real RabbitMQ and PostgreSQL: 200 transfers published with duplicates, applied by three
//! competing consumer processes of `examples/inbox_amqp`, one killed with SIGKILL mid-message (and replaced), one
//! whose broker connection is cut once: every transfer is applied exactly once and nothing is left unacknowledged.
//!
//! The suite uses a queue and a PostgreSQL schema of its own (`AMQP_QUEUE`, `DATABASE_URL` with a search path), so
//! it never meets a user running the example. Its figures go to `target/tmp/figures.txt`.

mod support;

use std::time::Duration;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use support::brokers::{
    CuttingProxy, START_RABBITMQ, address_of, amqp_url, number_after, private_name, publish, read_manifest,
    require_broker, run_competing_consumers,
};
use support::postgres::TestSchema;
use support::report_figure;

const TRANSFERS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_apply_every_transfer_exactly_once_through_kills_and_dropped_connections() {
    let url = amqp_url();
    require_broker("RabbitMQ", &url, START_RABBITMQ);
    let schema = TestSchema::create().await;
    let queue = private_name("idempotent_test_ledger");
    let env = vec![
        ("AMQP_QUEUE", queue.clone()),
        ("DATABASE_URL", schema.database_url()),
        ("IDLE_EXIT_MS", "2500".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let manifest =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.manifest", private_name("inbox")));
    let published = tokio::task::spawn_blocking({
        let env = env
            .iter()
            .cloned()
            .chain([("PUBLISH_MANIFEST", manifest.display().to_string()), ("AMQP_URL", url.clone())])
            .collect::<Vec<_>>();
        move || publish("inbox_amqp", TRANSFERS, &env)
    })
    .await
    .unwrap();
    let messages = number_after(&published, "as");
    assert_eq!(read_manifest(&manifest).values().sum::<usize>(), messages);
    assert!(messages > TRANSFERS, "duplicates were published: {published}");

    let proxy = CuttingProxy::start(address_of(&url));
    let proxied_url = url.replacen(&address_of(&url).to_string(), &format!("127.0.0.1:{}", proxy.port), 1);
    let run = tokio::task::spawn_blocking({
        let (url, env) = (url.clone(), env.clone());
        move || {
            let run = run_competing_consumers(
                "inbox_amqp",
                "AMQP_URL",
                &url,
                &proxy,
                &proxied_url,
                &env,
                Duration::from_secs(100),
            );
            (run, proxy.accepted())
        }
    })
    .await
    .unwrap();
    let (run, proxied_connections) = run;

    // The ledger: every transfer exactly once, the killed consumer's uncommitted row gone.
    let client = schema.pool(1).get().await.expect("a connection");
    let row = client.query_one("SELECT count(*), count(DISTINCT message_id) FROM inbox_ledger", &[]).await.unwrap();
    let (rows, keys): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((rows, keys), (200, 200), "200 rows with 200 distinct keys; consumers saw {run:?}");
    let killed_key = run.killed_mid.clone().expect("a consumer was killed mid-message");
    let killed_rows: i64 = client
        .query_one("SELECT count(*) FROM inbox_ledger WHERE message_id = $1", &[&killed_key])
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed_rows, 1, "the message the killed consumer was writing was applied once, by another");
    assert_eq!(run.applied_per_key.len(), TRANSFERS, "every transfer was applied by some consumer");
    assert!(run.applied_per_key.values().all(|count| *count == 1), "no transfer was applied twice");
    // Every copy of every key was acknowledged by a consumer that committed (applied) or replayed it; a copy
    // acknowledged before its commit and lost with the killed consumer would be missing here.
    assert!(run.acknowledged >= messages, "every published message was acknowledged after its commit: {run:?}");
    for (key, copies) in read_manifest(&manifest) {
        let acknowledged = run.acknowledged_per_key.get(&key).copied().unwrap_or(0);
        assert!(acknowledged >= copies, "{key}: {copies} copies published, {acknowledged} acknowledged after a commit");
    }
    let b = &run.summaries["b"];
    assert!(
        number_after(b, "reconnects") >= 1 && proxied_connections >= 2,
        "consumer b reconnected after the cut: {b}"
    );

    // The broker: with every consumer gone, an unacknowledged message would be ready again.
    let connection = Connection::connect(&url, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.unwrap();
    let state = channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .expect("the suite's queue exists");
    assert_eq!(state.message_count(), 0, "nothing is left in the queue or unacknowledged");
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    connection.close(200, "done".into()).await.unwrap();

    for (consumer, summary) in &run.summaries {
        println!("consumer {consumer}: {summary}");
    }
    report_figure(&format!(
        "inbox amqp (RabbitMQ): messages {TRANSFERS} (published as {messages} broker messages), deliveries {}, \
         duplicates delivered {}, consumers killed 1, connections cut 1, rows applied {rows}",
        run.deliveries,
        run.duplicates_delivered()
    ));
    schema.drop_schema().await;
}
