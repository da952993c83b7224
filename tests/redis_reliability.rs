//! Never twice, never stuck, on Redis: the payments example run as real server processes with its idempotency
//! records in Redis (`REDIS_URL`, `REDIS_CLUSTER_NODES`) and its payments in PostgreSQL, under concurrency,
//! `kill -9` of the app, a Redis restart and the failover of a Redis Cluster master. Each test prints its figures
//! (`cargo test --test redis_reliability -- --nocapture`; also appended to `target/tmp/figures.txt`).
//!
//! Executions are counted where they happen: one payment row per handler run, and every key carries a unique
//! amount, so `count(*) GROUP BY amount` shows any double execution. Nothing waits on a guessed duration: each step
//! waits for an observed state (records in progress, a server answering, the cluster serving every slot), except the
//! retries after a lease, which poll until the key completes.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use support::example_process::{ExampleProcess, free_port};
use support::payments_load::{Outcome, client, executions_by_amount, pay, tally};
use support::postgres::TestSchema;
use support::redis_cluster::RedisCluster;
use support::redis_node::{PrivateRedis, delete_prefix, redis_url, unique_prefix};

/// The payments example's lease.
const LEASE: Duration = Duration::from_secs(5);

fn key_of(amount: i64) -> String {
    format!("key-{amount}")
}

/// Sends every amount's key again (the same request: same body, same fingerprint) until each answers 201 (a claim left in progress lapses with its lease, and the
/// retry after it runs the handler); returns the first answer of each, and how long it took.
async fn retry_until_created(
    client: &awc::Client,
    base: &str,
    user: &str,
    amounts: &[i64],
    delay_ms: u64,
) -> (HashMap<i64, Outcome>, Duration) {
    let started = Instant::now();
    let mut first = HashMap::new();
    let mut pending = amounts.to_vec();
    while !pending.is_empty() {
        assert!(
            started.elapsed() < LEASE * 6,
            "keys still not completed after {:?}: {}",
            started.elapsed(),
            pending.len()
        );
        let mut outcomes = Vec::new();
        for batch in pending.chunks(64) {
            outcomes.extend(
                futures_util::future::join_all(
                    batch.iter().map(|&amount| pay(client, base, user, key_of(amount), amount, delay_ms)),
                )
                .await,
            );
        }
        let mut still = Vec::new();
        for (amount, outcome) in pending.into_iter().zip(outcomes) {
            let created = outcome.created();
            first.entry(amount).or_insert(outcome);
            if !created {
                still.push(amount);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    (first, started.elapsed())
}

#[actix_web::test]
async fn thousand_concurrent_requests_over_fifty_keys_through_two_processes_on_one_redis_run_fifty_times() {
    const KEYS: i64 = 50;
    const REQUESTS_PER_KEY: i64 = 20;
    let schema = TestSchema::create().await;
    let prefix = unique_prefix();
    let env = [("REDIS_URL", redis_url()), ("REDIS_KEY_PREFIX", prefix.clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let first = ExampleProcess::start_with_env("payments", Some(&schema.database_url()), &env);
    let second = ExampleProcess::start_with_env("payments", Some(&schema.database_url()), &env);
    assert!(first.banner.contains("Redis (REDIS_URL) store, PostgreSQL payments"), "{:?}", first.banner);
    let bases = [first.base.clone(), second.base.clone()];
    let client = client(2_000);

    let started = Instant::now();
    let outcomes = futures_util::future::join_all((0..KEYS * REQUESTS_PER_KEY).map(|request| {
        let amount = request % KEYS + 1;
        let base = &bases[usize::from(request % 2 == 1)];
        let client = &client;
        async move { pay(client, base, "load", key_of(amount), amount, 200).await }
    }))
    .await;
    let elapsed = started.elapsed();

    let executions = executions_by_amount(&schema.pool(1), "load").await;
    support::report_figure(&format!(
        "Redis, 1000 concurrent requests, 50 keys, 2 processes: {} executions in {elapsed:?}; responses {}",
        executions.values().sum::<i64>(),
        tally(&outcomes)
    ));
    assert_eq!(executions.len(), KEYS as usize, "every key executed");
    assert!(executions.values().all(|&count| count == 1), "no key executed twice: {executions:?}");
    for outcome in &outcomes {
        let status = outcome.status.expect("answered (no dropped connection)");
        assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT, "0 5xx: {outcome:?}");
    }
    // Afterwards every key replays its one result, from either process.
    for amount in 1..=KEYS {
        let outcome = pay(&client, &bases[(amount % 2) as usize], "load", key_of(amount), amount, 200).await;
        assert!(outcome.replayed && outcome.created(), "{outcome:?}");
    }
    drop((first, second));
    delete_prefix(&prefix).await;
    schema.drop_schema().await;
}

#[actix_web::test]
async fn kill_dash_nine_mid_handler_on_redis_runs_each_key_once_after_the_lease() {
    const KILLS: usize = 5;
    const KEYS_PER_KILL: usize = 3;
    let schema = TestSchema::create().await;
    let pool = schema.pool(2);
    let redis = PrivateRedis::start(&[]);
    let env = [("REDIS_URL", redis.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let port = free_port();
    let client = client(64);
    let start = || ExampleProcess::start_on(port, "payments", Some(&schema.database_url()), &env);
    let mut process = Some(start());
    let base = format!("http://127.0.0.1:{port}");
    let mut amounts = Vec::new();
    let mut max_retry_after = 0;

    for kill in 0..KILLS {
        // Slow payments (3 s, inside the 5 s lease), killed while their handlers run.
        let cycle: Vec<i64> = (0..KEYS_PER_KILL).map(|slot| (kill * KEYS_PER_KILL + slot + 1) as i64).collect();
        let in_flight = futures_util::future::join_all(
            cycle.iter().map(|&amount| pay(&client, &base, "crash", key_of(amount), amount, 3_000)),
        );
        let kill_when_running = async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while redis.records_in_state("p").await < (kill + 1) * KEYS_PER_KILL {
                assert!(Instant::now() < deadline, "the handlers did not start");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            process.take().expect("running").kill();
        };
        let (outcomes, ()) = tokio::join!(in_flight, kill_when_running);
        assert!(outcomes.iter().all(|outcome| outcome.status.is_none()), "killed mid-handler: {outcomes:?}");

        // Restarted on the same port, the retry finds the dead claim: 409 with a Retry-After within the lease.
        process = Some(start());
        let retry = pay(&client, &base, "crash", key_of(cycle[0]), cycle[0], 3_000).await;
        assert_eq!(retry.status, Some(StatusCode::CONFLICT), "{retry:?}");
        let retry_after = retry.retry_after.expect("Retry-After");
        assert!((1..=LEASE.as_secs()).contains(&retry_after), "Retry-After {retry_after} exceeds the lease");
        max_retry_after = max_retry_after.max(retry_after);
        amounts.extend(cycle);
    }
    assert_eq!(executions_by_amount(&pool, "crash").await.len(), 0, "no killed handler got to pay");

    // After the lease, every key completes on retry, exactly once.
    let (_, recovery) = retry_until_created(&client, &base, "crash", &amounts, 3_000).await;
    let executions = executions_by_amount(&pool, "crash").await;
    support::report_figure(&format!(
        "Redis, kill -9 x{KILLS} with {KEYS_PER_KILL} payments in flight each: {} keys, {} executions after \
         recovery ({recovery:?} after the last kill), max Retry-After right after restart {max_retry_after} s \
         (lease {} s)",
        amounts.len(),
        executions.values().sum::<i64>(),
        LEASE.as_secs()
    ));
    assert_eq!(executions.len(), amounts.len(), "every key completed");
    assert!(executions.values().all(|&count| count == 1), "exactly once each: {executions:?}");
    drop(process);
    schema.drop_schema().await;
}

/// Load of fresh keys (a unique amount each) from `workers` clients until `stop` is set.
async fn fresh_key_load(
    client: &awc::Client,
    base: &str,
    user: &str,
    workers: usize,
    stop: &AtomicBool,
    down_at: &OnceLock<Instant>,
    answered_while_down: &AtomicUsize,
) -> Vec<(i64, Outcome)> {
    let next_amount = AtomicI64::new(1);
    let worker = |_| {
        let next_amount = &next_amount;
        async move {
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let amount = next_amount.fetch_add(1, Ordering::SeqCst);
                let outcome = pay(client, base, user, key_of(amount), amount, 0).await;
                if down_at.get().is_some_and(|down| outcome.sent > *down) {
                    answered_while_down.fetch_add(1, Ordering::SeqCst);
                }
                outcomes.push((amount, outcome));
            }
            outcomes
        }
    };
    futures_util::future::join_all((0..workers).map(worker)).await.into_iter().flatten().collect()
}

/// The private node keeps an append-only file synced on every write (`--appendonly yes --appendfsync always`): a
/// record Redis acknowledged survives its `kill -9`. Without persistence a restarted node is empty, every record
/// is gone, and every key would run again: no store can promise anything across that.
#[actix_web::test]
async fn redis_restart_under_load_gives_only_503_and_no_completed_key_runs_twice() {
    let schema = TestSchema::create().await;
    let pool = schema.pool(2);
    let mut redis = PrivateRedis::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let appendonly = support::redis_cluster::cli(redis.port, &["config", "get", "appendonly"]);
    assert!(appendonly.contains("yes"), "the private node persists: {appendonly:?}");
    let env = [("REDIS_URL", redis.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let process = ExampleProcess::start_with_env("payments", Some(&schema.database_url()), &env);
    let client = client(64);
    let user = "restart";
    let stop = AtomicBool::new(false);
    let down_at = OnceLock::<Instant>::new();
    let answered_while_down = AtomicUsize::new(0);

    let load = fresh_key_load(&client, &process.base, user, 8, &stop, &down_at, &answered_while_down);
    let timeline = async {
        // Some completed keys first (observed, not timed).
        while executions_by_amount(&pool, user).await.len() < 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        redis.kill();
        let down = Instant::now();
        let _ = down_at.set(down);
        // Down until 16 requests sent since were answered (and at least 1 s).
        while answered_while_down.load(Ordering::SeqCst) < 16 || down.elapsed() < Duration::from_secs(1) {
            assert!(down.elapsed() < Duration::from_secs(20), "no answers while Redis was down");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let resuming = Instant::now();
        redis.resume(); // returns once it answers PING (the append-only file loaded)
        let back = Instant::now();
        // Load until 200 more keys completed after it is back.
        let before = executions_by_amount(&pool, user).await.len();
        while executions_by_amount(&pool, user).await.len() < before + 200 {
            assert!(back.elapsed() < Duration::from_secs(20), "no service after Redis came back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::SeqCst);
        (down, resuming, back)
    };
    let (outcomes, (down, resuming, back)) = tokio::join!(load, timeline);

    // Sent while Redis was down and answered before it was started again: only 503 + Retry-After.
    let during: Vec<&Outcome> =
        outcomes.iter().map(|(_, outcome)| outcome).filter(|o| o.sent > down && o.answered < resuming).collect();
    assert!(!during.is_empty(), "requests were made while Redis was down");
    for outcome in &during {
        assert_eq!(outcome.status, Some(StatusCode::SERVICE_UNAVAILABLE), "{outcome:?}");
        assert!(outcome.retry_after.is_some(), "503 with Retry-After: {outcome:?}");
    }
    let stray = outcomes.iter().filter(|(_, o)| {
        o.status.is_none_or(|status| status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE)
    });
    assert_eq!(stray.count(), 0, "no 5xx other than 503, no dropped connection");
    let first_success_after = outcomes
        .iter()
        .map(|(_, outcome)| outcome)
        .filter(|outcome| outcome.sent >= back && outcome.created())
        .map(|outcome| outcome.answered - back)
        .min()
        .expect("service came back");

    // Every key is sent again: a key completed before the crash replays (its record survived), a key left in
    // progress runs after its lease, a key whose claim failed runs now.
    let amounts: Vec<i64> = outcomes.iter().map(|(amount, _)| *amount).collect();
    let (again, recovery) = retry_until_created(&client, &process.base, user, &amounts, 0).await;
    let executions = executions_by_amount(&pool, user).await;
    let by_amount: HashMap<i64, &Outcome> = outcomes.iter().map(|(amount, outcome)| (*amount, outcome)).collect();
    let completed_before_crash: Vec<i64> = amounts
        .iter()
        .copied()
        .filter(|amount| by_amount[amount].created() && by_amount[amount].answered < down)
        .collect();
    let in_flight_at_crash: HashSet<i64> = amounts
        .iter()
        .copied()
        .filter(|amount| by_amount[amount].sent < down && by_amount[amount].answered >= down)
        .collect();
    let twice: Vec<i64> = executions.iter().filter(|(_, count)| **count > 1).map(|(amount, _)| *amount).collect();
    let replayed = again.values().filter(|outcome| outcome.replayed).count();
    support::report_figure(&format!(
        "Redis restart (kill -9, append-only file fsynced always) under load (8 clients): {} requests, {} sent \
         while down ({:.1?}; all 503 + Retry-After), first success {first_success_after:?} after it answered PING; \
         every key sent again: {replayed} replayed, all completed in {recovery:?}; {} keys completed before the \
         crash, 0 of them ran again; keys run twice: {} (all in flight at the crash: their completion could not be \
         stored, the documented case); responses {}",
        outcomes.len(),
        during.len(),
        resuming - down,
        completed_before_crash.len(),
        twice.len(),
        tally(outcomes.iter().map(|(_, outcome)| outcome)),
    ));
    assert_eq!(executions.len(), amounts.len(), "every key paid");
    for amount in &completed_before_crash {
        assert_eq!(executions[amount], 1, "key {amount}, completed before the crash, ran again");
        assert!(again[amount].replayed, "key {amount}, completed before the crash, replays: {:?}", again[amount]);
    }
    assert!(
        twice.iter().all(|amount| in_flight_at_crash.contains(amount)),
        "only keys in flight at the crash may run twice: {twice:?}"
    );
    drop(process);
    schema.drop_schema().await;
}

/// The cluster: a master killed under load, with and without replica acknowledgements, and what they cost.
#[path = "redis_reliability/cluster.rs"]
mod cluster;
