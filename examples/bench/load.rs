//! The load generator: closed-loop streams of requests over keep-alive connections, one `awc` client per
//! measurement, latencies in an HDR histogram; and an open loop at a fixed rate ([`drive_open`]).
//!
//! The client runs on the main thread's single-threaded runtime; each of the `concurrency` tasks sends a request,
//! reads the whole response, checks it, and sends the next one. A request's latency is from just before it is
//! sent to just after its response body is read.
//!
//! An answer counts as a success only if it is what the plan expects; with [`Plan::stored_in`], a fresh key's 200
//! counts only if its record is then completed in the run's table (issue 29: a layer that stopped storing
//! responses would otherwise look faster).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::http::Uri;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use deadpool_postgres::Pool;
use hdrhistogram::Histogram;

use crate::cpu::{CpuSample, CpuUse};

/// Where a scenario's idempotency keys come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keys {
    /// A key never used before on every request (a random prefix per measurement).
    Fresh,
    /// `count` keys completed beforehand (see [`Plan::setup`]), in turn.
    Cycle { prefix: u32, count: u64 },
}

/// How to drive one scenario.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    path: &'static str,
    keys: Keys,
    header: Option<(&'static str, &'static str)>,
    replayed: bool,
    /// The table (in the run's schema) where every fresh key answered 200 must then be a completed record.
    table: Option<&'static str>,
}

/// The requests that complete a replay scenario's keys: the same route, the same bodies, before measuring.
pub(crate) struct Setup {
    path: &'static str,
    prefix: u32,
    count: u64,
}

impl Plan {
    pub(crate) fn new(path: &'static str, keys: Keys) -> Self {
        Self { path, keys, header: None, replayed: false, table: None }
    }

    /// After the measurement, every measured success must have its completed record in `table` (fresh keys
    /// only): a success without one is counted as an error instead (see [`Stats::unstored`]).
    pub(crate) fn stored_in(mut self, table: &'static str) -> Self {
        self.table = Some(table);
        self
    }

    pub(crate) fn path(&self) -> &'static str {
        self.path
    }

    /// The fresh keys whose records are checked, if any.
    fn checked_table(&self) -> Option<&'static str> {
        self.table.filter(|_| matches!(self.keys, Keys::Fresh))
    }

    /// Sends this header too (it selects the floor's replay handler).
    pub(crate) fn header(mut self, header: (&'static str, &'static str)) -> Self {
        self.header = Some(header);
        self
    }

    /// Every answer must be a replay (`Idempotent-Replayed: true`); otherwise none may be.
    pub(crate) fn replayed(mut self) -> Self {
        self.replayed = true;
        self
    }

    pub(crate) fn setup(&self) -> Option<Setup> {
        match self.keys {
            Keys::Fresh => None,
            Keys::Cycle { prefix, count } => Some(Setup { path: self.path, prefix, count }),
        }
    }

    /// The key and body of the `n`th request; `fresh` is the measurement's prefix for fresh keys.
    fn request(&self, fresh: u32, n: u64) -> (String, Bytes) {
        match self.keys {
            Keys::Fresh => (key_for(fresh, n), body_for(n)),
            Keys::Cycle { prefix, count } => (key_for(prefix, n % count), body_for(n % count)),
        }
    }
}

/// A UUID-shaped key (36 characters), unique per prefix and number.
fn key_for(prefix: u32, n: u64) -> String {
    format!("{prefix:08x}-b3c4-4d5e-8f60-{n:012x}")
}

/// The small JSON request body (about 100 bytes) of the `n`th request.
pub(crate) fn body_for(n: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"amount":{n},"currency":"EUR","reference":"bench-{n:012}","note":"a small order of the bench"}}"#
    ))
}

/// One scenario's measurement.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    /// Latencies in nanoseconds.
    pub(crate) histogram: Histogram<u64>,
    /// CPU time spent during the measured part.
    pub(crate) cpu: CpuUse,
    /// Of the answers counted as successes, how many had no completed record afterwards (moved from `requests`
    /// to `errors`); `None` when the scenario's records are not checked (replays, memory store, Redis, `bare`).
    pub(crate) unstored: Option<u64>,
}

impl Stats {
    fn new() -> Self {
        Self {
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            histogram: Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid histogram bounds"),
            cpu: CpuUse::default(),
            unstored: None,
        }
    }

    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    pub(crate) fn quantile_us(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Adds another run of the same scenario (another round).
    pub(crate) fn merge(&mut self, other: Self) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.histogram.add(&other.histogram).expect("histograms of equal bounds");
        self.cpu.add(other.cpu);
        self.unstored = match (self.unstored, other.unstored) {
            (None, None) => None,
            (mine, theirs) => Some(mine.unwrap_or(0) + theirs.unwrap_or(0)),
        };
    }

    /// CPU microseconds per successful request of one party.
    pub(crate) fn cpu_us_per_request(&self, seconds: f64) -> f64 {
        seconds * 1e6 / self.requests.max(1) as f64
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "{:>7.0} req/s  p50 {:>7.1} us  p99 {:>7.1} us  CPU us/req: server {:>5.1} postgres {:>5.1} client {:>5.1}{}; \
             other load {:.2} cores ({} requests, {} errors{})",
            self.rps(),
            self.quantile_us(0.5),
            self.quantile_us(0.99),
            self.cpu_us_per_request(self.cpu.server),
            self.cpu_us_per_request(self.cpu.postgres),
            self.cpu_us_per_request(self.cpu.client),
            // A party only once the Redis scenarios found a local Redis server (`cpu::count_redis_server`).
            if self.cpu.redis > 0.0 {
                format!(" redis {:>5.1}", self.cpu_us_per_request(self.cpu.redis))
            } else {
                String::new()
            },
            self.cpu.other / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            self.requests,
            self.errors,
            match self.unstored {
                Some(0) => ", every success stored".to_owned(),
                Some(missing) => format!(", of which {missing} answered 200 but NOT stored"),
                None => String::new(),
            }
        )
    }
}

fn client(connections: usize) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(connections).conn_keep_alive(Duration::from_secs(600)))
        .timeout(Duration::from_secs(60))
        .disable_redirects()
        .finish()
}

/// What a response said.
struct Answer {
    status: u16,
    replayed: bool,
    body: Bytes,
}

async fn send(
    client: &awc::Client,
    uri: &Uri,
    key: String,
    header: Option<(&'static str, &'static str)>,
    body: Bytes,
) -> Result<Answer, String> {
    let mut request = client
        .post(uri.clone())
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header(("idempotency-key", key));
    if let Some(header) = header {
        request = request.insert_header(header);
    }
    let mut response = request.send_body(body).await.map_err(|error| error.to_string())?;
    let body = response.body().limit(8 << 20).await.map_err(|error| error.to_string())?;
    Ok(Answer {
        status: response.status().as_u16(),
        replayed: response.headers().get("idempotent-replayed").is_some_and(|value| value == "true"),
        body,
    })
}

fn describe(answer: &Answer) -> String {
    format!("HTTP {} {}", answer.status, String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)]))
}

/// Drives one scenario: `warm_up` unmeasured, then `measure` measured. Only requests sent after the warm-up are
/// counted; the measurement ends when the last request sent before the deadline is answered. `admin` finds this
/// run's PostgreSQL backends for the CPU accounting.
pub(crate) async fn drive(
    base: &str,
    plan: &Plan,
    concurrency: usize,
    warm_up: Duration,
    measure: Duration,
    admin: &Pool,
) -> Result<Stats, String> {
    drive_until(base, plan, concurrency, warm_up, measure, u64::MAX, admin).await
}

/// Drives one scenario for exactly `count` requests, all measured (no warm-up): e.g. `count` fresh keys, to see
/// the worst request while a store grows by that many records.
pub(crate) async fn drive_count(
    base: &str,
    plan: &Plan,
    concurrency: usize,
    count: u64,
    admin: &Pool,
) -> Result<Stats, String> {
    const NO_DEADLINE: Duration = Duration::from_secs(24 * 3600);
    drive_until(base, plan, concurrency, Duration::ZERO, NO_DEADLINE, count, admin).await
}

async fn drive_until(
    base: &str,
    plan: &Plan,
    concurrency: usize,
    warm_up: Duration,
    measure: Duration,
    count: u64,
    admin: &Pool,
) -> Result<Stats, String> {
    let client = client(concurrency);
    let uri: Uri = format!("{base}{}", plan.path).parse().map_err(|error| format!("bad URL: {error}"))?;
    let counter = Rc::new(Cell::new(0u64));
    let fresh = fastrand::u32(..);
    let measure_start = Instant::now() + warm_up;
    let end = measure_start + measure;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, uri, counter, plan) = (client.clone(), uri.clone(), Rc::clone(&counter), plan.clone());
        tasks.push(actix_web::rt::spawn(async move {
            let mut stats = Stats::new();
            let mut first_error = None;
            // The numbers of the measured successes' fresh keys, when their records are checked.
            let mut succeeded = Vec::new();
            while Instant::now() < end {
                let n = counter.get();
                if n >= count {
                    break;
                }
                counter.set(n + 1);
                let (key, body) = plan.request(fresh, n);
                let started = Instant::now();
                let answer = send(&client, &uri, key, plan.header, body).await;
                let latency = started.elapsed();
                if started < measure_start {
                    continue;
                }
                match answer {
                    Ok(answer) if answer.status == 200 && answer.replayed == plan.replayed => {
                        stats.requests += 1;
                        stats.histogram.saturating_record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                        if plan.checked_table().is_some() {
                            succeeded.push(n);
                        }
                    }
                    Ok(answer) => {
                        stats.errors += 1;
                        first_error.get_or_insert_with(|| {
                            format!("unexpected answer (replayed: {}): {}", answer.replayed, describe(&answer))
                        });
                    }
                    Err(error) => {
                        stats.errors += 1;
                        first_error.get_or_insert(error);
                    }
                }
            }
            (stats, first_error, succeeded)
        }));
    }
    actix_web::rt::time::sleep_until(measure_start.into()).await;
    let cpu_before = CpuSample::now(admin).await;
    let mut total = Stats::new();
    let mut first_error = None;
    let mut succeeded = Vec::new();
    for task in tasks {
        let (stats, error, numbers) = task.await.map_err(|error| format!("a client task failed: {error}"))?;
        total.merge(stats);
        first_error = first_error.or(error);
        succeeded.extend(numbers);
    }
    total.elapsed = measure_start.elapsed();
    total.cpu = cpu_before.until(&CpuSample::now(admin).await);
    finish(total, first_error, plan, fresh, &succeeded, admin).await
}

/// Drives one scenario in an open loop: request `n` is due at `n / rate` seconds after the start and is sent then
/// (or as soon as the client thread gets to it), whatever became of the earlier ones, and its latency counts from
/// when it was due. A slow answer thus delays no later request and hides no waiting time (no coordinated
/// omission). At most `connections` requests are on the wire at once; the others wait for a connection, and that
/// wait is part of their latency. Requests due in the warm-up are sent but not counted; the measurement ends when
/// every request due before its end is answered.
pub(crate) async fn drive_open(
    base: &str,
    plan: &Plan,
    rate: f64,
    connections: usize,
    warm_up: Duration,
    measure: Duration,
    admin: &Pool,
) -> Result<Stats, String> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("an open loop needs a positive rate, not {rate}"));
    }
    let client = client(connections);
    let uri: Uri = format!("{base}{}", plan.path).parse().map_err(|error| format!("bad URL: {error}"))?;
    let fresh = fastrand::u32(..);
    let start = Instant::now();
    let measure_start = start + warm_up;
    let end = measure_start + measure;
    // The CPU counters are read by a task of their own, so that no request waits for them.
    let cpu_before = {
        let admin = admin.clone();
        actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep_until(measure_start.into()).await;
            CpuSample::now(&admin).await
        })
    };
    type Shared = (Stats, Option<String>, Vec<u64>);
    let shared: Rc<RefCell<Shared>> = Rc::new(RefCell::new((Stats::new(), None, Vec::new())));
    let mut tasks = Vec::new();
    for n in 0u64.. {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        if due >= end {
            break;
        }
        if due > Instant::now() {
            actix_web::rt::time::sleep_until(due.into()).await;
        }
        let (client, uri, shared) = (client.clone(), uri.clone(), Rc::clone(&shared));
        let (key, body) = plan.request(fresh, n);
        let (header, replayed, checked) = (plan.header, plan.replayed, plan.checked_table().is_some());
        tasks.push(actix_web::rt::spawn(async move {
            let answer = send(&client, &uri, key, header, body).await;
            let latency = due.elapsed();
            if due < measure_start {
                return;
            }
            let (stats, first_error, succeeded) = &mut *shared.borrow_mut();
            match answer {
                Ok(answer) if answer.status == 200 && answer.replayed == replayed => {
                    stats.requests += 1;
                    stats.histogram.saturating_record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                    if checked {
                        succeeded.push(n);
                    }
                }
                Ok(answer) => {
                    stats.errors += 1;
                    first_error.get_or_insert_with(|| {
                        format!("unexpected answer (replayed: {}): {}", answer.replayed, describe(&answer))
                    });
                }
                Err(error) => {
                    stats.errors += 1;
                    first_error.get_or_insert(error);
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|error| format!("a client task failed: {error}"))?;
    }
    let cpu_before = cpu_before.await.map_err(|error| format!("a client task failed: {error}"))?;
    let (mut total, first_error, succeeded) = shared.replace((Stats::new(), None, Vec::new()));
    total.elapsed = measure_start.elapsed();
    total.cpu = cpu_before.until(&CpuSample::now(admin).await);
    finish(total, first_error, plan, fresh, &succeeded, admin).await
}

/// Checks a measurement's stored records (when its plan asks for it), reports its failures, and refuses it when
/// more than 1% of its requests failed.
async fn finish(
    mut total: Stats,
    mut first_error: Option<String>,
    plan: &Plan,
    fresh: u32,
    succeeded: &[u64],
    admin: &Pool,
) -> Result<Stats, String> {
    if let Some(table) = plan.checked_table() {
        let stored = count_stored(admin, table, fresh, succeeded).await?;
        let missing = (succeeded.len() as u64).saturating_sub(stored);
        total.requests -= missing.min(total.requests);
        total.errors += missing;
        total.unstored = Some(missing);
        if missing > 0 {
            first_error.get_or_insert_with(|| {
                format!("{missing} answers were 200 but their records are not completed in {table}")
            });
        }
    }
    if let Some(error) = &first_error {
        eprintln!("warning: {} of {} requests failed; first: {error}", total.errors, total.errors + total.requests);
    }
    if total.requests == 0 || total.errors * 100 > total.requests {
        return Err(format!(
            "too many failed requests ({} failed, {} succeeded): {}",
            total.errors,
            total.requests,
            first_error.unwrap_or_default()
        ));
    }
    Ok(total)
}

/// How many of the fresh keys numbered `numbers` (prefix `fresh`) have a completed record in `table`, by primary
/// key (the key digest leads it), in batches.
async fn count_stored(admin: &Pool, table: &str, fresh: u32, numbers: &[u64]) -> Result<u64, String> {
    let client = admin.get().await.map_err(|error| format!("checking stored records: {error}"))?;
    let sql = format!("SELECT count(*) FROM {table} WHERE key_hash = ANY($1) AND state = 'completed'");
    let mut stored = 0;
    for batch in numbers.chunks(10_000) {
        let digests: Vec<Vec<u8>> =
            batch.iter().map(|&n| idempotent_runtime::key_digest(key_for(fresh, n)).to_vec()).collect();
        let row = client
            .query_one(&sql, &[&digests])
            .await
            .map_err(|error| format!("checking stored records in {table}: {error}"))?;
        stored += u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    }
    Ok(stored)
}

/// Completes a replay scenario's keys through its route, `concurrency` at a time.
pub(crate) async fn precreate(base: &str, setup: &Setup, concurrency: usize) -> Result<(), String> {
    let client = client(concurrency);
    let uri: Uri = format!("{base}{}", setup.path).parse().map_err(|error| format!("bad URL: {error}"))?;
    let counter = Rc::new(Cell::new(0u64));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, uri, counter) = (client.clone(), uri.clone(), Rc::clone(&counter));
        let (prefix, count) = (setup.prefix, setup.count);
        tasks.push(actix_web::rt::spawn(async move {
            loop {
                let n = counter.get();
                if n >= count {
                    return Ok(());
                }
                counter.set(n + 1);
                let answer = send(&client, &uri, key_for(prefix, n), None, body_for(n)).await?;
                if answer.status != 200 || answer.replayed {
                    return Err(format!("creating replay keys: {}", describe(&answer)));
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|error| format!("a client task failed: {error}"))??;
    }
    Ok(())
}

/// Peak RSS of this process while `bodies` requests of `body_bytes` each are in flight at once.
#[derive(Debug, Clone)]
pub(crate) struct Memory {
    pub(crate) bodies: usize,
    pub(crate) body_bytes: usize,
    pub(crate) bursts: usize,
    /// VmRSS before the first burst.
    pub(crate) rss_before_kib: u64,
    /// VmHWM after the bursts to the `#[idempotent(max_request_body = "2MiB")]` route.
    pub(crate) idempotent_peak_kib: u64,
    /// VmHWM after the same bursts to the route without idempotency (measured second, after a reset of VmHWM).
    pub(crate) bare_peak_kib: u64,
    /// Whether VmHWM could be reset (`/proc/self/clear_refs`) before each part; without it both peaks include
    /// everything before.
    pub(crate) reset: bool,
}

/// Sends `bursts` times `bodies` concurrent 1 MiB JSON bodies to the idempotent route and then to the bare one,
/// reading the process's peak RSS (VmHWM) after each part.
pub(crate) async fn measure_memory(base: &str) -> Result<Memory, String> {
    const BODIES: usize = 64;
    const BODY_BYTES: usize = 1 << 20;
    const BURSTS: usize = 3;
    let head = r#"{"amount":1,"currency":"EUR","reference":"bench-big","note":""#;
    let mut body = String::with_capacity(BODY_BYTES);
    body.push_str(head);
    body.extend(std::iter::repeat_n('x', BODY_BYTES - head.len() - 2));
    body.push_str("\"}");
    let body = Bytes::from(body);
    debug_assert_eq!(body.len(), BODY_BYTES);

    let client = client(BODIES);
    let prefix = fastrand::u32(..);
    let rss_before_kib = proc_status_kib("VmRSS").unwrap_or(0);
    let mut reset = true;
    let mut peaks = [0u64; 2];
    for (peak, path) in peaks.iter_mut().zip([crate::app::LIB_BIG_PATH, crate::app::BARE_PATH]) {
        reset &= std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let uri: Uri = format!("{base}{path}").parse().map_err(|error| format!("bad URL: {error}"))?;
        for burst in 0..BURSTS {
            let requests = (0..BODIES).map(|i| {
                let key = key_for(
                    prefix,
                    (burst * BODIES + i) as u64 + if path == crate::app::BARE_PATH { 1 << 32 } else { 0 },
                );
                send(&client, &uri, key, None, body.clone())
            });
            for answer in futures_util::future::join_all(requests).await {
                let answer = answer?;
                if answer.status != 200 {
                    return Err(format!("memory measurement on {path}: {}", describe(&answer)));
                }
            }
        }
        *peak = proc_status_kib("VmHWM").unwrap_or(0);
    }
    Ok(Memory {
        bodies: BODIES,
        body_bytes: BODY_BYTES,
        bursts: BURSTS,
        rss_before_kib,
        idempotent_peak_kib: peaks[0],
        bare_peak_kib: peaks[1],
        reset,
    })
}

/// A `kB` field of `/proc/self/status`.
pub(crate) fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field) && line[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}
