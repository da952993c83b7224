//! `--scale`: does a claim get slower as the table grows, and what does purging expired records cost?
//!
//! 1. COPY 10^4 records into `idempotency_records`, `VACUUM (ANALYZE)`, `CHECKPOINT`, measure `new` (fresh keys);
//! 2. COPY more records up to `--scale-rows` (10^7 by default), the same settling, measure `new` again;
//! 3. run a purge in a loop while `new` is measured once more: expired rows deleted per second, and the claims'
//!    latency meanwhile. The runtime's own purge (`Store::purge_batch`, a sweep of the heap in page ranges,
//!    `DELETE ... WHERE ctid >= '(p,0)' AND ctid < '(p+k,0)' AND <expired>`), in rounds alternating with claims
//!    alone: first under closed-loop claims (as many as the machine answers), then under claims due at a fixed
//!    rate (open loop, issue 24: `--claim-rate`, by default half the closed-loop rate just measured), the claims'
//!    p99 with and without it at that rate; then a batched `DELETE ... WHERE ctid = ANY (...)` of expired rows
//!    (the statement issue 7 proposed before the runtime had a purge), for comparison.
//!
//! The pre-loaded records look like the table of a busy service with a 24 h ttl: completed responses of the
//! bench route (same scope, method and route, random key digests) created evenly over the last 48 hours in heap
//! order, so the older half (the first half of the heap) has expired and awaits the purge.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::Pool;
use hdrhistogram::Histogram;
use serde_json::json;

use idempotent_runtime::purge::PurgePace;
use idempotent_runtime::{PostgresStore, Store as _};

use crate::app::{self, Server};
use crate::judge::{self, Verdict};
use crate::load::{self, Keys, Plan, Stats};
use crate::machine::Machine;
use crate::measures::Measured;
use crate::report;
use crate::{Options, RunSchema};

#[path = "scale_load.rs"]
mod scale_load;
use self::scale_load::*;
#[path = "wal_activity.rs"]
mod wal_activity;
use self::wal_activity::WalMark;

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
    /// between batches), at this pace (`--purge-batch`, `--purge-rest`, `--purge-max-rate`, by default the
    /// runtime's), as `purge_expired_paced` / `spawn_purger` run it.
    Runtime(PostgresStore, PurgePace),
    /// [`CTID_PURGE_SQL`] on a connection of its own.
    Ctid(Pool),
}

impl Purger {
    fn name(&self) -> &'static str {
        match self {
            Self::Runtime(..) => "runtime",
            Self::Ctid(_) => "ctid_statement",
        }
    }

    /// How the loop runs it: the runtime's at its pace, the statement flat out (its batch is its own `LIMIT`).
    fn pace(&self) -> PurgePace {
        match self {
            Self::Runtime(_, pace) => *pace,
            Self::Ctid(_) => PurgePace::flat_out(5_000),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Runtime(_, pace) => {
                format!("Store::purge_batch({}) in a loop (idempotent_runtime::purge)", pace.batch)
            }
            Self::Ctid(_) => CTID_PURGE_SQL.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }

    /// Purges one batch: how many records it deleted, and whether the sweep is over (the runtime's pass reached the
    /// table's end; the statement found nothing left). The one place that knows how each purge is run.
    async fn batch(&self) -> Result<(u64, bool), String> {
        match self {
            Self::Runtime(store, pace) => {
                let done = store.purge_batch(pace.batch).await.map_err(|error| error.to_string())?;
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
    // Each round's p50 ratio (large over small), and the most other load of any of these measurements.
    let (mut p50_rounds, mut claims_other_load) = (Vec::new(), 0.0f64);
    for _ in 0..rounds {
        let small_round = claims(options, small_schema, small_server, &format!("{SMALL_ROWS} records")).await?;
        let large_round = claims(options, schema, server, &format!("{large_rows} records")).await?;
        p50_rounds.push(large_round.quantile_us(0.5) / small_round.quantile_us(0.5));
        claims_other_load = claims_other_load.max(other_cores(&small_round)).max(other_cores(&large_round));
        merge(&mut small, small_round);
        merge(&mut large, large_round);
    }
    let (Some(small), Some(large)) = (small, large) else { return Err("no rounds".to_owned()) };

    // The runtime's purge as `spawn_purger` runs it (paced), in rounds alternating with claims alone, so that the
    // p99 it is compared with is measured under the same load of the rest of the machine; then the same purge under
    // claims sent at a fixed rate (open loop); then the statement of issue 7, flat out, once, for comparison (last:
    // it deletes expired rows wherever they are, ahead of the runtime's sweep).
    let runtime = Purger::Runtime(PostgresStore::new(schema.pool(1)?), options.purge_pace());
    println!("\npurging expired records ({}) while measuring claims, {rounds} rounds alternating", runtime.describe());
    let closed = purge_rounds(options, schema, server, &runtime, rounds, ClaimLoad::Closed).await?;
    let without_m = Measured::from(&closed.without);
    let rate = options.claim_rate.unwrap_or(without_m.rps / 2.0);
    println!(
        "\nopen loop: claims due at a fixed {rate:.0}/s ({}), latency from when each was due; the same purge, {rounds} \
         rounds alternating",
        if options.claim_rate.is_some() {
            "--claim-rate"
        } else {
            "half the closed-loop rate of claims alone just measured"
        }
    );
    // The closed loop's purge may have swept every expired record: the open loop gets its own supply.
    let expired = expire_again(&schema.admin).await?;
    println!("  (expired the {expired} live completed records again, for this purge)");
    let open = purge_rounds(options, schema, server, &runtime, rounds, ClaimLoad::Open(rate)).await?;
    let open_without_m = Measured::from(&open.without);
    let ctid = Purger::Ctid(schema.pool(1)?);
    println!("\npurging expired records ({}) while measuring claims", ctid.describe());
    let ctid_purge = purge_during_claims(options, schema, server, &ctid, ClaimLoad::Closed).await?;

    let (small_m, large_m) = (Measured::from(&small), Measured::from(&large));
    let p50_ratio = large_m.p50_us / small_m.p50_us;
    println!(
        "\n| table | req/s | p50 (us) | p99 (us) | server CPU us/req | PostgreSQL CPU us/req | other load (cores) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut rows = vec![(format!("{SMALL_ROWS} records"), small_m), (format!("{large_rows} records"), large_m)];
    rows.push((format!("{large_rows} records, claims alone (between the purge rounds)"), without_m));
    rows.push((format!("{large_rows} records, runtime purge running"), Measured::from(&closed.with.claims)));
    rows.push((format!("{large_rows} records, claims due at {rate:.0}/s, alone (open loop)"), open_without_m));
    rows.push((
        format!("{large_rows} records, claims due at {rate:.0}/s, runtime purge running (open loop)"),
        Measured::from(&open.with.claims),
    ));
    rows.push((format!("{large_rows} records, ctid_statement purge running"), Measured::from(&ctid_purge.claims)));
    for (label, m) in rows {
        println!(
            "| {label} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            m.rps, m.p50_us, m.p99_us, m.server_cpu_us, m.postgres_cpu_us, m.other_cores
        );
    }
    println!(
        "\nclaim p50 ratio {large_rows} / {SMALL_ROWS} records: {p50_ratio:.3} (rounds [{}]; target <= \
         {TARGET_P50_RATIO}); req/s ratio {:.3}",
        listed(&p50_rounds),
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
    let purges = [
        (&closed.with, without_m, "closed loop"),
        (&open.with, open_without_m, "open loop"),
        (&ctid_purge, without_m, "closed loop"),
    ];
    for (purge, without, how) in purges {
        let during = Measured::from(&purge.claims);
        println!(
            "purge ({}, {how}): {} rows in {} batches over {:.1} s = {:.0} rows/s, {:.0} rows/s of its busy time \
             (batch p50 {:.1} ms, max {:.1} ms; first batch {:.1} ms, last {:.1} ms){}",
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
            "  claims meanwhile: {:.0}/s, p99 {:.1} us vs {:.1} us without ({:.2}x), p50 {:.1} us vs {:.1} us",
            during.rps,
            during.p99_us,
            without.p99_us,
            during.p99_us / without.p99_us,
            during.p50_us,
            without.p50_us
        );
    }

    let mut targets = Vec::new();
    let mut p50_doubts = judge::round_doubts(&p50_rounds);
    p50_doubts.extend(judge::load_doubt(claims_other_load));
    targets.push(format!(
        "claims at {large_rows} / {SMALL_ROWS} records: p50 ratio {p50_ratio:.3} (rounds [{}]; target <= \
         {TARGET_P50_RATIO}): {}",
        listed(&p50_rounds),
        Verdict::judge(p50_ratio <= TARGET_P50_RATIO, p50_doubts)
    ));
    targets.push(closed.target_line(&format!("purge (runtime, {large_rows} records, closed loop)")));
    targets.push(open.target_line(&format!("purge (runtime, {large_rows} records, claims due at {rate:.0}/s)")));
    if let Some(path) = crate::scale_json_path(options) {
        let value = json!({
            "scale": {
                "small_rows": SMALL_ROWS,
                "large_rows": large_rows,
                "rounds": rounds,
                "new_at_small": small_m.to_json(),
                "new_at_large": large_m.to_json(),
                "p50_ratio": round3(p50_ratio),
                "p50_ratio_per_round": p50_rounds.iter().copied().map(round3).collect::<Vec<_>>(),
                "rps_ratio": round3(large_m.rps / small_m.rps),
                "target_p50_ratio": TARGET_P50_RATIO,
                "small_load_seconds": round3(small_load.seconds),
                "large_load_seconds": round3(large_load.seconds),
                "large_load_rows_per_second": large_load.rows_per_second().round(),
                "settle_seconds": round3(settle_seconds),
                "table_bytes": size,
            },
            "purge": purges.iter().filter(|(_, _, how)| *how == "closed loop").map(|(purge, without, _)| {
                (purge.name.to_owned(), purge.to_json(*without))
            }).collect::<serde_json::Map<String, serde_json::Value>>(),
            "purge_open_loop": {
                "claim_rate": rate.round(),
                "claim_rate_from": if options.claim_rate.is_some() { "--claim-rate" } else { "half the closed-loop rate" },
                "runtime": open.with.to_json(open_without_m),
                "p99_ratio_per_round": open.rises.iter().copied().map(round3).collect::<Vec<_>>(),
            },
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

/// Values of rounds, for a line.
fn listed(values: &[f64]) -> String {
    values.iter().map(|value| format!("{value:.3}")).collect::<Vec<_>>().join(", ")
}

fn other_cores(stats: &Stats) -> f64 {
    Measured::from(stats).other_cores
}

/// How the claims measured beside a purge are sent.
#[derive(Debug, Clone, Copy)]
enum ClaimLoad {
    /// `--concurrency` closed-loop streams (as many claims as the machine answers).
    Closed,
    /// Claims due at this many per second, whatever the answers (`load::drive_open`).
    Open(f64),
}

/// A purge measured in rounds, each round claims alone and then claims with the purge running.
struct PurgeRounds {
    without: Stats,
    with: Purge,
    /// Each round's claims' p99 with the purge over without it.
    rises: Vec<f64>,
    /// The most other load of any of the measurements.
    other_load: f64,
}

async fn purge_rounds(
    options: &Options,
    schema: &RunSchema,
    server: &Server,
    purger: &Purger,
    rounds: usize,
    load: ClaimLoad,
) -> Result<PurgeRounds, String> {
    let (mut without, mut with): (Option<Stats>, Option<Purge>) = (None, None);
    let (mut rises, mut other_load) = (Vec::new(), 0.0f64);
    for _ in 0..rounds {
        let alone = match load {
            ClaimLoad::Closed => claims(options, schema, server, "claims without a purge").await?,
            ClaimLoad::Open(rate) => open_claims(options, schema, server, rate, "claims without a purge").await?,
        };
        let purge = purge_during_claims(options, schema, server, purger, load).await?;
        rises.push(purge.claims.quantile_us(0.99) / alone.quantile_us(0.99));
        other_load = other_load.max(other_cores(&alone)).max(other_cores(&purge.claims));
        merge(&mut without, alone);
        match &mut with {
            Some(total) => total.merge(purge)?,
            None => with = Some(purge),
        }
    }
    let (Some(without), Some(with)) = (without, with) else { return Err("no rounds".to_owned()) };
    Ok(PurgeRounds { without, with, rises, other_load })
}

impl PurgeRounds {
    /// Issue 15's and 24's targets for the purge: its rate, and the claims' p99 beside it, as the median of the
    /// rounds' rises (as every ratio of rounds is judged). Not the rise of the merged rounds: a stall of the
    /// machine's I/O (0.1 to 0.5 s, with or without a purge, BENCHMARKS.md) in any one round makes the merged
    /// p99 of its side, and one round's figure is then the whole verdict. The rate of a purge that ran out of rows
    /// is a lower bound (met if above the target, inconclusive otherwise); the p99's rise is then inconclusive,
    /// the claims having run partly without it.
    fn target_line(&self, label: &str) -> String {
        let purge = &self.with;
        let rate = purge.deleted as f64 / purge.seconds;
        let rise = judge::median(&self.rises);
        let merged = Measured::from(&purge.claims).p99_us / Measured::from(&self.without).p99_us;
        let load = judge::load_doubt(self.other_load);
        let ran_out = "it ran out of expired rows";
        let mut rate_doubts: Vec<String> = load.iter().cloned().collect();
        if purge.exhausted && rate < TARGET_PURGE_RATE {
            rate_doubts.push(format!("{ran_out}: the rate is a lower bound"));
        }
        let mut rise_doubts = judge::round_doubts(&self.rises);
        rise_doubts.extend(load);
        if purge.exhausted {
            rise_doubts.push(format!("{ran_out}: the claims ran partly without it"));
        }
        format!(
            "{label}: {rate:.0} expired rows/s (target >= {TARGET_PURGE_RATE:.0}): {}; claims' p99 {rise:.3}x \
             without it (median of rounds [{}]; merged rounds {merged:.3}x; target < {TARGET_PURGE_P99_RISE}): {}",
            Verdict::judge(rate >= TARGET_PURGE_RATE, rate_doubts),
            listed(&self.rises),
            Verdict::judge(rise < TARGET_PURGE_P99_RISE, rise_doubts)
        )
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

async fn claims(options: &Options, schema: &RunSchema, server: &Server, label: &str) -> Result<Stats, String> {
    let mark = WalMark::take(&schema.admin).await?;
    let stats = load::drive(
        &server.base,
        &claim_plan(),
        options.concurrency,
        options.warm_up(),
        options.measure(),
        &schema.admin,
    )
    .await?;
    println!("  {label:<24} {}", stats.summary());
    println!("  {:<24} {}", "", mark.since(&schema.admin).await?);
    Ok(stats)
}

/// Claims due at `rate` per second (open loop), on at most `--concurrency` connections.
async fn open_claims(
    options: &Options,
    schema: &RunSchema,
    server: &Server,
    rate: f64,
    label: &str,
) -> Result<Stats, String> {
    let mark = WalMark::take(&schema.admin).await?;
    let stats = load::drive_open(
        &server.base,
        &claim_plan(),
        rate,
        options.concurrency,
        options.warm_up(),
        options.measure(),
        &schema.admin,
    )
    .await?;
    println!("  {label:<24} {}", stats.summary());
    println!("  {:<24} {}", "", mark.since(&schema.admin).await?);
    Ok(stats)
}

/// `new`: fresh keys on the library's route, each success checked for its completed record.
fn claim_plan() -> Plan {
    Plan::new(app::LIB_PATH, Keys::Fresh).stored_in(app::LIBRARY_TABLE)
}

struct Purge {
    name: &'static str,
    how: String,
    /// The purger's pace: how the loop rested after each batch.
    pace: PurgePace,
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

impl Purge {
    /// The purge's figures, and the claims' beside it against `without` (claims alone).
    fn to_json(&self, without: Measured) -> serde_json::Value {
        let during = Measured::from(&self.claims);
        json!({
            "how": self.how,
            "deleted": self.deleted,
            "batches": self.batches,
            "seconds": round3(self.seconds),
            "deleted_per_second": (self.deleted as f64 / self.seconds).round(),
            "batch_p50_ms": self.batch_us.value_at_quantile(0.5) as f64 / 1000.0,
            "batch_max_ms": self.batch_us.max() as f64 / 1000.0,
            "first_batch_ms": round3(self.first_batch_ms),
            "last_batch_ms": round3(self.last_batch_ms),
            "exhausted": self.exhausted,
            "new_during_purge": during.to_json(),
            "busy_seconds": round3(self.busy_seconds),
            "rest": self.pace.rest,
            "max_deletes_per_second": self.pace.max_deletes_per_second,
            "deleted_per_busy_second": (self.deleted as f64 / self.busy_seconds.max(f64::MIN_POSITIVE)).round(),
            "new_without_purge": without.to_json(),
            "p99_ratio_during_purge": round3(during.p99_us / without.p99_us),
        })
    }
}

fn merge(total: &mut Option<Stats>, stats: Stats) {
    match total {
        Some(total) => total.merge(stats),
        None => *total = Some(stats),
    }
}

/// Runs the purge loop on its own connection while `new` is measured. Closed loop: no warm-up, the purge starts
/// with the measurement. Open loop: the claims' warm-up first, then the purge with the measurement. It stops with
/// the measurement. After each batch it rests as the purger's pace says (`PurgePace::rest_after`), as
/// `idempotent_runtime::purge::purge_expired_paced` does.
async fn purge_during_claims(
    options: &Options,
    schema: &RunSchema,
    server: &Server,
    purger: &Purger,
    load: ClaimLoad,
) -> Result<Purge, String> {
    let pace = purger.pace();
    let cap = pace.max_deletes_per_second.map_or_else(String::new, |max| format!(", at most {max} deleted/s"));
    let (name, how) = (purger.name(), format!("{} (rest {} x each batch{cap})", purger.describe(), pace.rest));
    let stop = Cell::new(false);
    let warm_up = match load {
        ClaimLoad::Closed => Duration::ZERO,
        ClaimLoad::Open(_) => options.warm_up(),
    };
    let purging = async {
        actix_web::rt::time::sleep(warm_up).await;
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
            let rest = pace.rest_after(took, usize::try_from(rows).unwrap_or(usize::MAX));
            if !rest.is_zero() && !exhausted {
                actix_web::rt::time::sleep(rest).await;
            }
        }
        Ok::<_, String>((deleted, batches, started.elapsed().as_secs_f64(), busy, batch_us, first, last, exhausted))
    };
    let plan = claim_plan();
    let mark = WalMark::take(&schema.admin).await?;
    let measuring = async {
        let (base, measure, admin) = (&server.base, options.measure(), &schema.admin);
        let claims = match load {
            ClaimLoad::Closed => load::drive(base, &plan, options.concurrency, warm_up, measure, admin).await,
            ClaimLoad::Open(rate) => {
                load::drive_open(base, &plan, rate, options.concurrency, warm_up, measure, admin).await
            }
        };
        stop.set(true);
        claims
    };
    let (purged, claims) = futures_util::future::join(purging, measuring).await;
    let (deleted, batches, seconds, busy_seconds, batch_us, first_batch_ms, last_batch_ms, exhausted) = purged?;
    let claims = claims?;
    println!("  {:<24} {}", "claims during the purge", claims.summary());
    println!("  {:<24} {}", "", mark.since(&schema.admin).await?);
    Ok(Purge {
        name,
        how,
        pace,
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
