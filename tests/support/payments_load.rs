//! Load on the payments example as the reliability suites send it: concurrent requests with keys, what each
//! answered, and the payments each amount left in PostgreSQL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use serde_json::json;

/// The outcome of one request as the client saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Option<StatusCode>,
    pub replayed: bool,
    /// The `type` of a problem answer.
    pub problem: Option<String>,
    pub retry_after: Option<u64>,
    pub sent: Instant,
    pub answered: Instant,
}

pub fn client(connections: usize) -> awc::Client {
    awc::Client::builder().connector(awc::Connector::new().limit(connections)).timeout(Duration::from_secs(60)).finish()
}

/// `POST /payments` as `user` with `key`, paying `amount` after `delay_ms`. A transport error (the process was
/// killed) is an outcome without status.
pub async fn pay(
    client: &awc::Client,
    base: &str,
    user: &str,
    key: impl AsRef<str>,
    amount: i64,
    delay_ms: u64,
) -> Outcome {
    let key = key.as_ref();
    let sent = Instant::now();
    let response = client
        .post(format!("{base}/payments"))
        .insert_header(("Authorization", format!("Bearer {user}")))
        .insert_header(("Idempotency-Key", key))
        .send_json(&json!({"amount": amount, "currency": "EUR", "delay_ms": delay_ms}))
        .await;
    let answered = Instant::now();
    match response {
        Ok(mut response) => {
            let body = response.body().await.unwrap_or_default();
            let problem = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|body| body.get("type")?.as_str().map(str::to_owned));
            let header =
                |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
            Outcome {
                status: Some(response.status()),
                replayed: header("idempotent-replayed").as_deref() == Some("true"),
                problem,
                retry_after: header("retry-after").and_then(|value| value.parse().ok()),
                sent,
                answered,
            }
        }
        Err(_) => Outcome { status: None, replayed: false, problem: None, retry_after: None, sent, answered },
    }
}

/// Payment rows per amount for a user: every value must be 1.
pub async fn executions_by_amount(pool: &deadpool_postgres::Pool, user: &str) -> HashMap<i64, i64> {
    let client = pool.get().await.expect("connect");
    client
        .query("SELECT amount, count(*) FROM payments WHERE user_id = $1 GROUP BY amount", &[&user])
        .await
        .expect("count payments")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

pub fn tally<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> String {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for outcome in outcomes {
        let label = match outcome.status {
            Some(status) if outcome.replayed => format!("{} replayed", status.as_u16()),
            Some(status) => status.as_u16().to_string(),
            None => "no answer".to_owned(),
        };
        *counts.entry(label).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    counts.iter().map(|(label, count)| format!("{label}: {count}")).collect::<Vec<_>>().join(", ")
}

impl Outcome {
    /// The request was answered 201 (executed or replayed).
    pub fn created(&self) -> bool {
        self.status == Some(StatusCode::CREATED)
    }
}
