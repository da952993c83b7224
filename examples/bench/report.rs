//! What the harness prints and writes: the machine, the results table and ratios, the JSON file and the chart.

use std::path::Path;

use deadpool_postgres::Pool;
use serde_json::{Value, json};

use crate::Options;
use crate::load::{Memory, Stats};

/// The machine the numbers come from.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    cpus: usize,
    cpu_model: String,
    memory_gib: f64,
    kernel: String,
    postgres: String,
    postgres_settings: String,
    rustc: String,
    profile: &'static str,
}

impl Machine {
    pub(crate) async fn read(pool: &Pool) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, model)| model.trim().to_owned());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|meminfo| {
                let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?.to_owned();
                line.trim_start_matches("MemTotal:").trim().trim_end_matches("kB").trim().parse::<f64>().ok()
            })
            .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .map_or_else(|| "unknown".to_owned(), |version| version.trim().to_owned());
        let (postgres, postgres_settings) = match postgres_facts(pool).await {
            Ok(facts) => facts,
            Err(error) => (format!("unknown ({error})"), String::new()),
        };
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            memory_gib,
            kernel,
            postgres,
            postgres_settings,
            rustc,
            profile: if cfg!(debug_assertions) { "debug" } else { "release" },
        }
    }

    pub(crate) fn print(&self) {
        println!(
            "machine: {} CPUs ({}), {:.1} GiB, Linux {}\n\
             postgres: {}\n  {}\n\
             rustc: {} ({} build)",
            self.cpus,
            self.cpu_model,
            self.memory_gib,
            self.kernel,
            self.postgres,
            self.postgres_settings,
            self.rustc,
            self.profile
        );
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "cpus": self.cpus,
            "cpu_model": self.cpu_model,
            "memory_gib": (self.memory_gib * 10.0).round() / 10.0,
            "kernel": self.kernel,
            "postgres": self.postgres,
            "postgres_settings": self.postgres_settings,
            "rustc": self.rustc,
            "profile": self.profile,
        })
    }
}

async fn postgres_facts(pool: &Pool) -> Result<(String, String), String> {
    const SETTINGS: [&str; 7] = [
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "full_page_writes",
        "wal_level",
        "max_wal_size",
        "autovacuum",
    ];
    let client = pool.get().await.map_err(|error| error.to_string())?;
    let version: String = client.query_one("SELECT version()", &[]).await.map_err(|error| error.to_string())?.get(0);
    let mut settings = Vec::new();
    for name in SETTINGS {
        let row = client.query_one("SELECT current_setting($1)", &[&name]).await.map_err(|error| error.to_string())?;
        settings.push(format!("{name}={}", row.get::<_, String>(0)));
    }
    Ok((version, settings.join(", ")))
}

/// The summary of one measured scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    /// CPU microseconds per request of the server threads, of PostgreSQL and of the client thread.
    pub(crate) server_cpu_us: f64,
    pub(crate) postgres_cpu_us: f64,
    pub(crate) client_cpu_us: f64,
    /// CPU cores kept busy meanwhile by everything else on the machine.
    pub(crate) other_cores: f64,
}

impl From<&Stats> for Measured {
    fn from(stats: &Stats) -> Self {
        Self {
            rps: stats.rps(),
            p50_us: stats.quantile_us(0.5),
            p99_us: stats.quantile_us(0.99),
            requests: stats.requests,
            errors: stats.errors,
            server_cpu_us: stats.cpu_us_per_request(stats.cpu.server),
            postgres_cpu_us: stats.cpu_us_per_request(stats.cpu.postgres),
            client_cpu_us: stats.cpu_us_per_request(stats.cpu.client),
            other_cores: stats.cpu.other / stats.elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        }
    }
}

impl Measured {
    pub(crate) fn to_json(self) -> Value {
        json!({
            "rps": round2(self.rps),
            "p50_us": round2(self.p50_us),
            "p99_us": round2(self.p99_us),
            "requests": self.requests,
            "errors": self.errors,
            "cpu_us_per_request": {
                "server": round2(self.server_cpu_us),
                "postgres": round2(self.postgres_cpu_us),
                "client": round2(self.client_cpu_us),
            },
            "other_load_cores": round2(self.other_cores),
        })
    }
}

/// A scenario's row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Measured(Measured),
    /// Printed as is in the table; `null` in the JSON.
    NotImplemented(&'static str),
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A ratio of the library's scenario to its floor.
#[derive(Debug, Clone, Copy)]
struct Ratio {
    /// requests/s of the library over requests/s of the floor: 1.0 is the floor's throughput, less is slower.
    rps: f64,
    /// p50 of the library over p50 of the floor: 1.0 is the floor's latency, more is slower.
    p50: f64,
    p99: f64,
    /// Server CPU per request of the library over the floor's (more is costlier).
    server_cpu: f64,
    /// PostgreSQL CPU per request of the library over the floor's.
    postgres_cpu: f64,
}

impl Ratio {
    fn of(library: Measured, floor: Measured) -> Self {
        Self {
            rps: library.rps / floor.rps,
            p50: library.p50_us / floor.p50_us,
            p99: library.p99_us / floor.p99_us,
            server_cpu: library.server_cpu_us / floor.server_cpu_us,
            postgres_cpu: library.postgres_cpu_us / floor.postgres_cpu_us,
        }
    }

    fn to_json(self) -> Value {
        json!({
            "rps": round3(self.rps),
            "p50": round3(self.p50),
            "p99": round3(self.p99),
            "server_cpu_per_request": round3(self.server_cpu),
            "postgres_cpu_per_request": round3(self.postgres_cpu),
        })
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The memory store's own claims and completions, timed around each call inside the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreOps {
    pub(crate) operations: u64,
    pub(crate) p99_us: f64,
    pub(crate) max_us: f64,
}

impl From<&hdrhistogram::Histogram<u64>> for StoreOps {
    fn from(durations: &hdrhistogram::Histogram<u64>) -> Self {
        Self {
            operations: durations.len(),
            p99_us: durations.value_at_quantile(0.99) as f64 / 1000.0,
            max_us: durations.max() as f64 / 1000.0,
        }
    }
}

impl StoreOps {
    pub(crate) fn summary(&self) -> String {
        format!(
            "store operations (claim, complete): p99 {:.1} us, worst {:.1} us ({} operations)",
            self.p99_us, self.max_us, self.operations
        )
    }

    fn to_json(self) -> Value {
        json!({ "operations": self.operations, "p99_us": round2(self.p99_us), "max_us": round2(self.max_us) })
    }
}

/// The memory store growing from empty: every request of `keys` fresh keys measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Growth {
    pub(crate) keys: u64,
    pub(crate) measured: Measured,
    pub(crate) p999_us: f64,
    /// The worst single request.
    pub(crate) max_us: f64,
    pub(crate) store_ops: StoreOps,
}

impl Growth {
    pub(crate) fn from_stats(keys: u64, stats: &Stats, store_ops: StoreOps) -> Self {
        Self {
            keys,
            measured: Measured::from(stats),
            p999_us: stats.quantile_us(0.999),
            max_us: stats.histogram.max() as f64 / 1000.0,
            store_ops,
        }
    }
}

/// The targets for the memory store while it grows (issue 15).
const TARGET_MEMORY_P99_US: f64 = 5_000.0;
const TARGET_MEMORY_MAX_US: f64 = 20_000.0;
/// The target for the library's throughput against its floor (median of the rounds).
const TARGET_FLOOR_RATIO: f64 = 0.95;

/// Everything a default run measured.
pub(crate) struct Results {
    pub(crate) options: Options,
    pub(crate) machine: Machine,
    pub(crate) outcomes: Vec<(&'static str, Outcome)>,
    /// Each round's figures, to report each round's ratio to the floor and their median.
    pub(crate) per_round: Vec<Vec<(&'static str, Measured)>>,
    /// The memory store's own operations in the memory scenarios.
    pub(crate) store_ops: Vec<(&'static str, StoreOps)>,
    pub(crate) growth: Option<Growth>,
    pub(crate) memory: Option<Memory>,
}

/// The library-to-floor pairs whose requests/s ratio is reported per round and as the median of the rounds.
const FLOOR_PAIRS: [(&str, &str, &str); 5] = [
    ("new/floor_new", "new", "floor_new"),
    ("replay/floor_replay", "replay", "floor_replay"),
    ("new_tx/floor_new_tx", "new_tx", "floor_new_tx"),
    ("redis_new/redis_floor_new", "redis_new", "redis_floor_new"),
    ("redis_replay/redis_floor_replay", "redis_replay", "redis_floor_replay"),
];

impl Results {
    fn measured(&self, name: &str) -> Option<Measured> {
        self.outcomes.iter().find_map(|(scenario, outcome)| match outcome {
            Outcome::Measured(measured) if *scenario == name => Some(*measured),
            _ => None,
        })
    }

    fn ratios(&self) -> Vec<(&'static str, Ratio)> {
        [
            ("new/floor_new", "new", "floor_new"),
            ("replay/floor_replay", "replay", "floor_replay"),
            ("new_tx/floor_new_tx", "new_tx", "floor_new_tx"),
            ("new_tx/floor_new", "new_tx", "floor_new"),
            ("new/bare", "new", "bare"),
            // The pooler-safe default (unnamed statements) against named prepared statements, direct connection.
            ("new/new_prepared", "new", "new_prepared"),
            ("new_tx/new_tx_prepared", "new_tx", "new_tx_prepared"),
            ("replay/replay_prepared", "replay", "replay_prepared"),
            ("redis_new/redis_floor_new", "redis_new", "redis_floor_new"),
            ("redis_replay/redis_floor_replay", "redis_replay", "redis_floor_replay"),
            // The library on Redis against the library on PostgreSQL, in the same run.
            ("redis_new/new", "redis_new", "new"),
            ("redis_replay/replay", "redis_replay", "replay"),
        ]
        .into_iter()
        .filter_map(|(label, library, floor)| Some((label, Ratio::of(self.measured(library)?, self.measured(floor)?))))
        .collect()
    }

    /// Per pair: each round's requests/s ratio, and their median.
    fn round_ratios(&self) -> Vec<(&'static str, Vec<f64>, f64)> {
        FLOOR_PAIRS
            .iter()
            .filter_map(|(label, library, floor)| {
                let mut ratios: Vec<f64> = self
                    .per_round
                    .iter()
                    .filter_map(|round| {
                        let find = |name: &str| round.iter().find(|(scenario, _)| *scenario == name).map(|(_, m)| *m);
                        Some(find(library)?.rps / find(floor)?.rps)
                    })
                    .collect();
                if ratios.is_empty() {
                    return None;
                }
                let in_order = ratios.clone();
                ratios.sort_by(f64::total_cmp);
                let middle = ratios.len() / 2;
                let median =
                    if ratios.len() % 2 == 1 { ratios[middle] } else { (ratios[middle - 1] + ratios[middle]) / 2.0 };
                Some((*label, in_order, median))
            })
            .collect()
    }

    /// The lines that answer issue 15's "Done when" for this run's part (PostgreSQL ratios, memory store).
    pub(crate) fn targets(&self) -> Vec<String> {
        let mut lines = Vec::new();
        // Issue 15's targets are PostgreSQL's; the Redis pairs' rounds are printed with the results.
        for (label, rounds, median) in
            self.round_ratios().into_iter().filter(|(label, _, _)| !label.starts_with("redis"))
        {
            let each: Vec<String> = rounds.iter().map(|ratio| format!("{ratio:.3}")).collect();
            lines.push(format!(
                "{label}: req/s ratio median {median:.3} of {} round(s) [{}] (target >= {TARGET_FLOOR_RATIO}): {}",
                rounds.len(),
                each.join(", "),
                verdict(median >= TARGET_FLOOR_RATIO)
            ));
        }
        if let Some(m) = self.measured("mem_new") {
            lines.push(format!(
                "memory store, fresh keys: p99 {:.1} us (target < {TARGET_MEMORY_P99_US:.0} us): {}",
                m.p99_us,
                verdict(m.p99_us < TARGET_MEMORY_P99_US)
            ));
        }
        if let Some(growth) = &self.growth {
            lines.push(format!(
                "memory store growing 0 -> {} records: p99 {:.1} us (target < {TARGET_MEMORY_P99_US:.0} us): {}; \
                 worst request {:.1} us (target < {TARGET_MEMORY_MAX_US:.0} us): {}",
                growth.keys,
                growth.measured.p99_us,
                verdict(growth.measured.p99_us < TARGET_MEMORY_P99_US),
                growth.max_us,
                verdict(growth.max_us < TARGET_MEMORY_MAX_US)
            ));
            lines.push(format!(
                "  (the store's own worst claim or completion meanwhile: {:.1} us; the rest of a slow request is \
                 waiting for a core, with {:.2} cores of other load on the machine)",
                growth.store_ops.max_us, growth.measured.other_cores
            ));
        }
        lines
    }

    pub(crate) fn print(&self) {
        let options = &self.options;
        println!(
            "\n{} s measured per scenario after {} s warm-up, {} connection(s), {} worker(s), {} round(s)\n",
            options.seconds, options.warmup, options.concurrency, options.workers, options.rounds
        );
        println!(
            "| scenario | req/s | p50 (us) | p99 (us) | server CPU us/req | PostgreSQL CPU us/req | client CPU us/req \
             | other load (cores) | requests | errors |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (name, outcome) in &self.outcomes {
            match outcome {
                Outcome::Measured(m) => println!(
                    "| {name} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {} |",
                    m.rps,
                    m.p50_us,
                    m.p99_us,
                    m.server_cpu_us,
                    m.postgres_cpu_us,
                    m.client_cpu_us,
                    m.other_cores,
                    m.requests,
                    m.errors
                ),
                Outcome::NotImplemented(reason) => println!("| {name} | {reason} | | | | | | | | |"),
            }
        }
        println!();
        for (label, ratio) in self.ratios() {
            println!(
                "{label:<32} req/s ratio {:.3}   p50 ratio {:.3}   p99 ratio {:.3}   server CPU/req ratio {:.3}   \
                 PostgreSQL CPU/req ratio {:.3}",
                ratio.rps, ratio.p50, ratio.p99, ratio.server_cpu, ratio.postgres_cpu
            );
        }
        if let Some(growth) = &self.growth {
            let m = growth.measured;
            println!(
                "\nmemory store growing from 0 to {} records: {:.0} req/s, p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, \
                 worst request {:.1} us; {}",
                growth.keys,
                m.rps,
                m.p50_us,
                m.p99_us,
                growth.p999_us,
                growth.max_us,
                growth.store_ops.summary()
            );
        }
        for (label, rounds, median) in self.round_ratios() {
            let each: Vec<String> = rounds.iter().map(|ratio| format!("{ratio:.3}")).collect();
            println!("{label:<32} req/s ratio per round [{}], median {median:.3}", each.join(", "));
        }
        if let Some(memory) = &self.memory {
            println!(
                "\nmemory: {} concurrent {} KiB bodies, {} bursts: RSS before {:.1} MiB, peak RSS (VmHWM) \
                 #[idempotent(max_request_body = \"2MiB\")] {:.1} MiB, same bodies without idempotency {:.1} MiB{}",
                memory.bodies,
                memory.body_bytes / 1024,
                memory.bursts,
                mib(memory.rss_before_kib),
                mib(memory.idempotent_peak_kib),
                mib(memory.bare_peak_kib),
                if memory.reset { "" } else { " (VmHWM could not be reset: peaks include earlier phases)" }
            );
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let scenarios: serde_json::Map<String, Value> = self
            .outcomes
            .iter()
            .map(|(name, outcome)| {
                let value = match outcome {
                    Outcome::Measured(measured) => measured.to_json(),
                    Outcome::NotImplemented(_) => Value::Null,
                };
                ((*name).to_owned(), value)
            })
            .collect();
        let ratios: serde_json::Map<String, Value> =
            self.ratios().into_iter().map(|(label, ratio)| (label.to_owned(), ratio.to_json())).collect();
        let median_ratios: serde_json::Map<String, Value> = self
            .round_ratios()
            .into_iter()
            .map(|(label, rounds, median)| {
                let rounds: Vec<f64> = rounds.into_iter().map(round3).collect();
                (label.to_owned(), json!({ "rps_per_round": rounds, "rps_median": round3(median) }))
            })
            .collect();
        let options = &self.options;
        json!({
            "scenarios": scenarios,
            "ratios": ratios,
            "ratios_median_of_rounds": median_ratios,
            "memory_growth": self.growth.map(|growth| json!({
                "keys": growth.keys,
                "measured": growth.measured.to_json(),
                "p999_us": round2(growth.p999_us),
                "max_us": round2(growth.max_us),
                "store_operations": growth.store_ops.to_json(),
            })),
            "memory_store_operations": self
                .store_ops
                .iter()
                .map(|(name, ops)| ((*name).to_owned(), ops.to_json()))
                .collect::<serde_json::Map<String, Value>>(),
            "memory": self.memory.as_ref().map(|memory| json!({
                "bodies": memory.bodies,
                "body_bytes": memory.body_bytes,
                "bursts": memory.bursts,
                "rss_before_mib": round2(mib(memory.rss_before_kib)),
                "idempotent_peak_rss_mib": round2(mib(memory.idempotent_peak_kib)),
                "bare_peak_rss_mib": round2(mib(memory.bare_peak_kib)),
                "peak_reset": memory.reset,
            })),
            "config": {
                "seconds": options.seconds,
                "warmup_seconds": options.warmup,
                "concurrency": options.concurrency,
                "workers": options.workers,
                "rounds": options.rounds,
                "replay_keys": options.replay_keys,
                "growth_keys": options.growth_keys,
            },
            "machine": self.machine.to_json(),
        })
    }
}

pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Writes `value` as pretty JSON, creating the parent directory.
pub(crate) fn write_file(path: &str, value: &Value) -> Result<(), String> {
    create_parent(path)?;
    let text = serde_json::to_string_pretty(value).map_err(|error| error.to_string())?;
    std::fs::write(path, text + "\n").map_err(|error| format!("cannot write {path}: {error}"))
}

fn create_parent(path: &str) -> Result<(), String> {
    match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|error| format!("cannot create {}: {error}", parent.display()))
        }
        _ => Ok(()),
    }
}

/// The SVG chart. Top row: requests/s, p50 and p99 of the PostgreSQL scenarios. Bottom row: the library's
/// throughput over its floor's (median of the rounds, with the 0.95 target), and the memory store's requests/s and
/// p99 / worst-request latencies (with the 5 ms p99 target).
pub(crate) fn chart(path: &str, results: &Results) -> Result<(), String> {
    use plotters::prelude::*;

    create_parent(path)?;
    let postgres: Vec<(&str, Measured)> = results
        .outcomes
        .iter()
        .filter(|(name, _)| !name.starts_with("mem_"))
        .filter_map(|(name, outcome)| match outcome {
            Outcome::Measured(measured) => Some((*name, *measured)),
            Outcome::NotImplemented(_) => None,
        })
        .collect();
    let options = &results.options;
    let title = format!(
        "idempotent-runtime: {} connections, {} worker(s), {} s per scenario x {} round(s) ({} CPUs)",
        options.concurrency, options.workers, options.seconds, options.rounds, results.machine.cpus
    );
    let root = SVGBackend::new(path, (1500, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| error.to_string())?;
    let root = root.titled(&title, ("sans-serif", 20)).map_err(|error| error.to_string())?;
    let panels = root.split_evenly((2, 3));
    type Metric = fn(&Measured) -> f64;
    let metrics: [(&str, &str, Metric); 3] = [
        ("PostgreSQL: throughput (higher is better)", "requests/s", |m| m.rps),
        ("PostgreSQL: p50 latency (lower is better)", "microseconds", |m| m.p50_us),
        ("PostgreSQL: p99 latency (lower is better)", "microseconds", |m| m.p99_us),
    ];
    for (panel, (caption, unit, metric)) in panels.iter().zip(metrics) {
        let bars: Vec<(String, f64)> = postgres.iter().map(|(name, m)| ((*name).to_owned(), metric(m))).collect();
        bar_panel(panel, caption, unit, &bars, None)?;
    }
    let ratios: Vec<(String, f64)> = results
        .round_ratios()
        .into_iter()
        .map(|(label, _, median)| (label.split('/').next().unwrap_or(label).to_owned(), median))
        .collect();
    bar_panel(&panels[3], "library / floor, req/s (median of rounds)", "ratio", &ratios, Some(TARGET_FLOOR_RATIO))?;
    let mut memory_rps = Vec::new();
    let mut memory_latency = Vec::new();
    for name in ["mem_new", "mem_replay"] {
        if let Some(m) = results.measured(name) {
            memory_rps.push((name.to_owned(), m.rps));
            memory_latency.push((format!("{name} p99"), m.p99_us));
        }
    }
    if let Some(growth) = &results.growth {
        memory_rps.push(("mem_growth".to_owned(), growth.measured.rps));
        memory_latency.push(("growth p99".to_owned(), growth.measured.p99_us));
        memory_latency.push(("growth worst".to_owned(), growth.max_us));
    }
    bar_panel(&panels[4], "memory store: throughput", "requests/s", &memory_rps, None)?;
    bar_panel(
        &panels[5],
        "memory store: p99 and worst (lower is better)",
        "microseconds",
        &memory_latency,
        Some(TARGET_MEMORY_P99_US),
    )?;
    root.present().map_err(|error| error.to_string())
}

/// One panel of labelled bars, with an optional dashed target line.
fn bar_panel<DB: plotters::prelude::DrawingBackend>(
    panel: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    bars: &[(String, f64)],
    target: Option<f64>,
) -> Result<(), String> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};

    let failed = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    let top = bars.iter().map(|(_, value)| *value).chain(target).fold(0.0f64, f64::max) * 1.15;
    let top = if top > 0.0 { top } else { 1.0 };
    let count = u32::try_from(bars.len().max(1)).unwrap_or(u32::MAX);
    let mut chart = ChartBuilder::on(panel)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..count.saturating_sub(1)).into_segmented(), 0.0..top)
        .map_err(failed)?;
    let precision = if top < 10.0 { 2 } else { 0 };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(1)
        .y_label_formatter(&|value| format!("{value:.precision$}"))
        .y_desc(unit)
        .x_labels(bars.len())
        .x_label_formatter(&|value| match value {
            SegmentValue::CenterOf(index) => bars.get(*index as usize).map_or_else(String::new, |(n, _)| n.clone()),
            _ => String::new(),
        })
        .x_label_style(("sans-serif", 12))
        .draw()
        .map_err(failed)?;
    let rectangles = bars.iter().zip(0u32..).map(|((name, value), index)| {
        let color = match name.as_str() {
            "bare" => RGBColor(150, 150, 150),
            name if name.starts_with("floor") => RGBColor(66, 114, 196),
            _ => RGBColor(230, 126, 34),
        };
        let mut bar = Rectangle::new(
            [(SegmentValue::Exact(index), 0.0), (SegmentValue::Exact(index + 1), *value)],
            color.filled(),
        );
        bar.set_margin(0, 0, 10, 10);
        bar
    });
    chart.draw_series(rectangles).map_err(failed)?;
    let labels = bars.iter().zip(0u32..).map(|((_, value), index)| {
        let style = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        Text::new(format!("{value:.precision$}"), (SegmentValue::CenterOf(index), value + top * 0.01), style)
    });
    chart.draw_series(labels).map_err(failed)?;
    if let Some(target) = target {
        let line = [(SegmentValue::Exact(0), target), (SegmentValue::Exact(count), target)];
        chart.draw_series(std::iter::once(PathElement::new(line, RED.stroke_width(2)))).map_err(failed)?;
    }
    Ok(())
}
