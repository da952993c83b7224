//! The benchmark harness of the workspace (issue 7): what `#[idempotent]` costs on PostgreSQL, next to the least
//! any PostgreSQL idempotency layer must do.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run --release --example bench -- --seconds 5 --concurrency 16 --json bench.json --chart docs/bench/throughput.svg
//! DATABASE_URL=... cargo run --release --example bench -- --scale                    # 10^4 and 10^7 rows, purge
//! DATABASE_URL=... cargo run --release --example bench -- --scale --scale-rows 1000000  # a quicker check
//! DATABASE_URL=... REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example bench -- --redis \
//!     --only redis_floor_new,redis_lua_floor_new,redis_new,redis_floor_replay,redis_replay --rounds 3 --no-memory
//! ```
//!
//! With `--strict` the process exits with status 3 when a verdict is NOT met or inconclusive (`judge`).
//!
//! Everything runs in this process: actix apps on `127.0.0.1:0` (one worker by default), driven over real HTTP on
//! loopback by an `awc` client with a keep-alive pool of `--concurrency` connections, each connection one
//! closed-loop stream of requests. Every run works in a fresh schema `bench_<pid>`, dropped at the end. The method
//! and the results are in `BENCHMARKS.md`.

mod app;
mod chart;
mod cpu;
mod floor;
mod judge;
mod load;
mod machine;
mod measures;
mod options;
mod pooler_safe_floor;
mod redis_app;
mod redis_lua_floor;
mod report;
mod run_schema;
mod scale;
mod timed_store;

use std::process::ExitCode;

use crate::load::{Keys, Plan, Stats};
use crate::machine::Machine;
use crate::measures::{Growth, Measured, Outcome, StoreOps};
pub(crate) use crate::options::Options;
use crate::options::USAGE;
use crate::run_schema::RunSchema;

/// One row of the results table: a name and how to drive it.
struct Scenario {
    name: &'static str,
    /// `None`: not measurable yet, with the reason printed in its row.
    plan: Result<Plan, &'static str>,
    /// The server that answers it.
    target: Target,
}

/// Which server a scenario is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The server of the PostgreSQL scenarios (library routes on `PostgresStore`, the floor, `bare`).
    Postgres,
    /// The server whose `POST /lib` runs on a `MemoryStore`.
    Memory,
    /// The server whose `POST /lib` runs on a `RedisStore`, and `POST /floor` on the Redis floor.
    Redis,
}

/// The scenarios, in the order they run and are reported.
fn scenarios(options: &Options) -> Vec<Scenario> {
    let cycle = || Keys::Cycle { prefix: fastrand::u32(..), count: options.replay_keys };
    // Every fresh key a PostgreSQL scenario answers 200 must then have its completed record (see `load`).
    let on_postgres = |name, plan: Plan| {
        let plan = match record_table(plan.path()) {
            Some(table) => plan.stored_in(table),
            None => plan,
        };
        Scenario { name, plan: Ok(plan), target: Target::Postgres }
    };
    let on_memory = |name, plan| Scenario { name, plan: Ok(plan), target: Target::Memory };
    let on_redis = |name, plan| Scenario { name, plan: Ok(plan), target: Target::Redis };
    let mut list = vec![
        on_postgres("bare", Plan::new(app::BARE_PATH, Keys::Fresh)),
        on_postgres("floor_new", Plan::new(app::FLOOR_PATH, Keys::Fresh)),
        on_postgres("new", Plan::new(app::LIB_PATH, Keys::Fresh)),
        on_postgres("floor_new_tx", Plan::new(app::FLOOR_TX_PATH, Keys::Fresh)),
        new_tx(),
        on_postgres("floor_replay", Plan::new(app::FLOOR_PATH, cycle()).header(app::FLOOR_REPLAY_HEADER).replayed()),
        on_postgres("replay", Plan::new(app::LIB_PATH, cycle()).replayed()),
        // The floor sent the cheapest way that is correct behind a transaction-mode pooler: the most the
        // library's pooler-safe way can reach.
        on_postgres("pooler_safe_floor_new", Plan::new(pooler_safe_floor::POOLER_SAFE_FLOOR_PATH, Keys::Fresh)),
        on_postgres(
            "pooler_safe_floor_replay",
            Plan::new(pooler_safe_floor::POOLER_SAFE_FLOOR_PATH, cycle()).header(app::FLOOR_REPLAY_HEADER).replayed(),
        ),
        // The same `#[idempotent(scope = "global")]` route on a MemoryStore: fresh keys, then retries.
        on_memory("mem_new", Plan::new(app::LIB_PATH, Keys::Fresh)),
        on_memory("mem_replay", Plan::new(app::LIB_PATH, cycle()).replayed()),
        // The same routes the pooler-safe way (`with_pooler_safe_statements`): what a pooler that does not track
        // prepared statements costs, against the default's named statements
        // costs on a direct connection.
        on_postgres("new_pooler_safe", Plan::new(app::LIB_POOLER_SAFE_PATH, Keys::Fresh)),
        on_postgres("new_tx_pooler_safe", Plan::new(app::LIB_TX_POOLER_SAFE_PATH, Keys::Fresh)),
        on_postgres("replay_pooler_safe", Plan::new(app::LIB_POOLER_SAFE_PATH, cycle()).replayed()),
        // And sent unnamed (`with_unnamed_statements`, parsed and planned every time): what the default saves.
        on_postgres("new_unnamed", Plan::new(app::LIB_UNNAMED_PATH, Keys::Fresh)),
        on_postgres("replay_unnamed", Plan::new(app::LIB_UNNAMED_PATH, cycle()).replayed()),
    ];
    if options.redis || options.all {
        // The same `/lib` route on a RedisStore, and the floor on the same Redis (see `redis_app`).
        list.extend([
            on_redis("redis_floor_new", Plan::new(app::FLOOR_PATH, Keys::Fresh)),
            on_redis("redis_lua_floor_new", Plan::new(redis_lua_floor::LUA_FLOOR_PATH, Keys::Fresh)),
            on_redis("redis_new", Plan::new(app::LIB_PATH, Keys::Fresh)),
            on_redis(
                "redis_floor_replay",
                Plan::new(app::FLOOR_PATH, cycle()).header(app::FLOOR_REPLAY_HEADER).replayed(),
            ),
            on_redis("redis_replay", Plan::new(app::LIB_PATH, cycle()).replayed()),
        ]);
    }
    list
}

/// The table (in the run's schema) where a PostgreSQL route keeps its records: the floors' or the library's;
/// `bare` keeps none.
fn record_table(path: &str) -> Option<&'static str> {
    match path {
        app::BARE_PATH => None,
        app::FLOOR_PATH | app::FLOOR_TX_PATH | pooler_safe_floor::POOLER_SAFE_FLOOR_PATH => Some(floor::FLOOR_TABLE),
        _ => Some(app::LIBRARY_TABLE),
    }
}

/// `new_tx`: a fresh key on a transactional route (claim, handler and stored response in one transaction). A
/// scenario the runtime cannot serve yet returns `Err(reason)` here instead, printed as its row and `null` in JSON.
fn new_tx() -> Scenario {
    let plan = Plan::new(app::LIB_TX_PATH, Keys::Fresh).stored_in(app::LIBRARY_TABLE);
    Scenario { name: "new_tx", plan: Ok(plan), target: Target::Postgres }
}

#[actix_web::main]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "error: DATABASE_URL is not set; the benchmark needs a PostgreSQL server, e.g.\n  \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --release --example bench"
        );
        return ExitCode::from(2);
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; numbers are only meaningful with --release");
    }
    let schema = match RunSchema::create(&url, "").await {
        Ok(schema) => schema,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(&options, &schema).await;
    schema.drop_schema().await;
    if let Err(message) = result {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    let (met, not_met, inconclusive) = judge::tally();
    println!("\nverdicts: {met} met, {not_met} NOT met, {inconclusive} inconclusive");
    if options.strict && not_met + inconclusive > 0 {
        eprintln!("--strict: {not_met} verdict(s) NOT met and {inconclusive} inconclusive");
        return ExitCode::from(judge::STRICT_EXIT_CODE);
    }
    ExitCode::SUCCESS
}

async fn run(options: &Options, schema: &RunSchema) -> Result<(), String> {
    schema.prepare().await?;
    let machine = Machine::read(&schema.admin).await;
    machine.print();
    let pool = schema.pool(options.concurrency)?;
    let server = app::start(pool, options.workers).map_err(|error| format!("cannot start the server: {error}"))?;
    println!(
        "server: {} ({} worker(s)); client: awc, {} keep-alive connections; schema {}",
        server.base, options.workers, options.concurrency, schema.name
    );
    let result = async {
        if options.scale {
            return scale::run(options, schema, &server, &machine).await;
        }
        let mut targets = scenarios_run(options, schema, &server, &machine).await?;
        if options.all {
            println!("\n--all: the scale run follows");
            targets.extend(scale::run(options, schema, &server, &machine).await?);
        }
        Ok(targets)
    }
    .await;
    server.stop().await;
    let targets = result?;
    if !targets.is_empty() {
        println!("\ntargets (this run):");
        for line in targets {
            println!("  {line}");
        }
    }
    Ok(())
}

/// Where `--all` writes the scale run's JSON: beside the scenarios' file, `-scale` added to its name.
pub(crate) fn scale_json_path(options: &Options) -> Option<String> {
    let path = options.json.as_deref()?;
    if !options.all {
        return Some(path.to_owned());
    }
    Some(match path.strip_suffix(".json") {
        Some(stem) => format!("{stem}-scale.json"),
        None => format!("{path}-scale"),
    })
}

async fn scenarios_run(
    options: &Options,
    schema: &RunSchema,
    server: &app::Server,
    machine: &Machine,
) -> Result<Vec<String>, String> {
    if let Some(only) = &options.only
        && !scenarios(options).iter().any(|scenario| only.iter().any(|name| name == scenario.name))
        && !only.iter().any(|name| name == GROWTH)
    {
        return Err(format!("--only {only:?} names no scenario"));
    }
    let memory_server =
        app::start_memory(options.workers).map_err(|error| format!("cannot start the memory-store server: {error}"))?;
    let redis_wanted = scenarios(options).iter().any(|scenario| {
        scenario.target == Target::Redis
            && options.only.as_ref().is_none_or(|only| only.iter().any(|n| n == scenario.name))
    });
    let redis_server = if redis_wanted {
        match redis_app::start(options.workers).await {
            Ok(server) => Some(server),
            Err(error) => {
                memory_server.stop().await;
                return Err(error);
            }
        }
    } else {
        None
    };
    let result = scenarios_on(options, schema, server, &memory_server, redis_server.as_ref(), machine).await;
    memory_server.stop().await;
    if let Some(redis_server) = redis_server {
        redis_server.stop().await;
    }
    result
}

async fn scenarios_on(
    options: &Options,
    schema: &RunSchema,
    server: &app::Server,
    memory_server: &app::Server,
    redis_server: Option<&redis_app::RedisServer>,
    machine: &Machine,
) -> Result<Vec<String>, String> {
    let mut list = scenarios(options);
    if let Some(only) = &options.only {
        list.retain(|scenario| only.iter().any(|name| name == scenario.name));
    }
    let redis_base = redis_server.map(|redis| redis.server.base.clone()).unwrap_or_default();
    let base_of = |scenario: &Scenario| match scenario.target {
        Target::Postgres => &server.base,
        Target::Memory => &memory_server.base,
        Target::Redis => &redis_base,
    };
    // Redis's own CPU per scenario (all rounds): seconds and requests.
    let mut redis_cpu: Vec<(&'static str, f64, u64)> = Vec::new();
    // Replay scenarios need completed records: made once, through the same routes, before any measurement.
    for scenario in &list {
        if let Ok(plan) = &scenario.plan
            && let Some(setup) = plan.setup()
        {
            load::precreate(base_of(scenario), &setup, options.concurrency).await?;
        }
    }
    let mut merged: Vec<Option<Stats>> = list.iter().map(|_| None).collect();
    // Each round's own figures too: the ratios to the floors are reported per round and as their median.
    let mut per_round: Vec<Vec<(&'static str, Measured)>> = Vec::new();
    for round in 0..options.rounds {
        if options.rounds > 1 {
            println!("round {}/{}", round + 1, options.rounds);
        }
        let mut this_round = Vec::new();
        // Every other round runs the list backwards: a scenario's place in a round costs or saves it something
        // (the first fresh-key Redis scenario of rounds 2 and 3 cost Redis up to 1.9 times as much per request,
        // whichever it was), and alternating gives each of a pair the place of the other.
        let mut order: Vec<(&Scenario, &mut Option<Stats>)> = list.iter().zip(&mut merged).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for (scenario, total) in order {
            let Ok(plan) = &scenario.plan else { continue };
            let redis_url = redis_server.filter(|_| scenario.target == Target::Redis).map(|redis| redis.url.as_str());
            let redis_cpu_before = match redis_url {
                Some(url) => redis_app::redis_cpu_seconds(url).await,
                None => None,
            };
            let stats = load::drive(
                base_of(scenario),
                plan,
                options.concurrency,
                options.warm_up(),
                options.measure(),
                &schema.admin,
            )
            .await
            .map_err(|error| format!("{}: {error}", scenario.name))?;
            println!("  {:<13} {}", scenario.name, stats.summary());
            if let (Some(url), Some(before)) = (redis_url, redis_cpu_before)
                && let Some(after) = redis_app::redis_cpu_seconds(url).await
            {
                // Counted from the end of the warm-up would be more exact; the warm-up's share is the same for
                // the library and the floor, so this line compares them, it does not give absolute figures.
                let seconds = after - before;
                println!(
                    "  {:<13} Redis CPU {:.1} us/req (warm-up included)",
                    "",
                    seconds * 1e6 / stats.requests as f64
                );
                match redis_cpu.iter_mut().find(|(name, _, _)| *name == scenario.name) {
                    Some((_, total, requests)) => {
                        *total += seconds;
                        *requests += stats.requests;
                    }
                    None => redis_cpu.push((scenario.name, seconds, stats.requests)),
                }
            }
            this_round.push((scenario.name, Measured::from(&stats)));
            match total {
                Some(total) => total.merge(stats),
                None => *total = Some(stats),
            }
        }
        per_round.push(this_round);
    }
    let growth_wanted = options.only.as_ref().is_none_or(|only| only.iter().any(|name| name == GROWTH));
    let growth =
        if options.growth_keys > 0 && growth_wanted { Some(memory_growth(options, schema).await?) } else { None };
    let outcomes: Vec<(&str, Outcome)> = list
        .iter()
        .zip(merged)
        .map(|(scenario, stats)| {
            let outcome = match (&scenario.plan, stats) {
                (Err(reason), _) => Outcome::NotImplemented(reason),
                (Ok(_), Some(stats)) => Outcome::Measured(Measured::from(&stats)),
                (Ok(_), None) => Outcome::NotImplemented("not run"),
            };
            (scenario.name, outcome)
        })
        .collect();
    let memory = if options.memory { Some(load::measure_memory(&server.base).await?) } else { None };
    let results =
        report::Results { options: options.clone(), machine: machine.clone(), outcomes, per_round, growth, memory };
    results.print();
    for (name, seconds, requests) in &redis_cpu {
        println!(
            "{name:<20} Redis server CPU {:.1} us/req (all rounds, warm-ups included)",
            seconds * 1e6 / *requests as f64
        );
    }
    if let Some(path) = &options.json {
        report::write_file(path, &results.to_json())?;
        println!("wrote {path}");
    }
    if let Some(path) = &options.chart {
        report::chart(path, &results)?;
        println!("wrote {path}");
    }
    Ok(results.targets())
}

/// The name of the memory store's growth measurement (for `--only`).
const GROWTH: &str = "mem_growth";

/// The worst requests while a new memory store grows by `--growth-keys` records: fresh keys only, every request
/// measured, on a server of its own (so the store starts empty).
async fn memory_growth(options: &Options, schema: &RunSchema) -> Result<Growth, String> {
    let server = app::start_memory_timed(options.workers)
        .map_err(|error| format!("cannot start the memory-store server: {error}"))?;
    println!("\nmemory store growing from 0 to {} records (fresh keys, every request measured)", options.growth_keys);
    let plan = Plan::new(app::LIB_PATH, Keys::Fresh);
    drop(timed_store::take_durations());
    let stats = load::drive_count(&server.base, &plan, options.concurrency, options.growth_keys, &schema.admin).await;
    server.stop().await;
    let stats = stats.map_err(|error| format!("mem_growth: {error}"))?;
    let store_ops = StoreOps::from(&timed_store::take_durations());
    println!("  {GROWTH:<13} {}", stats.summary());
    println!("  {:<13} {}", "", store_ops.summary());
    Ok(Growth::from_stats(options.growth_keys, &stats, store_ops))
}
