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

/// Why an example did not print its start-up line: what it wrote to stderr before it exited.
struct StartFailure {
    stderr: String,
}

impl StartFailure {
    /// The port, free when [`free_port`] released it, was taken before the example bound it (by another test's
    /// process or by an outgoing connection's ephemeral port): another port will do.
    fn port_taken(&self) -> bool {
        self.stderr.contains("Address already in use")
    }
}

impl ExampleProcess {
    /// Starts `examples/<name>` on a free port with `DATABASE_URL` (or without it) and waits for its start-up line.
    pub fn start(name: &str, database_url: Option<&str>) -> Self {
        Self::start_with_env(name, database_url, &[])
    }

    /// [`ExampleProcess::start`] with more environment variables (e.g. `DATABASE_LISTEN_URL`).
    pub fn start_with_env(name: &str, database_url: Option<&str>, env: &[(&str, &str)]) -> Self {
        const ATTEMPTS: usize = 5;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match Self::try_start(name, free_port(), database_url, env) {
                Ok(process) => return process,
                Err(failure) if failure.port_taken() => last = Some(failure),
                Err(failure) => {
                    panic!("the {name} example exited before its start-up line; its stderr:\n{}", failure.stderr)
                }
            }
        }
        let stderr = last.map(|failure| failure.stderr).unwrap_or_default();
        panic!("the {name} example found no free port in {ATTEMPTS} attempts; its last stderr:\n{stderr}")
    }

    /// Starts `examples/<name>` on exactly `port`: a restart that clients must find where the first process was.
    pub fn start_on(port: u16, name: &str, database_url: Option<&str>, env: &[(&str, &str)]) -> Self {
        Self::try_start(name, port, database_url, env).unwrap_or_else(|failure| {
            panic!("the {name} example exited before its start-up line on port {port}; its stderr:\n{}", failure.stderr)
        })
    }

    fn try_start(
        name: &str,
        port: u16,
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Self, StartFailure> {
        let mut command = Command::new(example_binary(name));
        // Only what the test passes chooses the stores: nothing inherited from the environment running the suite.
        for inherited in [
            "DATABASE_LISTEN_URL",
            "REDIS_URL",
            "REDIS_CLUSTER_NODES",
            "REDIS_KEY_PREFIX",
            "REDIS_REPLICA_ACKS",
            "REDIS_REPLICA_ACKS_TIMEOUT_MS",
            // The orders example relays its outbox in-process when a broker is named.
            "AMQP_URL",
            "NATS_URL",
        ] {
            command.env_remove(inherited);
        }
        command.envs(env.iter().copied());
        command
            .env("BIND", format!("127.0.0.1:{port}"))
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        let mut child = command.spawn().unwrap_or_else(|error| panic!("start the {name} example: {error}"));
        let stderr = StderrTail::drain(child.stderr.take().expect("piped stderr"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut banner = String::new();
        let mut stdout = BufReader::new(stdout);
        stdout.read_line(&mut banner).expect("read the start-up line");
        // The rest of its output is read and dropped: with the pipe closed, the example's next line would fail
        // (`println!` panics on a broken pipe) and take down whatever task printed it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        if banner.is_empty() {
            let _ = child.wait();
            return Err(StartFailure { stderr: stderr.finish() });
        }
        assert!(banner.contains(&format!("http://127.0.0.1:{port}")), "start-up line names the URL: {banner:?}");
        Ok(Self { child, port, base: format!("http://127.0.0.1:{port}"), banner })
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

/// The example's stderr, read on a thread so that a chatty process never blocks on a full pipe; the last
/// [`StderrTail::KEPT`] bytes are kept for a failure message.
struct StderrTail {
    reader: std::thread::JoinHandle<String>,
}

impl StderrTail {
    const KEPT: usize = 16 * 1024;

    fn drain(stderr: std::process::ChildStderr) -> Self {
        let reader = std::thread::spawn(move || {
            let mut tail = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                tail.push_str(&line);
                tail.push('\n');
                if tail.len() > 2 * Self::KEPT {
                    let cut = (tail.len() - Self::KEPT..tail.len()).find(|&at| tail.is_char_boundary(at));
                    tail.drain(..cut.unwrap_or(tail.len()));
                }
            }
            tail
        });
        Self { reader }
    }

    /// Everything kept, once the process has exited and closed its stderr.
    fn finish(self) -> String {
        self.reader.join().unwrap_or_default()
    }
}
