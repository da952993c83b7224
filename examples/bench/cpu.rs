//! Where the CPU time of a measurement went: this process's client thread, its server threads, PostgreSQL, and
//! everything else on the machine (the noise indicator: on a shared 2-core machine a compiler running elsewhere
//! changes requests/s, not CPU time per request).
//!
//! Read from `/proc` (Linux): `/proc/stat` for the machine, `/proc/self/task/*/stat` for this process's threads (the
//! main thread runs the client; the others are the actix server), and `/proc/*/stat` of PostgreSQL's processes
//! that work for this run: the backends of this run's connections (`application_name` [`APPLICATION_NAME`], found
//! in `pg_stat_activity`) and the server's own processes (WAL writer, checkpointer...). Backends of other clients
//! of the same server count as "other". The Redis scenarios' server, when it runs on this machine
//! ([`count_redis_server`]), is a party of its own: it is the store's work, as PostgreSQL's is, not other load.

use std::sync::OnceLock;
use std::time::Instant;

use deadpool_postgres::Pool;

/// The `application_name` of every connection of the harness.
pub(crate) const APPLICATION_NAME: &str = "idempotent-bench";

/// `USER_HZ`: the unit of the `/proc` CPU counters, 100 on every mainstream Linux architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds spent by each party.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUse {
    pub(crate) client: f64,
    pub(crate) server: f64,
    pub(crate) postgres: f64,
    /// The local Redis server's, when the Redis scenarios run ([`count_redis_server`]).
    pub(crate) redis: f64,
    /// Busy time of the machine not spent by the parties above.
    pub(crate) other: f64,
}

/// The process of the Redis server the Redis scenarios use, when it runs on this machine.
static REDIS_SERVER: OnceLock<u32> = OnceLock::new();

/// Counts the Redis server process `pid` as a party of every later measurement (a no-op after the first call).
pub(crate) fn count_redis_server(pid: u32) {
    let _first = REDIS_SERVER.set(pid);
}

/// Whether `pid` is a local process named like a Redis server (`redis-server`, or Valkey's): a remote server's
/// process id names nothing here, or another process.
pub(crate) fn is_local_redis_server(pid: u32) -> bool {
    ticks(&format!("/proc/{pid}/stat"))
        .is_some_and(|(name, _)| name.starts_with("redis-server") || name.starts_with("valkey-server"))
}

impl CpuUse {
    pub(crate) fn add(&mut self, other: Self) {
        self.client += other.client;
        self.server += other.server;
        self.postgres += other.postgres;
        self.redis += other.redis;
        self.other += other.other;
    }
}

/// Cumulative counters at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    at: Instant,
    machine_busy: u64,
    client: u64,
    server: u64,
    postgres: u64,
    redis: u64,
}

impl CpuSample {
    /// Samples the counters; `pool` finds this run's backends.
    pub(crate) async fn now(pool: &Pool) -> Self {
        let backends = match pool.get().await {
            Ok(client) => client
                .query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", &[&APPLICATION_NAME])
                .await
                .map(|rows| rows.iter().map(|row| row.get::<_, i32>(0).to_string()).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let (client, server) = own_threads();
        let redis =
            REDIS_SERVER.get().and_then(|pid| ticks(&format!("/proc/{pid}/stat"))).map_or(0, |(_, ticks)| ticks);
        Self { at: Instant::now(), machine_busy: machine_busy(), client, server, postgres: postgres(&backends), redis }
    }

    /// The CPU time spent between `self` and a later sample.
    pub(crate) fn until(&self, later: &Self) -> CpuUse {
        let seconds = |from: u64, to: u64| to.saturating_sub(from) as f64 / TICKS_PER_SECOND;
        let client = seconds(self.client, later.client);
        let server = seconds(self.server, later.server);
        let postgres = seconds(self.postgres, later.postgres);
        let redis = seconds(self.redis, later.redis);
        let busy = seconds(self.machine_busy, later.machine_busy);
        debug_assert!(later.at >= self.at);
        CpuUse { client, server, postgres, redis, other: (busy - client - server - postgres - redis).max(0.0) }
    }
}

/// Busy ticks of all CPUs: user, nice, system, irq, softirq, steal (not idle nor iowait).
fn machine_busy() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else { return 0 };
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|field| field.parse().ok()).collect();
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&index| fields.get(index)).sum()
}

/// utime + stime of one `/proc/.../stat` file, and its command name.
fn ticks(path: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The name is in parentheses and may contain spaces; the fields after it are space-separated.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are utime and stime; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Ticks of this process's main thread (the client) and of its other threads (the server).
fn own_threads() -> (u64, u64) {
    let main = std::process::id().to_string();
    let (mut client, mut server) = (0, 0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return (0, 0) };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        if let Some((_, ticks)) = ticks(&format!("/proc/self/task/{tid}/stat")) {
            if tid == main {
                client += ticks;
            } else {
                server += ticks;
            }
        }
    }
    (client, server)
}

/// Ticks of this run's backends and of PostgreSQL's own processes (those that serve no client connection).
fn postgres(backends: &[String]) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let mut total = 0;
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|byte| byte.is_ascii_digit()) {
            continue;
        }
        let Some((name, ticks)) = ticks(&format!("/proc/{pid}/stat")) else { continue };
        if name != "postgres" {
            continue;
        }
        // A client backend's title names its client: `postgres: 15/main: user db 127.0.0.1(5678) idle`.
        let title = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let serves_a_client = title.contains('(') || title.contains("[local]");
        if !serves_a_client || backends.contains(&pid) {
            total += ticks;
        }
    }
    total
}
