//! Never twice, never stuck: the payments example run as real server processes on one PostgreSQL, under
//! concurrency, `kill -9` and a database outage. Each test prints its figures (`cargo test --test reliability --
//! --nocapture`).
//!
//! Executions are counted where they happen: the example records one payment row per handler run, and every key of
//! these tests carries a unique amount, so `count(*) GROUP BY amount` shows any double execution.

mod support;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use support::Connection;
use support::example_process::{ExampleProcess, free_port};
use support::payments_load::{Outcome, client, executions_by_amount, pay, tally};
use support::pgbouncer::PgBouncer;
use support::postgres::{TestSchema, pool_for};
use support::private_cluster::PrivateCluster;

#[actix_web::test]
async fn thousand_concurrent_requests_over_fifty_keys_through_two_processes_run_fifty_times() {
    const KEYS: i64 = 50;
    const REQUESTS_PER_KEY: i64 = 20;
    let schema = TestSchema::create().await;
    let first = ExampleProcess::start("payments", Some(&schema.database_url()));
    let second = ExampleProcess::start("payments", Some(&schema.database_url()));
    let bases = [first.base.clone(), second.base.clone()];
    let client = client(2_000);

    let started = Instant::now();
    let outcomes = futures_util::future::join_all((0..KEYS * REQUESTS_PER_KEY).map(|request| {
        let key = request % KEYS;
        let base = &bases[usize::from(request % 2 == 1)];
        let client = &client;
        async move { pay(client, base, "load", &format!("load-{key}"), key + 1, 200).await }
    }))
    .await;
    let elapsed = started.elapsed();

    let executions = executions_by_amount(&schema.pool(1), "load").await;
    support::report_figure(&format!(
        "1000 concurrent requests, 50 keys, 2 processes: {} executions in {elapsed:?}; responses {}",
        executions.values().sum::<i64>(),
        tally(&outcomes)
    ));
    assert_eq!(executions.len(), KEYS as usize, "every key executed");
    assert!(executions.values().all(|&count| count == 1), "no key executed twice: {executions:?}");
    let server_errors = outcomes.iter().filter(|outcome| outcome.status.is_none_or(|status| status.is_server_error()));
    assert_eq!(server_errors.count(), 0, "0 5xx (and no dropped connection)");
    for outcome in &outcomes {
        let status = outcome.status.expect("answered");
        assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT, "{outcome:?}");
    }
    // Afterwards every key replays its one result, from either process.
    for key in 0..KEYS {
        let outcome = pay(&client, &bases[(key % 2) as usize], "load", &format!("load-{key}"), key + 1, 200).await;
        assert!(outcome.replayed && outcome.status == Some(StatusCode::CREATED), "{outcome:?}");
    }
    drop((first, second));
    schema.drop_schema().await;
}

/// The scenario behind a transaction-mode pooler: bursts of concurrent fresh keys, then every key retried
/// after the lease. A completion that failed would leave its key to be taken over and charged again here.
#[actix_web::test]
async fn behind_pgbouncer_bursts_of_fresh_keys_then_retries_after_the_lease_never_execute_twice() {
    const BURSTS: i64 = 3;
    const KEYS_PER_BURST: i64 = 32;
    const LEASE: Duration = Duration::from_secs(5); // the payments example's lease
    let schema = TestSchema::create().await;
    let (url, _bouncer) = Connection::PgBouncer.database_url(&schema);
    let process = ExampleProcess::start("payments", Some(&url));
    let client = client(64);
    let mut first = Vec::new();
    for burst in 0..BURSTS {
        let amounts = (0..KEYS_PER_BURST).map(|slot| burst * KEYS_PER_BURST + slot + 1);
        first.extend(
            futures_util::future::join_all(
                amounts.map(|amount| pay(&client, &process.base, "burst", format!("burst-{amount}"), amount, 50)),
            )
            .await,
        );
    }
    tokio::time::sleep(LEASE + Duration::from_millis(500)).await;
    let retries = futures_util::future::join_all(
        (1..=BURSTS * KEYS_PER_BURST)
            .map(|amount| pay(&client, &process.base, "burst", format!("burst-{amount}"), amount, 50)),
    )
    .await;
    let executions = executions_by_amount(&schema.pool(1), "burst").await;
    let twice = executions.values().filter(|&&count| count > 1).count();
    support::report_figure(&format!(
        "PgBouncer (transaction mode): {BURSTS} x {KEYS_PER_BURST} concurrent fresh keys -> {}; retries after the \
         lease -> {}; {} executions, {twice} keys executed twice",
        tally(&first),
        tally(&retries),
        executions.values().sum::<i64>()
    ));
    let server_errors =
        first.iter().chain(&retries).filter(|outcome| outcome.status.is_none_or(|s| s.is_server_error()));
    assert_eq!(server_errors.count(), 0, "0 5xx");
    assert_eq!(twice, 0, "no key executed twice: {executions:?}");
    assert_eq!(executions.len(), (BURSTS * KEYS_PER_BURST) as usize, "every key executed");
    assert!(first.iter().all(|outcome| outcome.status == Some(StatusCode::CREATED) && !outcome.replayed));
    assert!(retries.iter().all(|outcome| outcome.status == Some(StatusCode::CREATED) && outcome.replayed));
    drop(process);
    schema.drop_schema().await;
}

/// Two processes behind one pooler, one request at a time: every request is answered 2xx, and each key replays
/// from the other process.
#[actix_web::test]
async fn behind_pgbouncer_two_processes_answer_every_request_and_replay_each_others_keys() {
    const REQUESTS: i64 = 20;
    let schema = TestSchema::create().await;
    let (url, _bouncer) = Connection::PgBouncer.database_url(&schema);
    let processes = [ExampleProcess::start("payments", Some(&url)), ExampleProcess::start("payments", Some(&url))];
    let client = client(4);
    let mut outcomes = Vec::new();
    let mut replays = Vec::new();
    for amount in 1..=REQUESTS {
        let (here, there) = (&processes[(amount % 2) as usize], &processes[1 - (amount % 2) as usize]);
        outcomes.push(pay(&client, &here.base, "two", format!("two-{amount}"), amount, 0).await);
        replays.push(pay(&client, &there.base, "two", format!("two-{amount}"), amount, 0).await);
    }
    let executions = executions_by_amount(&schema.pool(1), "two").await;
    support::report_figure(&format!(
        "PgBouncer (transaction mode), 2 processes, {REQUESTS} requests one at a time -> {}; each retried on the other \
         process -> {}; {} executions",
        tally(&outcomes),
        tally(&replays),
        executions.values().sum::<i64>()
    ));
    assert!(
        outcomes.iter().all(|outcome| outcome.status == Some(StatusCode::CREATED) && !outcome.replayed),
        "{outcomes:?}"
    );
    assert!(
        replays.iter().all(|outcome| outcome.status == Some(StatusCode::CREATED) && outcome.replayed),
        "{replays:?}"
    );
    assert!(executions.len() == REQUESTS as usize && executions.values().all(|&count| count == 1), "{executions:?}");
    drop(processes);
    schema.drop_schema().await;
}

#[actix_web::test]
async fn kill_dash_nine_mid_handler_never_runs_a_key_twice_and_never_leaves_it_stuck() {
    const KILLS: usize = 20;
    const KEYS_PER_KILL: usize = 3;
    const LEASE_SECS: u64 = 5; // the payments example's lease
    let schema = TestSchema::create().await;
    let pool = schema.pool(2);
    let port = free_port();
    let client = client(64);
    let mut process = Some(ExampleProcess::start_on(port, "payments", Some(&schema.database_url()), &[]));
    let base = format!("http://127.0.0.1:{port}");
    let mut keys = Vec::new();
    let mut max_retry_after = 0;

    for kill in 0..KILLS {
        // Start slow payments (3 s, inside the 5 s lease) and kill the process while they run.
        let cycle: Vec<(String, i64)> = (0..KEYS_PER_KILL)
            .map(|slot| (format!("crash-{kill}-{slot}"), (kill * KEYS_PER_KILL + slot + 1) as i64))
            .collect();
        let in_flight = futures_util::future::join_all(
            cycle.iter().map(|(key, amount)| pay(&client, &base, "crash", key, *amount, 3_000)),
        );
        let expected_in_progress = ((kill + 1) * KEYS_PER_KILL) as i64;
        let kill_when_running = async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let running: i64 = pool
                    .get()
                    .await
                    .expect("connect")
                    .query_one("SELECT count(*) FROM idempotency_records WHERE state = 'in_progress'", &[])
                    .await
                    .expect("count")
                    .get(0);
                if running >= expected_in_progress {
                    break;
                }
                assert!(Instant::now() < deadline, "the handlers did not start");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            process.take().expect("running").kill();
        };
        let (outcomes, ()) = tokio::join!(in_flight, kill_when_running);
        assert!(outcomes.iter().all(|outcome| outcome.status.is_none()), "killed mid-handler: {outcomes:?}");

        // Restarted on the same port, the retry finds the dead claim: 409 with a Retry-After within the lease.
        process = Some(ExampleProcess::start_on(port, "payments", Some(&schema.database_url()), &[]));
        let (key, amount) = &cycle[0];
        let retry = pay(&client, &base, "crash", key, *amount, 3_000).await;
        assert_eq!(retry.status, Some(StatusCode::CONFLICT), "{retry:?}");
        let retry_after = retry.retry_after.expect("Retry-After");
        assert!((1..=LEASE_SECS).contains(&retry_after), "Retry-After {retry_after} exceeds the lease");
        max_retry_after = max_retry_after.max(retry_after);
        keys.extend(cycle);
    }

    // After the lease, every key completes on retry, exactly once.
    let recovery = Instant::now();
    let mut pending = keys.clone();
    while !pending.is_empty() {
        assert!(recovery.elapsed() < Duration::from_secs(60), "keys still stuck: {pending:?}");
        let outcomes = futures_util::future::join_all(
            pending.iter().map(|(key, amount)| pay(&client, &base, "crash", key, *amount, 3_000)),
        )
        .await;
        let mut still = Vec::new();
        for ((key, amount), outcome) in pending.into_iter().zip(outcomes) {
            match outcome.status {
                Some(StatusCode::CREATED) => {}
                Some(StatusCode::CONFLICT) => still.push((key, amount)),
                other => panic!("unexpected {other:?} for {key}"),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let executions = executions_by_amount(&pool, "crash").await;
    support::report_figure(&format!(
        "kill -9 x{KILLS} with {KEYS_PER_KILL} payments in flight each: {} keys, {} executions after recovery \
         ({:?} after the last kill), max Retry-After right after restart {max_retry_after} s (lease {LEASE_SECS} s)",
        keys.len(),
        executions.values().sum::<i64>(),
        recovery.elapsed()
    ));
    assert_eq!(executions.len(), keys.len(), "every key completed");
    assert!(executions.values().all(|&count| count == 1), "exactly once each: {executions:?}");
    drop(process);
    schema.drop_schema().await;
}

#[actix_web::test]
async fn postgres_outage_under_load_gives_only_503_and_no_double_execution() {
    let cluster = PrivateCluster::start();
    let process = ExampleProcess::start("payments", Some(&cluster.url()));
    let pool = pool_for(&cluster.url(), None, 2);
    let outage = Outage { what: "PostgreSQL outage", stop: &|| cluster.stop(), resume: &|| cluster.resume() };
    outage_under_load(&process.base, &pool, outage).await;
    drop(process);
}

/// PgBouncer itself goes down and comes back: the app's pooled connections to it are cut.
#[actix_web::test]
async fn pgbouncer_restart_under_load_gives_only_503_and_no_double_execution() {
    let cluster = PrivateCluster::start();
    let bouncer = PgBouncer::start("127.0.0.1", cluster.port, None);
    let process = ExampleProcess::start("payments", Some(&bouncer.url()));
    let pool = pool_for(&cluster.url(), None, 2);
    let outage = Outage { what: "PgBouncer restart", stop: &|| bouncer.stop(), resume: &|| bouncer.resume() };
    outage_under_load(&process.base, &pool, outage).await;
    drop(process);
}

/// PostgreSQL goes down behind PgBouncer: the app's connections to the pooler stay up while the server's die.
#[actix_web::test]
async fn postgres_restart_behind_pgbouncer_under_load_gives_only_503_and_no_double_execution() {
    let cluster = PrivateCluster::start();
    let bouncer = PgBouncer::start("127.0.0.1", cluster.port, None);
    let process = ExampleProcess::start("payments", Some(&bouncer.url()));
    let pool = pool_for(&cluster.url(), None, 2);
    let outage =
        Outage { what: "PostgreSQL restart behind PgBouncer", stop: &|| cluster.stop(), resume: &|| cluster.resume() };
    outage_under_load(&process.base, &pool, outage).await;
    drop((process, bouncer));
}

/// Something the payments example depends on, stopped for two seconds under load.
struct Outage<'a> {
    what: &'static str,
    stop: &'a dyn Fn(),
    resume: &'a dyn Fn(),
}

/// Load from 8 clients with fresh keys; the dependency is stopped for 2 s and resumed. While it is down, every
/// answer is 503 with `Retry-After`; afterwards every request that did not succeed is retried until it does, and
/// each key was executed exactly once.
async fn outage_under_load(base: &str, pool: &deadpool_postgres::Pool, outage: Outage<'_>) {
    let client = client(64);
    let user = "outage";
    let next_amount = std::sync::atomic::AtomicI64::new(1);
    let stop_load = std::sync::atomic::AtomicBool::new(false);
    // When the dependency went down, and how many requests sent after that have been answered: the outage lasts
    // until some have (a loaded machine can be slow to answer the first ones), so it is observed, not assumed.
    let down_at = std::sync::OnceLock::<Instant>::new();
    let answered_while_down = std::sync::atomic::AtomicUsize::new(0);
    let worker = |_| {
        let (client, next_amount, stop_load) = (&client, &next_amount, &stop_load);
        let (down_at, answered_while_down) = (&down_at, &answered_while_down);
        async move {
            let mut outcomes = Vec::new();
            while !stop_load.load(std::sync::atomic::Ordering::SeqCst) {
                let amount = next_amount.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let outcome = pay(client, base, user, &format!("outage-{amount}"), amount, 0).await;
                if down_at.get().is_some_and(|down| outcome.sent > *down) {
                    answered_while_down.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                outcomes.push((amount, outcome));
            }
            outcomes
        }
    };
    let load = futures_util::future::join_all((0..8).map(worker));
    let outage_timeline = async {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        (outage.stop)();
        let down = Instant::now();
        let _ = down_at.set(down);
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        // At least 2 s, and until 8 requests sent during the outage were answered (at most 15 s).
        while answered_while_down.load(std::sync::atomic::Ordering::SeqCst) < 8
            && down.elapsed() < Duration::from_secs(15)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let resuming = Instant::now();
        (outage.resume)();
        let back = Instant::now();
        tokio::time::sleep(Duration::from_millis(5_000)).await;
        stop_load.store(true, std::sync::atomic::Ordering::SeqCst);
        (down, resuming, back)
    };
    let (outcomes, (down, resuming, back)) = tokio::join!(load, outage_timeline);
    let outcomes: Vec<(i64, Outcome)> = outcomes.into_iter().flatten().collect();

    // Sent after the dependency was down and answered before it was started again: only 503 + Retry-After.
    let during: Vec<&Outcome> = outcomes
        .iter()
        .map(|(_, outcome)| outcome)
        .filter(|outcome| outcome.sent > down && outcome.answered < resuming)
        .collect();
    assert!(!during.is_empty(), "requests were made during the outage");
    for outcome in &during {
        assert_eq!(outcome.status, Some(StatusCode::SERVICE_UNAVAILABLE), "{outcome:?}");
        assert!(outcome.retry_after.is_some(), "503 with Retry-After: {outcome:?}");
    }
    let first_success_after = outcomes
        .iter()
        .map(|(_, outcome)| outcome)
        .filter(|outcome| outcome.sent >= back && outcome.status == Some(StatusCode::CREATED))
        .map(|outcome| outcome.answered - back)
        .min()
        .expect("service came back");
    assert!(first_success_after < Duration::from_secs(5), "normal service within 5 s: {first_success_after:?}");
    let server_errors = outcomes.iter().filter(|(_, outcome)| {
        outcome.status.is_none_or(|status| status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE)
    });
    assert_eq!(server_errors.count(), 0, "no 5xx other than 503, no dropped connection");

    // Every request that did not succeed is retried until it does (a claim left by the outage lapses with its
    // lease); then each amount was paid exactly once.
    let failed: Vec<i64> = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.status != Some(StatusCode::CREATED))
        .map(|(amount, _)| *amount)
        .collect();
    // The example's own payment INSERT runs outside the idempotency record: when its answer is lost (the connection
    // cut after the commit), the handler answers 503 `storage-failed`, the library releases the key (5xx is not
    // stored), and the retry pays again. That is the handler's own at-least-once write (docs/guide/postgres-in-production.md, "When
    // storing the response fails": pass the key on, or use a transactional route), not the library's: each such
    // answer excuses one extra payment of its key, no more.
    let is_storage_failed =
        |outcome: &Outcome| outcome.problem.as_deref().is_some_and(|kind| kind.ends_with("/storage-failed"));
    let mut handler_failed: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for (amount, _) in outcomes.iter().filter(|(_, outcome)| is_storage_failed(outcome)) {
        *handler_failed.entry(*amount).or_default() += 1;
    }
    let retry_started = Instant::now();
    let mut pending = failed.clone();
    while !pending.is_empty() {
        assert!(retry_started.elapsed() < Duration::from_secs(30), "still failing after 30 s: {} keys", pending.len());
        let results = futures_util::future::join_all(
            pending.iter().map(|amount| pay(&client, base, user, format!("outage-{amount}"), *amount, 0)),
        )
        .await;
        for (amount, _) in pending.iter().zip(&results).filter(|(_, outcome)| is_storage_failed(outcome)) {
            *handler_failed.entry(*amount).or_default() += 1;
        }
        pending = pending
            .into_iter()
            .zip(results)
            .filter(|(_, outcome)| outcome.status != Some(StatusCode::CREATED))
            .map(|(amount, _)| amount)
            .collect();
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let executions = executions_by_amount(pool, user).await;
    let twice: Vec<i64> = executions.iter().filter(|(_, count)| **count > 1).map(|(amount, _)| *amount).collect();
    // A key's extra payments beyond its `storage-failed` answers are the library's.
    let by_the_library: Vec<i64> = executions
        .iter()
        .filter(|(amount, count)| **count - 1 > handler_failed.get(*amount).copied().unwrap_or(0))
        .map(|(amount, _)| *amount)
        .collect();
    let excused: i64 = executions
        .iter()
        .map(|(amount, count)| (*count - 1).min(handler_failed.get(amount).copied().unwrap_or(0)))
        .sum();
    support::report_figure(&format!(
        "{} under load (8 clients): {} requests, {} during the {:.1?} outage (all 503 + Retry-After), first success \
         {first_success_after:?} after it was back; {} failed requests retried, all completed in {:?}; \
         {} payments for {} keys; keys paid more than once: {}, by the library {}; {excused} extra payments after \
         the handler's own INSERT lost its answer (503 storage-failed, {} such answers); responses {}",
        outage.what,
        outcomes.len(),
        during.len(),
        resuming - down,
        failed.len(),
        retry_started.elapsed(),
        executions.values().sum::<i64>(),
        outcomes.len(),
        twice.len(),
        by_the_library.len(),
        handler_failed.values().sum::<i64>(),
        tally(&outcomes.iter().map(|(_, outcome)| outcome.clone()).collect::<Vec<_>>()),
    ));
    assert_eq!(executions.len(), outcomes.len(), "every key paid");
    assert!(
        by_the_library.is_empty(),
        "no extra execution by the library (a key's extra payments are bounded by its storage-failed answers): \
         payments {:?}, storage-failed answers {handler_failed:?}",
        executions.iter().filter(|(amount, _)| by_the_library.contains(amount)).collect::<Vec<_>>()
    );
}
