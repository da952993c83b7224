//! The client middleware against the real `payments` example (both stores) behind a fault-injecting proxy that
//! resets the connection after the server did the work and, once per key, cuts a response halfway through its
//! body: N calls still make exactly N payments, each call's payment is the stored one, every retry reuses its
//! key, and a 422 `key-reused` is not retried. Also `examples/pay_client.rs`, driven as other tools drive it.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use idempotent_runtime::client::{ClientError, IdempotencyMiddleware, IdempotentCall, RetryPolicy};
use serde_json::{Value, json};
use support::example_process::{ExampleProcess, example_binary, free_port};
use support::fault_proxy::FaultProxy;
use support::postgres::TestSchema;
use support::report_figure;

/// Payments per store: enough that every call meets both faults many times over, few enough for CI.
const CALLS: usize = 20;

fn client(policy: RetryPolicy) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(IdempotencyMiddleware::new().with_policy(policy))
        .build()
}

/// Short real waits: the proxy's faults carry no `Retry-After`, and the backoff is not what is under test here.
fn quick() -> RetryPolicy {
    RetryPolicy::default().initial_backoff(Duration::from_millis(10)).max_backoff(Duration::from_millis(50))
}

/// The payments of `user` as the example stores them, asked directly (not through the proxy).
async fn stored_payments(example: &ExampleProcess, user: &str) -> Vec<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/payments", example.base))
        .bearer_auth(user)
        .send()
        .await
        .expect("list payments");
    assert_eq!(response.status(), 200);
    response.json::<Vec<Value>>().await.expect("a JSON list")
}

async fn calls_survive_lost_and_cut_answers(example: &ExampleProcess, store: &str) {
    let proxy = FaultProxy::start(&format!("127.0.0.1:{}", example.port)).await;
    let client = client(quick());
    let user = "proxy-client";
    let mut returned = HashMap::new();
    let mut retries = 0;
    for call in 0..CALLS {
        let amount = 1 + (call as i64 * 37) % 1000;
        let response = client
            .post(format!("{}/payments", proxy.base))
            .bearer_auth(user)
            .json(&json!({"amount": amount, "currency": "EUR"}))
            .send()
            .await
            .unwrap_or_else(|error| panic!("call {call} failed: {error}"));
        assert_eq!(response.status(), 201);
        let record = IdempotentCall::of(&response).expect("the call's record").clone();
        assert_eq!(record.attempts(), 3, "reset, cut, then whole: two retries");
        retries += record.retries();
        let payment: Value = response.json().await.expect("the payment");
        assert_eq!(payment["amount"], amount);
        assert!(returned.insert(record.key().to_owned(), payment).is_none(), "a fresh key per call");
    }

    let stats = proxy.stats();
    assert_eq!(stats.attempts.len(), CALLS, "one key per call");
    assert!(stats.attempts.values().all(|attempts| *attempts == 3), "each key sent 3 times: {:?}", stats.attempts);
    assert!(returned.keys().all(|key| stats.attempts.contains_key(key)), "the keys the caller saw are the keys sent");
    let stored = stored_payments(example, user).await;
    assert_eq!(stored.len(), CALLS, "exactly one payment per call, after {} lost answers", stats.dropped + stats.cut);
    let stored_ids: HashSet<String> = stored.iter().map(|payment| payment.to_string()).collect();
    for payment in returned.values() {
        assert!(stored_ids.contains(&payment.to_string()), "the call's payment {payment} is the stored one");
    }

    // A key reused for another payment is refused with 422 and not retried: one request for that call.
    let (reused_key, _) = returned.iter().next().expect("a call");
    let error = client
        .post(format!("{}/payments", proxy.base))
        .bearer_auth(user)
        .header("Idempotency-Key", reused_key)
        .json(&json!({"amount": 1001, "currency": "EUR"}))
        .send()
        .await
        .expect_err("key reused");
    let failed = ClientError::of(&error).expect("a typed error");
    assert!(failed.is_key_reused(), "{failed}");
    assert_eq!((failed.key(), failed.attempts()), (reused_key.as_str(), 1));
    assert_eq!(proxy.stats().attempts[reused_key], 4, "three for the call, one for the refused reuse");
    assert_eq!(stored_payments(example, user).await.len(), CALLS);

    report_figure(&format!(
        "client through the fault proxy ({store}): calls={CALLS} dropped_responses={} cut_responses={} retries={retries} \
         payments_created={}",
        stats.dropped,
        stats.cut,
        stored.len()
    ));
}

#[actix_web::test]
async fn client_through_the_fault_proxy_in_memory() {
    let example = ExampleProcess::start("payments", None);
    calls_survive_lost_and_cut_answers(&example, "memory").await;
}

#[actix_web::test]
async fn client_through_the_fault_proxy_on_postgres() {
    let schema = TestSchema::create().await;
    let example = ExampleProcess::start("payments", Some(&schema.database_url()));
    assert!(example.banner.contains("PostgreSQL"), "{:?}", example.banner);
    calls_survive_lost_and_cut_answers(&example, "postgres").await;
    let client = schema.pool(1).get().await.expect("connect");
    let payments: i64 = client.query_one("SELECT count(*) FROM payments", &[]).await.expect("count").get(0);
    assert_eq!(payments, CALLS as i64, "in PostgreSQL too");
    drop(example);
    schema.drop_schema().await;
}

/// `cargo run --example pay_client -- --url URL --count N [--user U]`, through the proxy: its final line counts
/// what happened, and the payments example holds exactly N new payments of that user.
#[actix_web::test]
async fn pay_client_creates_exactly_count_payments_through_the_proxy() {
    let example = ExampleProcess::start("payments", None);
    let proxy = FaultProxy::start(&format!("127.0.0.1:{}", example.port)).await;
    let binary = example_binary("pay_client");
    let url = proxy.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(binary)
            .args(["--url", &url, "--count", "4", "--user", "tool"])
            .output()
            .expect("run pay_client")
    })
    .await
    .expect("pay_client finished");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.lines().last(), Some("pay_client: created=4 keys=4 retries=8 failed=0"), "{stdout}");
    let stored = stored_payments(&example, "tool").await;
    assert_eq!(stored.len(), 4);
    assert!(stored.iter().all(|payment| (1..=1000).contains(&payment["amount"].as_i64().unwrap())));
    assert!(stored.iter().all(|payment| payment["currency"] == "EUR"));

    // Without --user, the payments are client-demo's.
    let (binary, url) = (example_binary("pay_client"), proxy.base.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(binary).args(["--url", &url, "--count", "1"]).output().expect("run pay_client")
    })
    .await
    .expect("pay_client finished");
    assert!(output.status.success());
    assert_eq!(stored_payments(&example, "client-demo").await.len(), 1);

    // A server that is not there: non-zero exit, every payment counted as failed.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let binary = example_binary("pay_client");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(binary).args(["--url", &closed, "--count", "2"]).output().expect("run pay_client")
    })
    .await
    .expect("pay_client finished");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().last().is_some_and(|line| line.starts_with("pay_client: created=0 keys=2 ")), "{stdout}");
    assert!(stdout.trim_end().ends_with("failed=2"), "{stdout}");
}
