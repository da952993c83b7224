//! The command line of the harness.

use std::time::Duration;

use idempotent_runtime::purge::{
    DEFAULT_PURGE_BATCH, DEFAULT_PURGE_MAX_DELETES_PER_SECOND, DEFAULT_PURGE_REST, PurgePace,
};

pub(crate) const USAGE: &str = "\
usage: cargo run --release --example bench -- [options]

  --seconds N        measured seconds per scenario (default 5)
  --warmup S         warm-up seconds before each measurement (default 1)
  --concurrency C    client connections, i.e. requests in flight (default 16); also the server's pool size
  --workers W        actix workers of the server under test (default 1)
  --rounds R         run the scenario list R times, interleaved, and merge the rounds (default 1)
  --replay-keys K    completed keys the replay scenarios cycle through (default 1000)
  --json PATH        write the results as JSON
  --chart PATH       write an SVG bar chart of the results (e.g. docs/bench/throughput.svg)
  --no-memory        skip the peak-RSS measurement (64 concurrent 1 MiB bodies)
  --only A,B         run only these scenarios (e.g. --only floor_replay,replay, to profile one of them;
                     mem_growth names the growth measurement)
  --scale            scale mode instead of the scenarios: claims at 10^4 and at --scale-rows pre-loaded records,
                     then a batched purge of expired records running concurrently with claims
  --scale-rows N     the large table size of --scale (default 10000000)
  --claim-rate R     --scale: the claims per second of the open-loop purge measurement (claims due at a fixed
                     rate, latency from when each was due); default half the closed-loop rate of claims alone
                     measured just before
  --purge-batch N    --scale: the records one batch of the runtime's purge looks at (default the runtime's default,
                     DEFAULT_PURGE_BATCH), to measure another pace
  --purge-rest R     --scale: the purge's rest after each batch, in multiples of the batch's duration (default the
                     runtime's default, DEFAULT_PURGE_REST)
  --purge-max-rate N --scale: the most expired records the runtime's purge deletes a second (default the runtime's
                     default, DEFAULT_PURGE_MAX_DELETES_PER_SECOND; 0: no cap)
  --strict           exit with status 3 when any verdict on a target is NOT met or inconclusive. Inconclusive:
                     a median of rounds over fewer than 3 rounds, or rounds spread over 1.15x (largest / smallest);
                     over 0.25 cores of other load during a measurement judged; a purge that ran out of expired
                     rows (its p99 rise; its rate unless above the target); a fresh-key success without its
                     completed record is NOT met (see BENCHMARKS.md, Method)
  --growth-keys N    fresh keys sent to a new memory store to find its worst request while it grows (default
                     1100000, i.e. past 10^6 records)
  --no-growth        skip that growth measurement
  --redis            add the Redis scenarios: redis_floor_new, redis_lua_floor_new, redis_new, redis_floor_replay,
                     redis_replay (the library's RedisStore against hand-written floors on the same Redis, the
                     second running the library's own scripts; REDIS_URL, default redis://127.0.0.1:6379); with
                     --only, name them to run them alone
  --all              every figure in one run: the scenarios (PostgreSQL, memory store and Redis), the growth, the
                     RSS measurement, then the --scale run (claims at 10^4 and --scale-rows records, and the purge)

DATABASE_URL (required) names the PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres";

/// The command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) seconds: f64,
    pub(crate) warmup: f64,
    pub(crate) concurrency: usize,
    pub(crate) workers: usize,
    pub(crate) rounds: usize,
    pub(crate) replay_keys: u64,
    pub(crate) json: Option<String>,
    pub(crate) chart: Option<String>,
    pub(crate) memory: bool,
    pub(crate) only: Option<Vec<String>>,
    pub(crate) scale: bool,
    pub(crate) scale_rows: u64,
    pub(crate) growth_keys: u64,
    pub(crate) redis: bool,
    pub(crate) all: bool,
    /// `--claim-rate`: the open-loop purge measurement's claims per second (`None`: half the closed-loop rate).
    pub(crate) claim_rate: Option<f64>,
    /// `--purge-batch`: the runtime purge's batch in the scale mode.
    pub(crate) purge_batch: usize,
    /// `--purge-rest`: the runtime purge's rest after each batch in the scale mode, in multiples of its duration.
    pub(crate) purge_rest: f64,
    /// `--purge-max-rate`: the runtime purge's cap in deleted records a second in the scale mode (0: none).
    pub(crate) purge_max_rate: u32,
    /// `--strict`: a verdict NOT met or inconclusive ends the process with a failure status.
    pub(crate) strict: bool,
}

impl Options {
    pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Self {
            seconds: 5.0,
            warmup: 1.0,
            concurrency: 16,
            workers: 1,
            rounds: 1,
            replay_keys: 1000,
            json: None,
            chart: None,
            memory: true,
            only: None,
            scale: false,
            scale_rows: 10_000_000,
            growth_keys: 1_100_000,
            redis: false,
            all: false,
            claim_rate: None,
            purge_batch: DEFAULT_PURGE_BATCH,
            purge_rest: DEFAULT_PURGE_REST,
            purge_max_rate: DEFAULT_PURGE_MAX_DELETES_PER_SECOND,
            strict: false,
        };
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--seconds" => options.seconds = number(&value("--seconds")?, "--seconds")?,
                "--warmup" => options.warmup = number(&value("--warmup")?, "--warmup")?,
                "--concurrency" => options.concurrency = number(&value("--concurrency")?, "--concurrency")?,
                "--workers" => options.workers = number(&value("--workers")?, "--workers")?,
                "--rounds" => options.rounds = number(&value("--rounds")?, "--rounds")?,
                "--replay-keys" => options.replay_keys = number(&value("--replay-keys")?, "--replay-keys")?,
                "--json" => options.json = Some(value("--json")?),
                "--chart" => options.chart = Some(value("--chart")?),
                "--no-memory" => options.memory = false,
                "--only" => options.only = Some(value("--only")?.split(',').map(str::to_owned).collect()),
                "--scale" => options.scale = true,
                "--scale-rows" => options.scale_rows = number(&value("--scale-rows")?, "--scale-rows")?,
                "--growth-keys" => options.growth_keys = number(&value("--growth-keys")?, "--growth-keys")?,
                "--no-growth" => options.growth_keys = 0,
                "--redis" => options.redis = true,
                "--all" => options.all = true,
                "--claim-rate" => options.claim_rate = Some(number(&value("--claim-rate")?, "--claim-rate")?),
                "--purge-batch" => options.purge_batch = number(&value("--purge-batch")?, "--purge-batch")?,
                "--purge-rest" => options.purge_rest = number(&value("--purge-rest")?, "--purge-rest")?,
                "--purge-max-rate" => {
                    options.purge_max_rate = number(&value("--purge-max-rate")?, "--purge-max-rate")?;
                }
                "--strict" => options.strict = true,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if options.seconds <= 0.0 || options.warmup < 0.0 {
            return Err("--seconds must be > 0 and --warmup >= 0".to_owned());
        }
        if options.concurrency == 0 || options.workers == 0 || options.rounds == 0 || options.replay_keys == 0 {
            return Err("--concurrency, --workers, --rounds and --replay-keys must be at least 1".to_owned());
        }
        if options.claim_rate.is_some_and(|rate| !(rate.is_finite() && rate > 0.0)) {
            return Err("--claim-rate must be > 0".to_owned());
        }
        if options.purge_batch == 0 || !(options.purge_rest.is_finite() && options.purge_rest >= 0.0) {
            return Err("--purge-batch must be at least 1 and --purge-rest >= 0".to_owned());
        }
        if options.scale_rows < 20_000 {
            return Err("--scale-rows must be at least 20000 (the small size is 10^4)".to_owned());
        }
        Ok(options)
    }

    /// The runtime purge's pace in the scale mode.
    pub(crate) fn purge_pace(&self) -> PurgePace {
        PurgePace {
            batch: self.purge_batch,
            rest: self.purge_rest,
            max_deletes_per_second: Some(self.purge_max_rate).filter(|max| *max > 0),
        }
    }

    pub(crate) fn measure(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    pub(crate) fn warm_up(&self) -> Duration {
        Duration::from_secs_f64(self.warmup)
    }
}

pub(crate) fn number<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, String> {
    text.replace('_', "").parse().map_err(|_| format!("{name}: {text:?} is not a valid number"))
}
