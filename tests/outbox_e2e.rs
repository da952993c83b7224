//! The outbox end to end, on real processes, PostgreSQL and a real broker (RabbitMQ, NATS JetStream): the `orders`
//! example (serving HTTP, not relaying) behind a proxy that drops a third of its responses, clients that retry with
//! their keys, a separate relay process (`orders relay`) killed with SIGKILL in the middle of a batch and
//! restarted, its broker connection cut once as it starts publishing a batch, and a consumer process
//! (`order_events_amqp` / `order_events_nats`) killed with SIGKILL mid-message and replaced. At the end `orders`
//! and `order_events` hold exactly one row per created order, no event exists for an order that was never
//! committed, the outbox has no unsent row and the broker nothing unacknowledged.
//!
//! Each test uses a PostgreSQL schema and broker names of its own (`DATABASE_URL` with a search path,
//! `AMQP_QUEUE`, `NATS_STREAM`, `NATS_SUBJECT`, `NATS_CONSUMER`), so it runs beside the other suites. Its figures
//! go to `target/tmp/figures.txt`.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use idempotent_runtime::PostgresStore;
use support::brokers::{
    CuttingProxy, START_NATS, START_RABBITMQ, address_of, amqp_url, nats_url, private_name, require_broker,
};
use support::example_process::{ExampleProcess, example_binary};
use support::fault_proxy::FaultProxy;
use support::postgres::TestSchema;
use support::report_figure;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// Concurrent HTTP clients, each creating its orders one after the other with keys of its own.
const CLIENTS: usize = 6;
const ORDERS_PER_CLIENT: usize = 20;
const ORDERS: usize = CLIENTS * ORDERS_PER_CLIENT;
/// The relay's batches: small, so that a run has many.
const RELAY_BATCH: &str = "5";
/// How long the first relay holds a confirmed batch before marking it sent: until it is killed, so that the kill
/// lands mid-batch however late the test reads the relay's output.
const FIRST_RELAY_HOLD_MS: &str = "600000";
/// The first relay is killed while it holds its this-many-th batch (confirmed by the broker, not yet marked sent).
const KILL_RELAY_AT_BATCH: usize = 1;
/// The second relay's broker connection is cut as it starts publishing its this-many-th batch.
const CUT_AT_BATCH: usize = 3;
/// The first consumer is killed in the middle of its this-many-th event (written, not committed). (If it leaves
/// idle before, its replacement is.)
const KILL_CONSUMER_AT_EVENT: usize = 1;
/// How long the consumer to kill sleeps after each write, inside its transaction: until it is killed, so that the
/// kill lands mid-message however late the test reads the consumer's output.
const FIRST_CONSUMER_DELAY_MS: u64 = 600_000;
/// The whole run, from the first order to the last acknowledgement.
const DEADLINE: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Broker {
    RabbitMq,
    Nats,
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Self::RabbitMq => "RabbitMQ",
            Self::Nats => "NATS JetStream",
        }
    }

    fn consumer_example(self) -> &'static str {
        match self {
            Self::RabbitMq => "order_events_amqp",
            Self::Nats => "order_events_nats",
        }
    }

    fn url_variable(self) -> &'static str {
        match self {
            Self::RabbitMq => "AMQP_URL",
            Self::Nats => "NATS_URL",
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_every_order_once_and_its_event_applied_once_through_dropped_answers_kills_and_a_cut() {
    let url = amqp_url();
    require_broker("RabbitMQ", &url, START_RABBITMQ);
    end_to_end(Broker::RabbitMq, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_every_order_once_and_its_event_applied_once_through_dropped_answers_kills_and_a_cut() {
    let url = nats_url();
    require_broker("NATS (with JetStream)", &url, START_NATS);
    end_to_end(Broker::Nats, &url).await;
}

/// A line of a watched process's stdout (`None`: it closed its stdout, i.e. exited).
type Line = (String, Option<String>);

/// `orders` with `AMQP_URL` set relays its own outbox, in the server process: an order's event reaches the queue
/// under the id of its outbox row, which is then marked sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_relays_its_own_outbox_when_a_broker_is_named() {
    use lapin::options::{BasicGetOptions, QueueDeleteOptions};
    let url = amqp_url();
    require_broker("RabbitMQ", &url, START_RABBITMQ);
    let schema = TestSchema::create().await;
    let queue = private_name("idempotent_test_in_process_relay");
    let orders = ExampleProcess::start_with_env(
        "orders",
        Some(&schema.database_url()),
        &[("AMQP_URL", url.as_str()), ("AMQP_QUEUE", queue.as_str())],
    );
    assert!(orders.banner.contains(&format!("relaying order.created to RabbitMQ queue {queue}")), "{}", orders.banner);
    let response = reqwest::Client::new()
        .post(format!("{}/orders", orders.base))
        .header("Authorization", "Bearer alice")
        .header("Idempotency-Key", "in-process-relay-1")
        .json(&serde_json::json!({"item": "book", "qty": 1}))
        .send()
        .await
        .expect("POST /orders");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let order: serde_json::Value = response.json().await.expect("the order as JSON");

    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let started = Instant::now();
    let delivery = loop {
        let got = channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap();
        if let Some(message) = got {
            break message.delivery;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no event reached {queue} within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let event: serde_json::Value = serde_json::from_slice(&delivery.data).expect("the event as JSON");
    assert_eq!(event["order_id"], order["id"], "the event names the order: {event}");
    let pool = schema.pool(1);
    let client = pool.get().await.unwrap();
    let id: String = client.query_one("SELECT id FROM idempotency_outbox", &[]).await.unwrap().get(0);
    let message_id = delivery.properties.message_id().as_ref().map(|id| id.to_string());
    assert_eq!(message_id.as_deref(), Some(id.as_str()), "message_id = the outbox row's id");
    while !client.query_one("SELECT sent_at IS NOT NULL FROM idempotency_outbox", &[]).await.unwrap().get::<_, bool>(0)
    {
        assert!(started.elapsed() < Duration::from_secs(20), "the row was not marked sent within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    connection.close(200, "done".into()).await.unwrap();
    drop(client);
    drop(orders);
    schema.drop_schema().await;
}

/// A process whose stdout the test reads line by line; killed (SIGKILL) when dropped.
struct Watched {
    name: String,
    child: Child,
}

impl Watched {
    fn start(name: &str, example: &str, argument: &str, env: &[(&str, String)], lines: &UnboundedSender<Line>) -> Self {
        let mut child = Command::new(example_binary(example))
            .arg(argument)
            .env_remove("AMQP_URL")
            .env_remove("NATS_URL")
            .env_remove("DATABASE_LISTEN_URL")
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("start {example} {argument}: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tag, lines) = (name.to_owned(), lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send((tag.clone(), Some(line)));
            }
            let _ = lines.send((tag, None));
        });
        Self { name: name.to_owned(), child }
    }

    /// kill -9.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the clients did: the order ids they were answered, and how many requests they sent again.
struct Created {
    ids: BTreeSet<i64>,
    retries: usize,
}

/// `CLIENTS` clients, each creating `ORDERS_PER_CLIENT` orders through `base` (the fault proxy), each order with a
/// key of its own, sent again with the same key until an answer arrives.
async fn create_orders(base: String) -> Created {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
    let mut tasks = tokio::task::JoinSet::new();
    for number in 0..CLIENTS {
        let (client, base) = (client.clone(), base.clone());
        tasks.spawn(async move {
            let user = format!("client-{number}");
            let (mut ids, mut retries) = (Vec::new(), 0);
            for order in 0..ORDERS_PER_CLIENT {
                let key = format!("{user}-order-{order}");
                let body = serde_json::json!({"item": format!("item-{order}"), "qty": order + 1});
                let mut attempts = 0;
                let id = loop {
                    attempts += 1;
                    assert!(attempts <= 30, "{key}: no answer in 30 attempts");
                    let sent = client
                        .post(format!("{base}/orders"))
                        .header("Authorization", format!("Bearer {user}"))
                        .header("Idempotency-Key", &key)
                        .json(&body)
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(response) => (response.status(), response.text().await),
                        Err(_) => {
                            retries += 1;
                            continue;
                        }
                    };
                    match answer {
                        (status, Ok(text)) if status == reqwest::StatusCode::CREATED => {
                            let created: serde_json::Value = serde_json::from_str(&text).expect("the order as JSON");
                            break created["id"].as_i64().expect("the order's id");
                        }
                        (status, Ok(text)) => panic!("{key}: {status} {text}"),
                        // The answer was lost halfway: the same key again.
                        (_, Err(_)) => retries += 1,
                    }
                };
                ids.push(id);
            }
            (ids, retries)
        });
    }
    let mut created = Created { ids: BTreeSet::new(), retries: 0 };
    while let Some(done) = tasks.join_next().await {
        let (ids, retries) = done.expect("a client");
        created.ids.extend(ids);
        created.retries += retries;
    }
    created
}

/// What the relay and consumer processes printed, all together.
#[derive(Debug, Default)]
struct Tally {
    /// Messages the broker confirmed (`relay: broker confirmed N of M`), re-sends included.
    published: usize,
    /// Messages marked sent (`relay: sent N`).
    marked_sent: usize,
    /// Messages of a batch the broker did not confirm (lost with a cut connection, timed out): retried later.
    unconfirmed: usize,
    /// Batches started per relay process.
    publishing_batches: HashMap<String, usize>,
    /// Confirmed batches per relay process.
    confirmed_batches: HashMap<String, usize>,
    /// Batches marked sent per relay process.
    sent_batches: HashMap<String, usize>,
    /// What the killed relay's broker had confirmed of the batch it died holding.
    killed_batch: Option<usize>,
    relay_kills: usize,
    connection_cuts: usize,
    /// Broker connections the relays had opened through the cutting proxy when it cut them.
    accepted_at_cut: usize,
    /// `writing` lines per consumer process.
    writing: HashMap<String, usize>,
    consumer_kills: usize,
    /// Consumers started again because one exited idle before the run was over.
    idle_restarts: usize,
    /// `applied` and `replayed` lines, all consumers.
    applied: usize,
    replayed: usize,
    /// Each consumer's last line.
    summaries: Vec<String>,
}

/// The relay and consumer processes of one run, and what they printed.
struct Run<'a> {
    broker: Broker,
    tally: Tally,
    relays: Vec<Watched>,
    consumers: Vec<Watched>,
    /// Consumers started so far (names `consumer-1`, `consumer-2`, ...).
    consumers_started: usize,
    cutting: &'a CuttingProxy,
    relay_env: Vec<(&'static str, String)>,
    /// The consumers' environment, without `HANDLER_DELAY_MS`.
    consumer_env: Vec<(&'static str, String)>,
    lines: UnboundedSender<Line>,
}

impl Run<'_> {
    fn start_relay(&mut self, name: &str) {
        let mut env = self.relay_env.clone();
        if self.tally.relay_kills == 0 {
            env.push(("RELAY_HOLD_MS", FIRST_RELAY_HOLD_MS.into()));
        }
        self.relays.push(Watched::start(name, "orders", "relay", &env, &self.lines));
    }

    /// A consumer; until one was killed, it sleeps a while inside each transaction, after its write (the window
    /// the kill lands in).
    fn start_consumer(&mut self) {
        self.consumers_started += 1;
        let name = format!("consumer-{}", self.consumers_started);
        let delay_ms = if self.tally.consumer_kills == 0 { FIRST_CONSUMER_DELAY_MS } else { 0 };
        let mut env = self.consumer_env.clone();
        env.push(("HANDLER_DELAY_MS", delay_ms.to_string()));
        self.consumers.push(Watched::start(&name, self.broker.consumer_example(), "consume", &env, &self.lines));
    }

    /// Acts on one line of a relay or a consumer: counts it, and kills, restarts or cuts at the planned points.
    fn on_line(&mut self, name: &str, line: Option<String>) {
        let Some(line) = line else {
            // The process exited (or was killed): its stdout is closed.
            self.consumers.retain(|consumer| consumer.name != name);
            return;
        };
        let tally = &mut self.tally;
        if line.starts_with("relay: publishing ") {
            let batches = tally.publishing_batches.entry(name.to_owned()).or_default();
            *batches += 1;
            if name == "relay-2" && *batches == CUT_AT_BATCH {
                // While the batch goes out: its confirms may be lost with the connection.
                tally.accepted_at_cut = self.cutting.accepted();
                self.cutting.cut_all();
                tally.connection_cuts += 1;
            }
        } else if let Some(rest) = line.strip_prefix("relay: broker confirmed ") {
            let confirmed = number_before_space(rest);
            let batch: usize = rest.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("a batch size");
            tally.published += confirmed;
            tally.unconfirmed += batch - confirmed;
            let batches = tally.confirmed_batches.entry(name.to_owned()).or_default();
            *batches += 1;
            if name == "relay-1" && *batches == KILL_RELAY_AT_BATCH {
                // Confirmed by the broker, held before it is marked sent: the batch will be sent again.
                tally.relay_kills += 1;
                tally.killed_batch = Some(confirmed);
                self.relays.iter_mut().find(|relay| relay.name == name).expect("relay-1 runs").kill();
                self.relays.retain(|relay| relay.name != name);
                self.start_relay("relay-2");
            }
        } else if let Some(rest) = line.strip_prefix("relay: sent ") {
            assert!(
                name != "relay-1" || tally.relay_kills == 0,
                "relay-1 marked its batch sent before the kill landed"
            );
            tally.marked_sent += number_before_space(rest);
            let batches = tally.sent_batches.entry(name.to_owned()).or_default();
            *batches += 1;
        } else if line.contains("idle for") {
            tally.summaries.push(format!("{name}: {line}"));
        } else if let Some((word, _key)) = line.split_once(' ') {
            match word {
                "writing" => {
                    let writes = tally.writing.entry(name.to_owned()).or_default();
                    *writes += 1;
                    if tally.consumer_kills == 0 && *writes == KILL_CONSUMER_AT_EVENT {
                        // Mid-message: the row is written, the transaction not committed.
                        tally.consumer_kills += 1;
                        self.consumers.iter_mut().find(|consumer| consumer.name == name).expect("it runs").kill();
                        self.consumers.retain(|consumer| consumer.name != name);
                        self.start_consumer();
                    }
                }
                "applied" => tally.applied += 1,
                "replayed" => tally.replayed += 1,
                _ => {}
            }
        }
    }
}

/// The number that starts `text` (`"5 of 5"`, `"5"`).
fn number_before_space(text: &str) -> usize {
    text.split(' ').next().and_then(|number| number.parse().ok()).unwrap_or_else(|| panic!("a count in {text:?}"))
}

async fn end_to_end(broker: Broker, url: &str) {
    // Built before anything starts: `cargo build` waits for the build directory's lock while other suites build,
    // and a process started late would find the others idle.
    for example in ["orders", broker.consumer_example()] {
        example_binary(example);
    }
    let schema = TestSchema::create().await;
    let database_url = schema.database_url();
    let orders = ExampleProcess::start("orders", Some(&database_url));
    assert!(orders.banner.contains("enqueuing order.created"), "orders does not relay: {:?}", orders.banner);
    let http = FaultProxy::dropping_one_in(&format!("127.0.0.1:{}", orders.port), 3).await;
    let cutting = CuttingProxy::start(address_of(url));
    let proxied_url = url.replacen(&address_of(url).to_string(), &format!("127.0.0.1:{}", cutting.port), 1);

    let names: Vec<(&'static str, String)> = match broker {
        Broker::RabbitMq => vec![("AMQP_QUEUE", private_name("idempotent_test_order_events"))],
        Broker::Nats => {
            let stream = private_name("IDEMPOTENT_TEST_ORDER_EVENTS");
            vec![
                ("NATS_SUBJECT", format!("{}.order.created", stream.to_lowercase())),
                ("NATS_STREAM", stream),
                ("NATS_CONSUMER", private_name("idempotent-test-order-events")),
            ]
        }
    };
    let name_of = |variable: &str| names.iter().find(|(name, _)| *name == variable).map(|(_, value)| value.clone());
    let common: Vec<(&'static str, String)> =
        names.iter().cloned().chain([("DATABASE_URL", database_url.clone()), ("RUST_LOG", "warn".into())]).collect();
    let relay_env = common
        .iter()
        .cloned()
        .chain([(broker.url_variable(), proxied_url.clone()), ("RELAY_BATCH_SIZE", RELAY_BATCH.into())])
        .collect();
    let consumer_env = common
        .iter()
        .cloned()
        .chain([
            (broker.url_variable(), url.to_owned()),
            // Longer than the NATS consumer's 5 s ack wait: the killed consumer's message comes back first.
            ("IDLE_EXIT_MS", "6500".into()),
        ])
        .collect();

    let (lines_tx, mut lines) = unbounded_channel::<Line>();
    let mut run = Run {
        broker,
        tally: Tally::default(),
        relays: Vec::new(),
        consumers: Vec::new(),
        consumers_started: 0,
        cutting: &cutting,
        relay_env,
        consumer_env,
        lines: lines_tx,
    };
    // The first consumer sleeps a little inside each transaction: the kill lands between its write and its commit.
    run.start_consumer();
    run.start_relay("relay-1");
    let mut clients = tokio::spawn(create_orders(http.base.clone()));

    let store = PostgresStore::new(schema.pool(2));
    let watcher = schema.pool(1);
    let mut lag = Duration::ZERO;
    let mut created = None;
    let began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // Until every order is created, its event applied and the outbox empty.
    loop {
        if began.elapsed() > DEADLINE {
            panic!(
                "the run did not settle within {DEADLINE:?}: {:?}; outbox {:?}; {}",
                run.tally,
                idempotent_runtime::outbox::backlog(&store).await.ok(),
                counts(&watcher).await
            );
        }
        tokio::select! {
            Some((name, line)) = lines.recv() => run.on_line(&name, line),
            _ = tick.tick() => {
                let backlog = idempotent_runtime::outbox::backlog(&store).await.expect("the outbox's backlog");
                lag = lag.max(backlog.oldest_unsent.unwrap_or_default());
                if created.is_none() && clients.is_finished() {
                    created = Some((&mut clients).await.expect("the clients"));
                    continue;
                }
                if created.is_some() && settled(&watcher, &store).await {
                    break;
                }
                if run.consumers.is_empty() {
                    // Every consumer left, idle for a while, before the run was over: another takes over.
                    run.tally.idle_restarts += 1;
                    run.start_consumer();
                }
            }
        }
    }
    let created = created.expect("the clients finished");

    // Every consumer leaves once idle: then nothing it held is unacknowledged.
    while !run.consumers.is_empty() {
        let remaining = DEADLINE.checked_sub(began.elapsed()).unwrap_or_default() + Duration::from_secs(10);
        let Ok(Some((name, line))) = tokio::time::timeout(remaining, lines.recv()).await else {
            panic!("the consumers did not leave in time: {:?}", run.tally);
        };
        if line.is_none() {
            let consumer = run.consumers.iter_mut().find(|consumer| consumer.name == name);
            if let Some(consumer) = consumer {
                let status = consumer.child.wait().expect("reap a consumer");
                assert!(status.success(), "consumer {name} exited with {status}");
            }
        }
        run.on_line(&name, line);
    }
    run.relays.clear();
    let tally = std::mem::take(&mut run.tally);

    // The database: one order per key, one event per order, none for an order that does not exist.
    let client = watcher.get().await.expect("a connection");
    let order_ids: BTreeSet<i64> =
        client.query("SELECT id FROM orders", &[]).await.unwrap().iter().map(|row| row.get(0)).collect();
    assert_eq!(created.ids.len(), ORDERS, "each client key answered its own order");
    assert_eq!(order_ids, created.ids, "orders holds exactly the orders the clients were answered");
    let per_user: Vec<i64> = client
        .query("SELECT count(*) FROM orders GROUP BY user_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(per_user, vec![ORDERS_PER_CLIENT as i64; CLIENTS], "one order per key, for every client");
    let row = client
        .query_one("SELECT count(*), count(DISTINCT order_id), count(DISTINCT message_id) FROM order_events", &[])
        .await
        .unwrap();
    let (event_rows, event_orders, event_ids): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((event_rows, event_orders, event_ids), (ORDERS as i64, ORDERS as i64, ORDERS as i64), "{tally:?}");
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM order_events e WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = e.order_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "no event for an order that was never committed");
    let backlog = idempotent_runtime::outbox::backlog(&store).await.expect("the outbox's backlog");
    assert_eq!(backlog.waiting, 0, "nothing is left unsent: {backlog:?}");

    // What the processes went through.
    assert_eq!(tally.relay_kills, 1, "{tally:?}");
    let killed_batch = tally.killed_batch.expect("the relay was killed holding a batch");
    assert!(killed_batch >= 1, "the killed relay's batch had reached the broker: {tally:?}");
    assert_eq!(tally.connection_cuts, 1, "{tally:?}");
    assert!(
        cutting.accepted() > tally.accepted_at_cut,
        "the second relay connected again after the cut: {} connections, {} before it",
        cutting.accepted(),
        tally.accepted_at_cut
    );
    assert_eq!(tally.consumer_kills, 1, "{tally:?}");
    assert_eq!(tally.applied, ORDERS, "each event applied once, by some consumer: {tally:?}");
    assert!(tally.published >= ORDERS + killed_batch, "the killed relay's batch was sent again: {tally:?}");
    if broker == Broker::RabbitMq {
        // The copies the restarted relay sent again reached the queue; the inbox replayed them.
        assert!(tally.replayed >= killed_batch, "the inbox absorbed the re-sent batch: {tally:?}");
    }

    // The broker: with every consumer gone, an unacknowledged message would be ready again.
    let mut stream_note = String::new();
    match broker {
        Broker::RabbitMq => {
            use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
            let queue = name_of("AMQP_QUEUE").expect("the queue's name");
            let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
                .await
                .expect("connect to RabbitMQ");
            let channel = connection.create_channel().await.unwrap();
            let state = channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions { passive: true, ..Default::default() },
                    lapin::types::FieldTable::default(),
                )
                .await
                .expect("the test's queue exists");
            assert_eq!(
                (state.message_count(), state.consumer_count()),
                (0, 0),
                "nothing is left in the queue or unacknowledged"
            );
            channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
            connection.close(200, "done".into()).await.unwrap();
        }
        Broker::Nats => {
            let (stream, consumer) = (name_of("NATS_STREAM").unwrap(), name_of("NATS_CONSUMER").unwrap());
            let jetstream = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect to NATS"));
            let mut durable: async_nats::jetstream::consumer::PullConsumer =
                jetstream.get_consumer_from_stream(&consumer, &stream).await.expect("the test's consumer exists");
            let info = durable.info().await.expect("consumer info");
            assert_eq!(
                (info.num_pending, info.num_ack_pending),
                (0, 0),
                "nothing is left pending or unacknowledged: {info:?}"
            );
            // The copies the restarted relay sent again carried the ids already stored: the stream dropped them.
            let stored =
                jetstream.get_stream(&stream).await.expect("the test's stream").info().await.unwrap().state.messages;
            assert_eq!(stored, ORDERS as u64, "the stream's duplicate window kept one message per id: {tally:?}");
            stream_note = format!(", stream messages stored {stored} (its duplicate window dropped the re-sends)");
            jetstream.delete_stream(&stream).await.expect("delete the test's stream");
        }
    }

    for summary in &tally.summaries {
        println!("{summary}");
    }
    report_figure(&format!(
        "outbox e2e ({}): orders created {ORDERS}, HTTP retries {} (a third of the answers dropped), relay kills {} \
         (mid-batch: {killed_batch} confirmed messages not yet marked sent), relay connection cuts {}, consumer \
         kills {} (consumers restarted after an idle exit {}), messages published {} (marked sent {}, unconfirmed \
         and retried {}), duplicates absorbed {}{stream_note}, order_events rows {event_rows}, outbox lag (oldest \
         unsent row, largest sampled) {:.2} s",
        broker.name(),
        created.retries,
        tally.relay_kills,
        tally.connection_cuts,
        tally.consumer_kills,
        tally.idle_restarts,
        tally.published,
        tally.marked_sent,
        tally.unconfirmed,
        tally.replayed,
        lag.as_secs_f64()
    ));
    drop(http);
    drop(orders);
    schema.drop_schema().await;
}

/// Whether the run is over: every order's event applied, the outbox empty.
async fn settled(watcher: &deadpool_postgres::Pool, store: &PostgresStore) -> bool {
    let client = watcher.get().await.expect("a connection");
    let row = client
        .query_one("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_events)", &[])
        .await
        .expect("count orders and events");
    let (orders, events): (i64, i64) = (row.get(0), row.get(1));
    let backlog = idempotent_runtime::outbox::backlog(store).await.expect("the outbox's backlog");
    orders == ORDERS as i64 && events == orders && backlog.waiting == 0
}

/// The rows so far, for a failure message.
async fn counts(watcher: &deadpool_postgres::Pool) -> String {
    let client = watcher.get().await.expect("a connection");
    match client.query_one("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_events)", &[]).await {
        Ok(row) => format!("orders {}, order_events {}", row.get::<_, i64>(0), row.get::<_, i64>(1)),
        Err(error) => format!("counts unavailable: {error}"),
    }
}
