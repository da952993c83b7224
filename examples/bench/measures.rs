//! One scenario's summary, its ratio to its floor, and the memory store's own operation times and growth.

use serde_json::{Value, json};

use crate::load::Stats;

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
    /// Successes whose record was not completed afterwards (counted in `errors`); `None`: not checked.
    pub(crate) unstored: Option<u64>,
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
            unstored: stats.unstored,
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
            "unstored": self.unstored,
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

pub(crate) fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A ratio of the library's scenario to its floor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ratio {
    /// requests/s of the library over requests/s of the floor: 1.0 is the floor's throughput, less is slower.
    pub(crate) rps: f64,
    /// p50 of the library over p50 of the floor: 1.0 is the floor's latency, more is slower.
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    /// Server CPU per request of the library over the floor's (more is costlier).
    pub(crate) server_cpu: f64,
    /// PostgreSQL CPU per request of the library over the floor's.
    pub(crate) postgres_cpu: f64,
}

impl Ratio {
    pub(crate) fn of(library: Measured, floor: Measured) -> Self {
        Self {
            rps: library.rps / floor.rps,
            p50: library.p50_us / floor.p50_us,
            p99: library.p99_us / floor.p99_us,
            server_cpu: library.server_cpu_us / floor.server_cpu_us,
            postgres_cpu: library.postgres_cpu_us / floor.postgres_cpu_us,
        }
    }

    pub(crate) fn to_json(self) -> Value {
        json!({
            "rps": round3(self.rps),
            "p50": round3(self.p50),
            "p99": round3(self.p99),
            "server_cpu_per_request": round3(self.server_cpu),
            "postgres_cpu_per_request": round3(self.postgres_cpu),
        })
    }
}

pub(crate) fn round3(value: f64) -> f64 {
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

    pub(crate) fn to_json(self) -> Value {
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
