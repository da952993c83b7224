//! Redis for the suites: the shared server (`REDIS_URL`, default `redis://127.0.0.1:6379`) with one key prefix per
//! test, and private servers that a test may kill and restart without touching the shared one.
//!
//! If the shared server cannot be reached the test fails, saying how to start it: nothing is skipped in silence.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The server the suites use unless `REDIS_URL` says otherwise.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// `REDIS_URL`, or the default local server.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("idempotent-test:{}:{}:{}:", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), fastrand::u32(..))
}

/// A connection to the shared server, or a panic with the fix.
pub async fn shared_connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).expect("REDIS_URL is a redis:// URL");
    match tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection()).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => unreachable_redis(&error),
        Err(_) => unreachable_redis(&"no answer within 5 s"),
    }
}

pub fn unreachable_redis(error: &dyn std::fmt::Display) -> ! {
    panic!(
        "\n\nRedis is not reachable at {url}: {error}\n\
         The Redis suites need a real server (Redis >= 7). Start the local one with\n    \
         redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no \
         --dir /var/lib/redis --logfile /var/log/redis/ci.log\n\
         or point REDIS_URL at a server that accepts connections.\n",
        url = redis_url()
    )
}

/// Deletes every key under `prefix` on the shared server (the end of a passing test).
pub async fn delete_prefix(prefix: &str) {
    let mut connection = shared_connection().await;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .expect("scan the test's keys");
        if !keys.is_empty() {
            let () = redis::cmd("UNLINK").arg(keys).query_async(&mut connection).await.expect("delete the test's keys");
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// A `redis-server` of the test's own, on a free port and a temporary folder; killed (by PID) when dropped.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts a server (with extra `--option value` arguments) and waits until it answers.
    pub fn start(extra: &[&str]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("idempotent-private-redis-{}-{}", std::process::id(), fastrand::u32(..)));
        std::fs::create_dir_all(&dir).expect("create the private server's folder");
        let port = super::example_process::free_port();
        let mut server =
            Self { port, dir, extra: extra.iter().map(|&argument| argument.to_owned()).collect(), child: None };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// kill -9: the server dies as in a crash; nothing is saved (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (or restarts) the server on its port and waits until it answers PING.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the private server is running");
        let child = redis_server(self.port, &self.dir, &self.extra)
            .spawn()
            .unwrap_or_else(|error| panic!("start redis-server (apt-get install redis-server): {error}"));
        self.child = Some(child);
        wait_for_ping(self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The command line of a throwaway server: no persistence, loopback only, log in its folder.
pub fn redis_server(port: u16, dir: &std::path::Path, extra: &[String]) -> Command {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(format!("redis-{port}.log")))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Waits until a server on `port` answers PING (panics after 20 s).
pub fn wait_for_ping(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let answer = Command::new("redis-cli").args(["-p", &port.to_string(), "ping"]).output();
        if answer.is_ok_and(|output| output.stdout.starts_with(b"PONG")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server on port {port} did not answer PING within 20 s");
}

impl PrivateRedis {
    /// How many idempotency records on this server are in `state` (`p` in progress, `c` completed).
    pub async fn records_in_state(&self, state: &str) -> usize {
        let client = redis::Client::open(self.url()).expect("a redis:// URL");
        let mut connection = client.get_multiplexed_async_connection().await.expect("connect to the private Redis");
        let keys: Vec<Vec<u8>> =
            redis::cmd("KEYS").arg("*}:r:*").query_async(&mut connection).await.expect("list the records");
        let mut count = 0;
        for key in keys {
            let found: Option<String> =
                redis::cmd("HGET").arg(key).arg("s").query_async(&mut connection).await.expect("read a record");
            count += usize::from(found.as_deref() == Some(state));
        }
        count
    }
}

/// A private server stopped with SIGSTOP: connections stay open and nothing answers; thawed (SIGCONT) on drop.
pub struct Frozen(u32);

impl PrivateRedis {
    /// Freezes the server (by PID) until the returned guard is dropped.
    pub fn freeze(&self) -> Frozen {
        let pid = self.child.as_ref().expect("the private server is running").id();
        let status = Command::new("kill").args(["-STOP", &pid.to_string()]).status().expect("run kill -STOP");
        assert!(status.success(), "kill -STOP {pid}");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
    }
}
