//! `--scale`: does a claim get slower as the table grows, and what does purging expired records cost?
//!
//! 1. COPY 10^4 records into `idempotency_records`, `VACUUM (ANALYZE)`, `CHECKPOINT`, measure `new` (fresh keys);
//! 2. COPY more records up to `--scale-rows` (10^7 by default), the same settling, measure `new` again;
//! 3. run a purge in a loop while `new` is measured once more: expired rows deleted per second, and the claims'
//!    latency meanwhile. Two purges, one after the other: the runtime's own (`Store::purge_batch`, a sweep of the
//!    heap in page ranges, `DELETE ... WHERE ctid >= '(p,0)' AND ctid < '(p+k,0)' AND <expired>`), then a batched
//!    `DELETE ... WHERE ctid = ANY (...)` of expired rows (the statement issue 7 proposed before the runtime had a
//!    purge), for comparison.
//!
//! The pre-loaded records look like the table of a busy service with a 24 h ttl: completed responses of the
//! bench route (same scope, method and route, random key digests) created evenly over the last 48 hours in heap
//! order, so the older half (the first half of the heap) has expired and awaits the purge.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::Pool;
use hdrhistogram::Histogram;
use serde_json::json;

use idempotent_runtime::purge::{DEFAULT_PURGE_BATCH, DEFAULT_PURGE_REST};
use idempotent_runtime::{PostgresStore, Store as _};

use crate::app::{self, Server};
use crate::load::{self, Keys, Plan, Stats};
use crate::machine::Machine;
use crate::measures::Measured;
use crate::report;
use crate::{Options, RunSchema};

#[path = "scale_load.rs"]
mod scale_load;
use self::scale_load::*;

const SMALL_ROWS: u64 = 10_000;
/// The p50 ratio the issue sets as the target for 10^7 records over 10^4.
const TARGET_P50_RATIO: f64 = 1.2;
/// Issue 15's targets for the purge: expired rows deleted per second, and the claims' p99 while it runs over
/// their p99 without it.
const TARGET_PURGE_RATE: f64 = 100_000.0;
const TARGET_PURGE_P99_RISE: f64 = 1.2;

/// The comparison purge, one batch: expired completed records, at most 5000, skipping rows other sessions hold.
const CTID_PURGE_SQL: &str = "
DELETE FROM idempotency_records
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM idempotency_records
    WHERE expires_at < now() AND state = 'completed'
    LIMIT 5000
    FOR UPDATE SKIP LOCKED))";

/// A purge under test.
enum Purger {
    /// The runtime's: `Store::purge_batch` on a `PostgresStore` (which keeps the sweep's cursor, a heap page,
    /// between batches), about `DEFAULT_PURGE_BATCH` records examined per batch, as `purge_expired` /
    /// `spawn_purger` run it.
    Runtime(PostgresStore),
    /// [`CTID_PURGE_SQL`] on a connection of its own.
    Ctid(Pool),
}

impl Purger {
    fn name(&self) -> &'static str {
        match self {
            Self::Runtime(_) => "runtime",
            Self::Ctid(_) => "ctid_statement",
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Runtime(_) => {
                format!("Store::purge_batch({DEFAULT_PURGE_BATCH}) in a loop (idempotent_runtime::purge)")
            }
            Self::Ctid(_) => CTID_PURGE_SQL.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }

    /// Purges one batch: how many records it deleted, and whether the sweep is over (the runtime's pass reached the
    /// table's end; the statement found nothing left). The one place that knows how each purge is run.
    async fn batch(&self) -> Result<(u64, bool), String> {
        match self {
            Self::Runtime(store) => {
                let done = store.purge_batch(DEFAULT_PURGE_BATCH).await.map_err(|error| error.to_string())?;
                Ok((done.deleted as u64, done.pass_complete))
            }
            Self::Ctid(pool) => {
                let client = pool.get().await.map_err(|error| error.to_string())?;
                let statement = client.prepare_cached(CTID_PURGE_SQL).await.map_err(|error| error.to_string())?;
                let deleted = client.execute(&statement, &[]).await.map_err(|error| error.to_string())?;
                Ok((deleted, deleted == 0))
            }
        }
    }
}

pub(crate) async fn run(
    options: &Options,
    schema: &RunSchema,
    server: &Server,
    machine: &Machine,
) -> Result<Vec<String>, String> {
    // The small table lives in a schema of its own with a server of its own, so that the two sizes can be measured
    // alternately: on a shared machine, two measurements minutes apart differ by more than the table size does.
    let small_schema = RunSchema::create(&schema.url, "_small").await?;
    let result = async {
        small_schema.prepare().await?;
        let small_server = app::start(small_schema.pool(options.concurrency)?, options.workers)
            .map_err(|error| format!("cannot start the second server: {error}"))?;
        let result = measure(options, schema, server, &small_schema, &small_server, machine).await;
        small_server.stop().await;
        result
    }
    .await;
    small_schema.drop_schema().await;
    result
}

async fn measure(
    options: &Options,
    schema: &RunSchema,
    server: &Server,
    small_schema: &RunSchema,
    small_server: &Server,
    machine: &Machine,
) -> Result<Vec<String>, String> {
    let large_rows = options.scale_rows;
    let window = Duration::from_secs(48 * 3600);
    let now = SystemTime::now();

    println!("\nloading {SMALL_ROWS} records into {}", small_schema.name);
    let small_load = copy_records(&small_schema.admin, 0, SMALL_ROWS, SMALL_ROWS, now, window).await?;
    settle(&small_schema.admin).await?;
    println!("loading {large_rows} records into {}", schema.name);
    let large_load = copy_records(&schema.admin, 0, large_rows, large_rows, now, window).await?;
    let settle_started = Instant::now();
    settle(&schema.admin).await?;
    let settle_seconds = settle_started.elapsed().as_secs_f64();
    let size = table_size(&schema.admin).await?;

    let rounds = options.rounds.max(3);
    println!("\nclaims (`new`), {rounds} rounds alternating between the two tables");
    let (mut small, mut large): (Option<Stats>, Option<Stats>) = (None, None);
    for _ in 0..rounds {
        for (total, label, schema, server) in [
            (&mut small, format!("{SMALL_ROWS} records"), small_schema, small_server),
            (&mut large, format!("{large_rows} records"), schema, server),
        ] {
            let stats = claims(options, schema, server, &label).await?;
            match total {
                Some(total) => total.merge(stats),
                None => *total = Some(stats),
            }
        }
    }
    let (Some(small), Some(large)) = (small, large) else { return Err("no rounds".to_owned()) };

    // The runtime's purge as `spawn_purger` runs it (paced), in rounds alternating with claims alone, so that the
    // p99 it is compared with is measured under the same load of the rest of the machine; then the statement of
    // issue 7, flat out, once, for comparison.
    let mut purges = Vec::new();
    let runtime = Purger::Runtime(PostgresStore::new(schema.pool(1)?));
    println!("\npurging expired records ({}) while measuring claims, {rounds} rounds alternating", runtime.describe());
    let mut without: Option<Stats> = None;
    let mut with: Option<Purge> = None;
    for _ in 0..rounds {
        let alone = claims(options, schema, server, "claims without a purge").await?;
        merge(&mut without, alone);
        let purge = purge_during_claims(options, schema, server, &runtime, DEFAULT_PURGE_REST).await?;
        match &mut with {
            Some(total) => total.merge(purge)?,
            None => with = Some(purge),
        }
    }
    let (Some(without), Some(with)) = (without, with) else { return Err("no rounds".to_owned()) };
    let without_m = Measured::from(&without);
    purges.push(with);
    let ctid = Purger::Ctid(schema.pool(1)?);
    println!("\npurging expired records ({}) while measuring claims", ctid.describe());
    purges.push(purge_during_claims(options, schema, server, &ctid, 0.0).await?);

    let (small_m, large_m) = (Measured::from(&small), Measured::from(&large));
    let p50_ratio = large_m.p50_us / small_m.p50_us;
    println!(
        "\n| table | req/s | p50 (us) | p99 (us) | server CPU us/req | PostgreSQL CPU us/req | other load (cores) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut rows = vec![(format!("{SMALL_ROWS} records"), small_m), (format!("{large_rows} records"), large_m)];
    rows.push((format!("{large_rows} records, claims alone (between the purge rounds)"), without_m));
    for purge in &purges {
        rows.push((format!("{large_rows} records, {} purge running", purge.name), Measured::from(&purge.claims)));
    }
    for (label, m) in rows {
        println!(
            "| {label} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            m.rps, m.p50_us, m.p99_us, m.server_cpu_us, m.postgres_cpu_us, m.other_cores
        );
    }
    println!(
        "\nclaim p50 ratio {large_rows} / {SMALL_ROWS} records: {p50_ratio:.3} (target <= {TARGET_P50_RATIO}); \
         req/s ratio {:.3}",
        large_m.rps / small_m.rps
    );
    println!(
        "load: {} rows in {:.1} s ({:.0} rows/s), then VACUUM (ANALYZE) + CHECKPOINT {:.1} s; table + index {:.0} MiB",
        large_load.rows,
        large_load.seconds,
        large_load.rows_per_second(),
        settle_seconds,
        size as f64 / (1 << 20) as f64
    );
    for purge in &purges {
        let during = Measured::from(&purge.claims);
        println!(
            "purge ({}): {} rows in {} batches over {:.1} s = {:.0} rows/s, {:.0} rows/s of its busy time (batch p50 \
             {:.1} ms, max {:.1} ms; first batch {:.1} ms, last {:.1} ms){}",
            purge.name,
            purge.deleted,
            purge.batches,
            purge.seconds,
            purge.deleted as f64 / purge.seconds,
            purge.deleted as f64 / purge.busy_seconds.max(f64::MIN_POSITIVE),
            purge.batch_us.value_at_quantile(0.5) as f64 / 1000.0,
            purge.batch_us.max() as f64 / 1000.0,
            purge.first_batch_ms,
            purge.last_batch_ms,
            if purge.exhausted { "; it ran out of expired rows before the measurement ended" } else { "" }
        );
        println!(
            "  claims meanwhile: p99 {:.1} us vs {:.1} us without ({:.2}x), p50 {:.1} us vs {:.1} us",
            during.p99_us,
            without_m.p99_us,
            during.p99_us / without_m.p99_us,
            during.p50_us,
            without_m.p50_us
        );
    }

    let mut targets = Vec::new();
    if let Some(purge) = purges.iter().find(|purge| purge.name == "runtime") {
        let rate = purge.deleted as f64 / purge.seconds;
        let rise = Measured::from(&purge.claims).p99_us / without_m.p99_us;
        targets.push(format!(
            "purge (runtime, {large_rows} records): {rate:.0} expired rows/s (target >= {TARGET_PURGE_RATE:.0}): {}; \
             claims' p99 {rise:.3}x without it (target < {TARGET_PURGE_P99_RISE}): {}{}",
            report::verdict(rate >= TARGET_PURGE_RATE),
            report::verdict(rise < TARGET_PURGE_P99_RISE),
            if purge.exhausted {
                " (it ran out of expired rows: the rate is a lower bound, and the claims ran partly without it)"
            } else {
                ""
            }
        ));
    }
    if let Some(path) = crate::scale_json_path(options) {
        let value = json!({
            "scale": {
                "small_rows": SMALL_ROWS,
                "large_rows": large_rows,
                "rounds": rounds,
                "new_at_small": small_m.to_json(),
                "new_at_large": large_m.to_json(),
                "p50_ratio": round3(p50_ratio),
                "rps_ratio": round3(large_m.rps / small_m.rps),
                "target_p50_ratio": TARGET_P50_RATIO,
                "small_load_seconds": round3(small_load.seconds),
                "large_load_seconds": round3(large_load.seconds),
                "large_load_rows_per_second": large_load.rows_per_second().round(),
                "settle_seconds": round3(settle_seconds),
                "table_bytes": size,
            },
            "purge": purges.iter().map(|purge| {
                let during = Measured::from(&purge.claims);
                (purge.name.to_owned(), json!({
                    "how": purge.how,
                    "deleted": purge.deleted,
                    "batches": purge.batches,
                    "seconds": round3(purge.seconds),
                    "deleted_per_second": (purge.deleted as f64 / purge.seconds).round(),
                    "batch_p50_ms": purge.batch_us.value_at_quantile(0.5) as f64 / 1000.0,
                    "batch_max_ms": purge.batch_us.max() as f64 / 1000.0,
                    "first_batch_ms": round3(purge.first_batch_ms),
                    "last_batch_ms": round3(purge.last_batch_ms),
                    "exhausted": purge.exhausted,
                    "new_during_purge": during.to_json(),
                    "busy_seconds": round3(purge.busy_seconds),
                    "rest": purge.rest,
                    "deleted_per_busy_second": (purge.deleted as f64 / purge.busy_seconds.max(f64::MIN_POSITIVE)).round(),
                    "new_without_purge": without_m.to_json(),
                    "p99_ratio_during_purge": round3(during.p99_us / without_m.p99_us),
                }))
            }).collect::<serde_json::Map<String, serde_json::Value>>(),
            "config": {
                "seconds": options.seconds,
                "warmup_seconds": options.warmup,
                "concurrency": options.concurrency,
                "workers": options.workers,
            },
            "machine": machine.to_json(),
        });
        report::write_file(&path, &value)?;
        println!("wrote {path}");
    }
    if options.chart.is_some() && !options.all {
        println!("(--chart draws the scenarios of a default run; the scale mode has no chart)");
    }
    Ok(targets)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

async fn claims(options: &Options, schema: &RunSchema, server: &Server, label: &str) -> Result<Stats, String> {
    let plan = Plan::new(app::LIB_PATH, Keys::Fresh);
    let stats =
        load::drive(&server.base, &plan, options.concurrency, options.warm_up(), options.measure(), &schema.admin)
            .await?;
    println!("  {label:<24} {}", stats.summary());
    Ok(stats)
}

struct Purge {
    name: &'static str,
    how: String,
    /// The purge's rest after each batch, in multiples of the batch's duration (0: flat out).
    rest: f64,
    deleted: u64,
    batches: u64,
    seconds: f64,
    /// Time spent in batches (the rest excluded).
    busy_seconds: f64,
    /// Batch durations in microseconds.
    batch_us: Histogram<u64>,
    first_batch_ms: f64,
    last_batch_ms: f64,
    /// The purge ran out of expired records before the claims' measurement ended.
    exhausted: bool,
    claims: Stats,
}

impl Purge {
    /// Adds another round of the same purge.
    fn merge(&mut self, other: Self) -> Result<(), String> {
        self.deleted += other.deleted;
        self.batches += other.batches;
        self.seconds += other.seconds;
        self.busy_seconds += other.busy_seconds;
        self.batch_us.add(&other.batch_us).map_err(|error| error.to_string())?;
        self.last_batch_ms = other.last_batch_ms;
        self.exhausted |= other.exhausted;
        self.claims.merge(other.claims);
        Ok(())
    }
}

fn merge(total: &mut Option<Stats>, stats: Stats) {
    match total {
        Some(total) => total.merge(stats),
        None => *total = Some(stats),
    }
}

/// Runs the purge loop on its own connection while `new` is measured (no warm-up: the purge starts with the
/// measurement and stops with it). After each batch it sleeps `rest` times the batch's duration, as
/// `idempotent_runtime::purge::purge_expired_paced` does.
async fn purge_during_claims(
    options: &Options,
    schema: &RunSchema,
    server: &Server,
    purger: &Purger,
    rest: f64,
) -> Result<Purge, String> {
    let (name, how) = (purger.name(), format!("{} (rest {rest} x each batch)", purger.describe()));
    let stop = Cell::new(false);
    let purging = async {
        let started = Instant::now();
        let mut batch_us = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        let (mut deleted, mut batches, mut first, mut last, mut busy) = (0u64, 0u64, 0.0, 0.0, 0.0);
        // A purge whose sweep is over stops: what it would do next (sweep the table again, deleting nothing) is not
        // the purge being measured, and its rate over the time it ran is then a lower bound.
        let mut exhausted = false;
        while !stop.get() && !exhausted {
            let batch_started = Instant::now();
            let (rows, done) = purger.batch().await?;
            let took = batch_started.elapsed();
            busy += took.as_secs_f64();
            batch_us.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            last = took.as_secs_f64() * 1000.0;
            if batches == 0 {
                first = last;
            }
            batches += 1;
            deleted += rows;
            exhausted = done;
            if rest > 0.0 && !exhausted {
                actix_web::rt::time::sleep(took.mul_f64(rest)).await;
            }
        }
        Ok::<_, String>((deleted, batches, started.elapsed().as_secs_f64(), busy, batch_us, first, last, exhausted))
    };
    let plan = Plan::new(app::LIB_PATH, Keys::Fresh);
    let measuring = async {
        let claims =
            load::drive(&server.base, &plan, options.concurrency, Duration::ZERO, options.measure(), &schema.admin)
                .await;
        stop.set(true);
        claims
    };
    let (purged, claims) = futures_util::future::join(purging, measuring).await;
    let (deleted, batches, seconds, busy_seconds, batch_us, first_batch_ms, last_batch_ms, exhausted) = purged?;
    let claims = claims?;
    println!("  {:<24} {}", "claims during the purge", claims.summary());
    Ok(Purge {
        name,
        how,
        rest,
        deleted,
        batches,
        seconds,
        busy_seconds,
        batch_us,
        first_batch_ms,
        last_batch_ms,
        exhausted,
        claims,
    })
}
