//! The machine the numbers come from: cores, CPU model, memory, load, versions.

use deadpool_postgres::Pool;
use serde_json::{Value, json};

/// The machine the numbers come from.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
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
