//! What the harness prints and writes: the machine, the results table and ratios, the JSON file and the chart.

use std::path::Path;

use serde_json::{Value, json};

use crate::Options;
pub(crate) use crate::chart::chart;
use crate::judge::{self, Verdict};
use crate::load::Memory;
use crate::machine::Machine;
use crate::measures::{Growth, Measured, Outcome, Ratio, round2, round3};

/// The targets for the memory store while it grows (issue 15).
pub(crate) const TARGET_MEMORY_P99_US: f64 = 5_000.0;
pub(crate) const TARGET_MEMORY_MAX_US: f64 = 20_000.0;
/// The target for the library's throughput against its floor (median of the rounds).
pub(crate) const TARGET_FLOOR_RATIO: f64 = 0.95;

/// Issue 25's targets for the library's own cost (medians of the rounds): on Redis against the least-work floor,
/// and on the memory store against the handler without the attribute (`bare`).
const TARGET_REDIS_FRESH_RATIO: f64 = 0.9;
const TARGET_REDIS_REPLAY_RATIO: f64 = 0.95;
const TARGET_MEMORY_FRESH_RATIO: f64 = 0.8;
const TARGET_MEMORY_REPLAY_RATIO: f64 = 0.95;

/// Everything a default run measured.
pub(crate) struct Results {
    pub(crate) options: Options,
    pub(crate) machine: Machine,
    pub(crate) outcomes: Vec<(&'static str, Outcome)>,
    /// Each round's figures, to report each round's ratio to the floor and their median.
    pub(crate) per_round: Vec<Vec<(&'static str, Measured)>>,
    pub(crate) growth: Option<Growth>,
    pub(crate) memory: Option<Memory>,
}

/// The pairs against a floor (the library's, and the pooler-safe floor's) whose requests/s ratio is reported per
/// round and as the median of the rounds.
const FLOOR_PAIRS: [(&str, &str, &str); 10] = [
    ("new/floor_new", "new", "floor_new"),
    ("replay/floor_replay", "replay", "floor_replay"),
    (POOLER_SAFE_NEW, "pooler_safe_floor_new", "floor_new"),
    (POOLER_SAFE_REPLAY, "pooler_safe_floor_replay", "floor_replay"),
    ("new_tx/floor_new_tx", "new_tx", "floor_new_tx"),
    ("redis_new/redis_floor_new", "redis_new", "redis_floor_new"),
    ("redis_new/redis_lua_floor_new", "redis_new", "redis_lua_floor_new"),
    ("redis_replay/redis_floor_replay", "redis_replay", "redis_floor_replay"),
    (MEMORY_NEW, "mem_new", "bare"),
    (MEMORY_REPLAY, "mem_replay", "bare"),
];

/// The memory store against the handler without the attribute: what the library's per-request work costs where no
/// store hides it.
const MEMORY_NEW: &str = "mem_new/bare";
const MEMORY_REPLAY: &str = "mem_replay/bare";

/// The pooler-safe floor against the floor: the most a layer correct behind a transaction-mode pooler can reach.
const POOLER_SAFE_NEW: &str = "pooler_safe_floor_new/floor_new";
const POOLER_SAFE_REPLAY: &str = "pooler_safe_floor_replay/floor_replay";

impl Results {
    pub(crate) fn measured(&self, name: &str) -> Option<Measured> {
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
            (POOLER_SAFE_NEW, "pooler_safe_floor_new", "floor_new"),
            (POOLER_SAFE_REPLAY, "pooler_safe_floor_replay", "floor_replay"),
            ("new/pooler_safe_floor_new", "new", "pooler_safe_floor_new"),
            ("replay/pooler_safe_floor_replay", "replay", "pooler_safe_floor_replay"),
            // The pooler-safe way (prepared once per backend) and unnamed statements against the default's named
            // statements.
            ("new_pooler_safe/new", "new_pooler_safe", "new"),
            ("new_tx_pooler_safe/new_tx", "new_tx_pooler_safe", "new_tx"),
            ("replay_pooler_safe/replay", "replay_pooler_safe", "replay"),
            ("new_unnamed/new", "new_unnamed", "new"),
            ("replay_unnamed/replay", "replay_unnamed", "replay"),
            ("redis_new/redis_floor_new", "redis_new", "redis_floor_new"),
            // Issue 12's floor: the library's own scripts, called plainly (`redis_lua_floor`).
            ("redis_new/redis_lua_floor_new", "redis_new", "redis_lua_floor_new"),
            ("redis_lua_floor_new/redis_floor_new", "redis_lua_floor_new", "redis_floor_new"),
            ("redis_replay/redis_floor_replay", "redis_replay", "redis_floor_replay"),
            // The library on Redis against the library on PostgreSQL, in the same run.
            ("redis_new/new", "redis_new", "new"),
            ("redis_replay/replay", "redis_replay", "replay"),
            (MEMORY_NEW, "mem_new", "bare"),
            (MEMORY_REPLAY, "mem_replay", "bare"),
        ]
        .into_iter()
        .filter_map(|(label, library, floor)| Some((label, Ratio::of(self.measured(library)?, self.measured(floor)?))))
        .collect()
    }

    /// Per pair: each round's requests/s ratio, and their median.
    pub(crate) fn round_ratios(&self) -> Vec<(&'static str, Vec<f64>, f64)> {
        FLOOR_PAIRS
            .iter()
            .filter_map(|(label, library, floor)| {
                let ratios: Vec<f64> = self
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
                let median = judge::median(&ratios);
                Some((*label, ratios, median))
            })
            .collect()
    }

    /// The verdict on a pair's median ratio against `target`: NOT met when one side answered successes it did not
    /// store; inconclusive on too few rounds, too wide a spread, or other load (see `judge`).
    fn ratio_verdict(&self, label: &str, rounds: &[f64], median: f64, target: f64) -> Verdict {
        let Some((_, library, floor)) = FLOOR_PAIRS.iter().find(|(pair, _, _)| *pair == label) else {
            return Verdict::judge(median >= target, vec![format!("unknown pair {label}")]);
        };
        if [library, floor].iter().any(|name| self.measured(name).and_then(|m| m.unstored).unwrap_or(0) > 0) {
            return Verdict::failed();
        }
        let other_load = self
            .per_round
            .iter()
            .flatten()
            .filter(|(scenario, _)| scenario == library || scenario == floor)
            .map(|(_, measured)| measured.other_cores)
            .fold(0.0, f64::max);
        let mut doubts = judge::round_doubts(rounds);
        doubts.extend(judge::load_doubt(other_load));
        Verdict::judge(median >= target, doubts)
    }

    /// The lines that answer issue 15's "Done when" for this run's part (PostgreSQL ratios, memory store), issue
    /// 25's (the library's own cost on Redis and on the memory store), and issue 29's check of the stored responses.
    pub(crate) fn targets(&self) -> Vec<String> {
        let mut lines = Vec::new();
        // Issue 15's targets are PostgreSQL's; Redis and the memory store have issue 25's, below.
        for (label, rounds, median) in self
            .round_ratios()
            .into_iter()
            .filter(|(label, _, _)| !label.starts_with("redis") && !label.starts_with("mem_"))
        {
            let judged = if [POOLER_SAFE_NEW, POOLER_SAFE_REPLAY].contains(&label) {
                "(no target: the most a pooler-safe layer can reach)".to_owned()
            } else {
                let verdict = self.ratio_verdict(label, &rounds, median, TARGET_FLOOR_RATIO);
                format!("(target >= {TARGET_FLOOR_RATIO}): {verdict}")
            };
            lines.push(median_line(label, &rounds, median, &judged));
        }
        lines.extend(self.own_cost_targets());
        if let Some(m) = self.measured("mem_new") {
            lines.push(format!(
                "memory store, fresh keys: p99 {:.1} us (target < {TARGET_MEMORY_P99_US:.0} us): {}",
                m.p99_us,
                Verdict::judge(m.p99_us < TARGET_MEMORY_P99_US, judge::load_doubt(m.other_cores).into_iter().collect())
            ));
        }
        if let Some(growth) = &self.growth {
            let doubts = || judge::load_doubt(growth.measured.other_cores).into_iter().collect();
            lines.push(format!(
                "memory store growing 0 -> {} records: p99 {:.1} us (target < {TARGET_MEMORY_P99_US:.0} us): {}; \
                 worst request {:.1} us (target < {TARGET_MEMORY_MAX_US:.0} us): {}",
                growth.keys,
                growth.measured.p99_us,
                Verdict::judge(growth.measured.p99_us < TARGET_MEMORY_P99_US, doubts()),
                growth.max_us,
                Verdict::judge(growth.max_us < TARGET_MEMORY_MAX_US, doubts())
            ));
            lines.push(format!(
                "  (the store's own worst claim or completion meanwhile: {:.1} us; the rest of a slow request is \
                 waiting for a core, with {:.2} cores of other load on the machine)",
                growth.store_ops.max_us, growth.measured.other_cores
            ));
        }
        lines.extend(self.stored_lines());
        lines
    }

    /// Issue 29: every fresh key a PostgreSQL scenario counted as a success has its completed record. One line per
    /// scenario that fell short (NOT met), or one line for all when none did.
    fn stored_lines(&self) -> Vec<String> {
        let checked: Vec<(&str, u64, u64)> = self
            .outcomes
            .iter()
            .filter_map(|(name, outcome)| match outcome {
                Outcome::Measured(m) => Some((*name, m.unstored?, m.requests)),
                Outcome::NotImplemented(_) => None,
            })
            .collect();
        if checked.is_empty() {
            return Vec::new();
        }
        let short: Vec<String> = checked
            .iter()
            .filter(|(_, unstored, _)| *unstored > 0)
            .map(|(name, unstored, requests)| {
                format!(
                    "stored responses, {name}: {unstored} answers were 200 without a completed record (counted as \
                     errors; {requests} stored): {}",
                    Verdict::failed()
                )
            })
            .collect();
        if !short.is_empty() {
            return short;
        }
        let names: Vec<&str> = checked.iter().map(|(name, _, _)| *name).collect();
        vec![format!(
            "stored responses: every success of {} has its completed record: {}",
            names.join(", "),
            Verdict::judge(true, Vec::new())
        )]
    }

    /// The lines that answer issue 25's "Done when": on Redis, fresh keys and replays against the least-work
    /// floors; on the memory store, both against `bare`. Beside them, unjudged, fresh keys against the library's own
    /// scripts called plainly (what the Rust layer costs above them).
    fn own_cost_targets(&self) -> Vec<String> {
        let rounds = self.round_ratios();
        let line = |pair: &str, target: Option<f64>| {
            let (label, each, median) = rounds.iter().find(|(label, _, _)| *label == pair)?;
            let judged = match target {
                Some(target) => format!("(target >= {target}): {}", self.ratio_verdict(label, each, *median, target)),
                None => "(the library's scripts called plainly: reported, no target)".to_owned(),
            };
            Some(median_line(label, each, *median, &judged))
        };
        [
            line("redis_new/redis_floor_new", Some(TARGET_REDIS_FRESH_RATIO)),
            line("redis_replay/redis_floor_replay", Some(TARGET_REDIS_REPLAY_RATIO)),
            line("redis_new/redis_lua_floor_new", None),
            line(MEMORY_NEW, Some(TARGET_MEMORY_FRESH_RATIO)),
            line(MEMORY_REPLAY, Some(TARGET_MEMORY_REPLAY_RATIO)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    pub(crate) fn print(&self) {
        let options = &self.options;
        println!(
            "\n{} s measured per scenario after {} s warm-up, {} connection(s), {} worker(s), {} round(s)\n",
            options.seconds, options.warmup, options.concurrency, options.workers, options.rounds
        );
        println!(
            "| scenario | req/s | p50 (us) | p99 (us) | server CPU us/req | PostgreSQL CPU us/req | client CPU us/req \
             | other load (cores) | requests | errors | not stored |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (name, outcome) in &self.outcomes {
            match outcome {
                Outcome::Measured(m) => println!(
                    "| {name} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {} | {} |",
                    m.rps,
                    m.p50_us,
                    m.p99_us,
                    m.server_cpu_us,
                    m.postgres_cpu_us,
                    m.client_cpu_us,
                    m.other_cores,
                    m.requests,
                    m.errors,
                    m.unstored.map_or_else(|| "-".to_owned(), |unstored| unstored.to_string())
                ),
                Outcome::NotImplemented(reason) => println!("| {name} | {reason} | | | | | | | | | |"),
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

/// One pair's line of a target block: its rounds' requests/s ratios, their median, and how it is judged.
fn median_line(label: &str, rounds: &[f64], median: f64, judged: &str) -> String {
    let each: Vec<String> = rounds.iter().map(|ratio| format!("{ratio:.3}")).collect();
    format!("{label}: req/s ratio median {median:.3} of {} round(s) [{}] {judged}", rounds.len(), each.join(", "))
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

pub(crate) fn create_parent(path: &str) -> Result<(), String> {
    match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|error| format!("cannot create {}: {error}", parent.display()))
        }
        _ => Ok(()),
    }
}
