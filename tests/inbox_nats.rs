//! The inbox example on a real NATS JetStream and PostgreSQL: 200 transfers published with duplicates (each copy
//! its own `Nats-Msg-Id`), applied by three competing consumer processes of `examples/inbox_nats` on one durable
//! pull consumer, one killed with SIGKILL mid-message (and replaced), one whose connection is cut once: every
//! transfer is applied exactly once and nothing is left pending or unacknowledged.
//!
//! The suite uses a stream, subject, consumer and PostgreSQL schema of its own (`NATS_STREAM`, `NATS_SUBJECT`,
//! `NATS_CONSUMER`, `DATABASE_URL` with a search path), so it never meets a user running the example. Its figures
//! go to `target/tmp/figures.txt`.

mod support;

use std::time::Duration;

use support::brokers::{
    CuttingProxy, START_NATS, address_of, nats_url, number_after, private_name, publish, read_manifest, require_broker,
    run_competing_consumers,
};
use support::postgres::TestSchema;
use support::report_figure;

const TRANSFERS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_apply_every_transfer_exactly_once_through_kills_and_dropped_connections() {
    let url = nats_url();
    require_broker("NATS (with JetStream)", &url, START_NATS);
    let schema = TestSchema::create().await;
    let stream = private_name("IDEMPOTENT_TEST_LEDGER");
    let consumer = private_name("idempotent-test-consumer");
    let env = vec![
        ("NATS_STREAM", stream.clone()),
        ("NATS_SUBJECT", format!("{}.transfers", stream.to_lowercase())),
        ("NATS_CONSUMER", consumer.clone()),
        ("DATABASE_URL", schema.database_url()),
        // Longer than the example's 5 s ack wait: the killed consumer's message comes back after it.
        ("IDLE_EXIT_MS", "6500".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let manifest =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.manifest", private_name("inbox")));
    let published = tokio::task::spawn_blocking({
        let env = env
            .iter()
            .cloned()
            .chain([("PUBLISH_MANIFEST", manifest.display().to_string()), ("NATS_URL", url.clone())])
            .collect::<Vec<_>>();
        move || publish("inbox_nats", TRANSFERS, &env)
    })
    .await
    .unwrap();
    let messages = number_after(&published, "as");
    assert_eq!(read_manifest(&manifest).values().sum::<usize>(), messages);
    assert!(messages > TRANSFERS, "duplicates were published: {published}");

    let proxy = CuttingProxy::start(address_of(&url));
    let proxied_url = format!("nats://127.0.0.1:{}", proxy.port);
    let run = tokio::task::spawn_blocking({
        let (url, env) = (url.clone(), env.clone());
        move || {
            let run = run_competing_consumers(
                "inbox_nats",
                "NATS_URL",
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

    // The broker: nothing pending, nothing delivered and unacknowledged.
    let nats = async_nats::connect(&url).await.expect("connect to NATS");
    let jetstream = async_nats::jetstream::new(nats);
    let mut durable: async_nats::jetstream::consumer::PullConsumer =
        jetstream.get_consumer_from_stream(&consumer, &stream).await.expect("the suite's consumer exists");
    let info = durable.info().await.expect("consumer info");
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "nothing is left pending or unacknowledged: {info:?}");
    jetstream.delete_stream(&stream).await.expect("delete the suite's stream");

    for (consumer, summary) in &run.summaries {
        println!("consumer {consumer}: {summary}");
    }
    report_figure(&format!(
        "inbox nats (JetStream): messages {TRANSFERS} (published as {messages} stream messages), deliveries {}, \
         duplicates delivered {}, consumers killed 1, connections cut 1, rows applied {rows}",
        run.deliveries,
        run.duplicates_delivered()
    ));
    schema.drop_schema().await;
}
