//! A Redis Cluster master killed under load: the window of 503s until its replica takes over, double executions
//! with and without `WAIT`, and what `WAIT` costs on a healthy cluster.

use super::*;

/// What one failover run measured.
struct Failover {
    requests: usize,
    throughput_before: f64,
    p50_before: Duration,
    window: Duration,
    took_over: Duration,
    rejoined: Duration,
    unavailable: usize,
    unavailable_after_takeover: usize,
    twice_answered_before_kill: usize,
    twice_in_flight: usize,
    twice_after_kill: usize,
}

/// A private 3-master, 3-replica cluster; 8 clients of fresh keys; one master killed (-9) once 300 keys completed;
/// its replica takes over; the killed node is started again and rejoins as a replica; load until 300 more keys
/// completed after that; then every key is sent again until it completes.
async fn master_failover_under_load(replica_acks: bool) -> Failover {
    let cluster = Arc::new(tokio::task::spawn_blocking(RedisCluster::start).await.expect("start a private cluster"));
    let schema = TestSchema::create().await;
    let pool = schema.pool(2);
    let mut env = vec![("REDIS_CLUSTER_NODES", cluster.nodes().join(","))];
    if replica_acks {
        env.push(("REDIS_REPLICA_ACKS", "1".to_owned()));
        env.push(("REDIS_REPLICA_ACKS_TIMEOUT_MS", "500".to_owned()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let process = ExampleProcess::start_with_env("payments", Some(&schema.database_url()), &env);
    assert!(process.banner.contains("Redis Cluster"), "{:?}", process.banner);
    let client = client(64);
    let user = "failover";
    let stop = AtomicBool::new(false);
    let down_at = OnceLock::<Instant>::new();
    let answered_while_down = AtomicUsize::new(0);
    let started = Instant::now();

    let load = fresh_key_load(&client, &process.base, user, 8, &stop, &down_at, &answered_while_down);
    let timeline = async {
        while executions_by_amount(&pool, user).await.len() < 300 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let victim = cluster.masters()[0];
        let before = started.elapsed();
        cluster.kill(victim);
        let killed_at = Instant::now();
        let _ = down_at.set(killed_at);
        // Polls the nodes with redis-cli: blocking, so off the test's runtime.
        let watching = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || watching.wait_until_serving(Duration::from_secs(30)))
            .await
            .expect("the replica took over");
        let took_over = killed_at.elapsed();
        // The killed node is started again (empty: no persistence) and rejoins as the new master's replica. Until
        // it has, the shard has no replica: with WAIT its claims are not acknowledged and answered 503.
        let watching = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            watching.restart(victim);
            watching.wait_until_healthy(Duration::from_secs(30));
        })
        .await
        .expect("the killed node rejoined as a replica");
        let rejoined = killed_at.elapsed();
        let completed = executions_by_amount(&pool, user).await.len();
        let healthy = Instant::now();
        while executions_by_amount(&pool, user).await.len() < completed + 300 {
            assert!(healthy.elapsed() < Duration::from_secs(30), "no service after the failover");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::SeqCst);
        (killed_at, before, took_over, rejoined)
    };
    let (outcomes, (killed_at, before, took_over, rejoined)) = tokio::join!(load, timeline);
    let stray = outcomes.iter().filter(|(_, o)| {
        o.status.is_none_or(|status| status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE)
    });
    assert_eq!(
        stray.count(),
        0,
        "no 5xx other than 503, no dropped connection: {}",
        tally(outcomes.iter().map(|(_, o)| o))
    );

    let answered_before: Vec<&Outcome> =
        outcomes.iter().map(|(_, outcome)| outcome).filter(|outcome| outcome.answered < killed_at).collect();
    let mut latencies: Vec<Duration> = answered_before.iter().map(|o| o.answered - o.sent).collect();
    latencies.sort();
    let unavailable: Vec<&Outcome> = outcomes
        .iter()
        .map(|(_, outcome)| outcome)
        .filter(|outcome| outcome.status == Some(StatusCode::SERVICE_UNAVAILABLE))
        .collect();
    for outcome in &unavailable {
        assert!(outcome.retry_after.is_some(), "503 with Retry-After: {outcome:?}");
    }
    let window = unavailable.iter().map(|outcome| outcome.answered.saturating_duration_since(killed_at)).max();
    let unavailable_after_takeover =
        unavailable.iter().filter(|outcome| outcome.sent.saturating_duration_since(killed_at) > took_over).count();

    let amounts: Vec<i64> = outcomes.iter().map(|(amount, _)| *amount).collect();
    let _ = retry_until_created(&client, &process.base, user, &amounts, 0).await;
    let executions = executions_by_amount(&pool, user).await;
    assert_eq!(executions.len(), amounts.len(), "every key paid");
    let by_amount: HashMap<i64, &Outcome> = outcomes.iter().map(|(amount, outcome)| (*amount, outcome)).collect();
    let twice: Vec<i64> = executions.iter().filter(|(_, count)| **count > 1).map(|(amount, _)| *amount).collect();
    let twice_answered_before_kill =
        twice.iter().filter(|amount| by_amount[amount].created() && by_amount[amount].answered < killed_at).count();
    let twice_in_flight = twice
        .iter()
        .filter(|amount| by_amount[amount].sent < killed_at && by_amount[amount].answered >= killed_at)
        .count();
    let result = Failover {
        requests: outcomes.len(),
        throughput_before: answered_before.len() as f64 / before.as_secs_f64(),
        p50_before: latencies.get(latencies.len() / 2).copied().unwrap_or_default(),
        window: window.unwrap_or_default(),
        took_over,
        rejoined,
        unavailable: unavailable.len(),
        unavailable_after_takeover,
        twice_answered_before_kill,
        twice_in_flight,
        twice_after_kill: twice.len() - twice_answered_before_kill - twice_in_flight,
    };
    drop(process);
    drop(cluster);
    schema.drop_schema().await;
    result
}

/// The failover of a master, without and then with replica acknowledgements (`WAIT 1`), each on a private cluster
/// (run one after the other: two clusters at once would share the 2 cores and blur the window).
#[actix_web::test]
async fn cluster_master_killed_under_load_measures_the_503_window_and_double_executions_with_and_without_wait() {
    let mut runs = Vec::new();
    for replica_acks in [false, true] {
        let run = master_failover_under_load(replica_acks).await;
        support::report_figure(&format!(
            "Redis Cluster (3+3, cluster-node-timeout 1 s), {}: kill -9 of a master under load (8 clients, {} \
             requests): before the kill {:.0} requests/s, p50 {:?}; the replica served the slots {:?} after the \
             kill, the restarted node was a replica in sync {:?} after it; 503 + Retry-After: {} answers, the last \
             {:?} after the kill ({} of them sent after the take-over); keys run twice: {} answered 201 before the \
             kill, {} in flight at the kill, {} sent after it",
            if replica_acks { "WAIT 1 replica (500 ms)" } else { "no WAIT" },
            run.requests,
            run.throughput_before,
            run.p50_before,
            run.took_over,
            run.rejoined,
            run.unavailable,
            run.window,
            run.unavailable_after_takeover,
            run.twice_answered_before_kill,
            run.twice_in_flight,
            run.twice_after_kill,
        ));
        if replica_acks {
            // The claim and the response were on the replica before the handler ran and the response was sent.
            assert_eq!(run.twice_answered_before_kill, 0, "with WAIT, an acknowledged response survives the failover");
        }
        // A key sent after the kill is claimed on the new master (or refused with 503): it never runs twice.
        assert_eq!(run.twice_after_kill, 0, "keys sent after the kill ran twice");
        // The 503s end once the shard serves again: without WAIT at the take-over, with WAIT once the restarted
        // node is its replica; plus the client's slot-map refresh and one store timeout (2 s) for a request sent
        // just before.
        let served_again = if replica_acks { run.rejoined } else { run.took_over };
        let bound = served_again + Duration::from_secs(3);
        assert!(run.window <= bound, "the last 503 came {:?} after the kill, past {bound:?}", run.window);
        assert!(run.took_over < Duration::from_secs(10), "the replica took over {:?} after the kill", run.took_over);
        runs.push(run);
    }
    let (without, with) = (&runs[0], &runs[1]);
    support::report_figure(&format!(
        "Redis Cluster failover runs, the example before the kill: {:.0} requests/s without WAIT, {:.0} with (p50 \
         {:?} -> {:?}); each request also commits a payment to PostgreSQL, which bounds these (WAIT's own cost: \
         replica_acknowledgements_cost_on_a_healthy_cluster)",
        without.throughput_before, with.throughput_before, without.p50_before, with.p50_before
    ));
}

/// The record's hash as the Redis store names it (`store/redis/keys.rs`), for reading it on a replica.
fn record_key(id: &idempotent_runtime::store::RecordId) -> String {
    let (record, _channel) =
        idempotent_runtime::store::testing::redis_record_keys(idempotent_runtime::DEFAULT_KEY_PREFIX, id);
    String::from_utf8(record).expect("a record key of printable characters")
}

/// The state field of `key`'s record read on the replica on `port` (`READONLY`), if it has the record.
async fn state_on_replica(port: u16, key: &str) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("a replica's URL");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect to the replica");
    let () = redis::cmd("READONLY").query_async(&mut connection).await.expect("READONLY");
    redis::cmd("HGET").arg(key).arg("s").query_async(&mut connection).await.expect("HGET on the replica")
}

/// What `WAIT` is for, then what it costs by itself: the library's `RedisStore` on a healthy private cluster.
/// With `replica_acks(1, 2 s)` a completed record is on its replica when `complete` returns, and a claim whose
/// replica does not answer is refused (without `WAIT` it is acquired). Then 16 concurrent loops of a fresh key's
/// store work (claim, then complete), without and with `WAIT`, interleaved over 3 rounds of 2 s. (The failover
/// test's throughput goes through the example's PostgreSQL payments, which hide it.)
#[actix_web::test]
async fn replica_acknowledgements_cost_on_a_healthy_cluster() {
    use idempotent_runtime::store::{Attempt, Claim, ClaimRequest, RecordId, StoredResponse};
    use idempotent_runtime::{RedisStore, Store};
    const LOOPS: usize = 16;
    const ROUNDS: usize = 3;
    const ROUND: Duration = Duration::from_secs(2);
    let cluster = Arc::new(tokio::task::spawn_blocking(RedisCluster::start).await.expect("start a private cluster"));
    let connect = |acks: bool| {
        let builder = RedisStore::cluster(cluster.nodes());
        // 2 s: on a loaded 2-core machine (the failover tests run beside this one) a healthy replica once took more
        // than 500 ms to acknowledge the first write. A healthy cluster answers WAIT as soon as the replica
        // acknowledges, so the bound does not change the loops' figures; it only lengthens the paused-replica check.
        let builder = if acks { builder.replica_acks(1, Duration::from_secs(2)) } else { builder };
        builder.connect()
    };
    let stores = [connect(false).await.expect("connect"), connect(true).await.expect("connect with WAIT")];
    let response = StoredResponse { status: StatusCode::CREATED, headers: Vec::new(), body: Some("{}".into()) };

    let fresh = |key: u8| ClaimRequest {
        id: RecordId {
            scope_hash: [9; 32],
            key_hash: [key; 32],
            method: "POST".to_owned(),
            route: "/payments".to_owned(),
        },
        fingerprint: [1; 32],
        token: 1,
        lease: LEASE,
        ttl: Duration::from_secs(60),
    };
    // With WAIT, the completed record is on its replica as soon as `complete` returns.
    let stored = fresh(1);
    let key = record_key(&stored.id);
    let replica = cluster.replica_of(cluster.master_of(&key));
    assert!(matches!(stores[1].claim(&stored).await.expect("claim with WAIT"), Claim::Acquired { .. }));
    let attempt = Attempt { id: stored.id.clone(), token: stored.token };
    stores[1].complete(&attempt, &response, stored.ttl).await.expect("complete with WAIT");
    assert_eq!(state_on_replica(replica, &key).await.as_deref(), Some("c"), "the completed record on the replica");
    // With the shard's replica stopped, a claim with WAIT is refused; without, it is acquired.
    let (unacknowledged, plain) = (fresh(2), fresh(3));
    let replica = cluster.replica_of(cluster.master_of(&record_key(&unacknowledged.id)));
    cluster.pause(replica);
    let refused = stores[1].claim(&unacknowledged).await;
    let acquired = stores[0].claim(&plain).await;
    cluster.resume(replica);
    assert!(refused.is_err(), "a claim no replica acknowledged: {refused:?}");
    assert!(matches!(acquired, Ok(Claim::Acquired { .. })), "without WAIT: {acquired:?}");
    let watching = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || watching.wait_until_healthy(Duration::from_secs(30)))
        .await
        .expect("the replica is back in sync");

    // Per store: fresh keys completed, time spent, latencies of claim + complete.
    let mut totals = [(0usize, Duration::ZERO, Vec::new()), (0usize, Duration::ZERO, Vec::new())];
    for _ in 0..ROUNDS {
        for (store, total) in stores.iter().zip(&mut totals) {
            let started = Instant::now();
            let loops = (0..LOOPS).map(|_| {
                let response = &response;
                async move {
                    let mut latencies = Vec::new();
                    while started.elapsed() < ROUND {
                        let id = RecordId {
                            scope_hash: [7; 32],
                            key_hash: std::array::from_fn(|_| fastrand::u8(..)),
                            method: "POST".to_owned(),
                            route: "/payments".to_owned(),
                        };
                        let request = ClaimRequest {
                            id: id.clone(),
                            fingerprint: [1; 32],
                            token: fastrand::i64(..),
                            lease: LEASE,
                            ttl: Duration::from_secs(60),
                        };
                        let sent = Instant::now();
                        let claim = store.claim(&request).await.expect("claim on a healthy cluster");
                        assert!(matches!(claim, Claim::Acquired { .. }), "{claim:?}");
                        let lease = Attempt { id, token: request.token };
                        store.complete(&lease, response, request.ttl).await.expect("complete on a healthy cluster");
                        latencies.push(sent.elapsed());
                    }
                    latencies
                }
            });
            let latencies: Vec<Duration> = futures_util::future::join_all(loops).await.into_iter().flatten().collect();
            total.0 += latencies.len();
            total.1 += started.elapsed();
            total.2.extend(latencies);
        }
    }
    let summary = |(keys, elapsed, latencies): &mut (usize, Duration, Vec<Duration>)| {
        latencies.sort();
        let rate = *keys as f64 / elapsed.as_secs_f64();
        (rate, latencies[latencies.len() / 2], latencies[latencies.len() * 99 / 100])
    };
    let (without, with) = (summary(&mut totals[0]), summary(&mut totals[1]));
    support::report_figure(&format!(
        "Redis Cluster (3+3), the store alone, {LOOPS} concurrent fresh keys (claim + complete), {ROUNDS} x {ROUND:?} \
         each, debug build: without WAIT {:.0} keys/s (p50 {:?}, p99 {:?}); with WAIT 1 replica {:.0} keys/s (p50 {:?}, \
         p99 {:?}): WAIT costs {:.0}% of throughput",
        without.0,
        without.1,
        without.2,
        with.0,
        with.1,
        with.2,
        100.0 * (1.0 - with.0 / without.0)
    ));
    drop(stores);
    drop(cluster);
}
