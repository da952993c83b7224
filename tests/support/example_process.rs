//! Example binaries run as real server processes, as other tools drive them.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The binary of `examples/<name>.rs`, brought up to date first: `cargo test --test <one>` does not rebuild
/// examples, and a stale binary would test old code. (A no-op when `cargo test` already built it.)
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|done| done == name) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|error| panic!("run cargo build --example {name}: {error}"));
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_owned());
    }
    profile_dir.join("examples").join(name)
}

/// A free loopback port (bound and released: the example binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port()
}

/// A running example process; killed (SIGKILL) when dropped.
pub struct ExampleProcess {
    child: Child,
    pub port: u16,
    pub base: String,
    pub banner: String,
}

impl ExampleProcess {
    /// Starts `examples/<name>` on `port` with `DATABASE_URL` (or without it) and waits for its start-up line.
    pub fn start(name: &str, port: u16, database_url: Option<&str>) -> Self {
        Self::start_with_env(name, port, database_url, &[])
    }

    /// [`ExampleProcess::start`] with more environment variables (e.g. `DATABASE_LISTEN_URL`).
    pub fn start_with_env(name: &str, port: u16, database_url: Option<&str>, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(example_binary(name));
        // Only what the test passes chooses the stores: nothing inherited from the environment running the suite.
        for inherited in [
            "DATABASE_LISTEN_URL",
            "REDIS_URL",
            "REDIS_CLUSTER_NODES",
            "REDIS_KEY_PREFIX",
            "REDIS_REPLICA_ACKS",
            "REDIS_REPLICA_ACKS_TIMEOUT_MS",
        ] {
            command.env_remove(inherited);
        }
        command.envs(env.iter().copied());
        command
            .env("BIND", format!("127.0.0.1:{port}"))
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        let mut child = command.spawn().unwrap_or_else(|error| panic!("start the {name} example: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut banner = String::new();
        BufReader::new(stdout).read_line(&mut banner).expect("read the start-up line");
        assert!(banner.contains(&format!("http://127.0.0.1:{port}")), "start-up line names the URL: {banner:?}");
        Self { child, port, base: format!("http://127.0.0.1:{port}"), banner }
    }

    /// kill -9: the process dies mid-whatever, with no chance to release anything.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the example");
        self.child.wait().expect("reap the example");
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
