//! The real brokers for the inbox suites: reachability with the fix, a TCP proxy that can cut a consumer's broker
//! connection, and a driver that runs the inbox examples as competing consumer processes and kills one.
//!
//! RabbitMQ (`AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`) and NATS with JetStream (`NATS_URL`,
//! default `nats://127.0.0.1:4222`) must be running; `bash .ci/run` starts both. A suite that cannot reach them
//! fails, saying how to start them.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::example_process::example_binary;

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned())
}

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned())
}

/// The `host:port` of a broker URL (`scheme://[user[:password]@]host:port[/...]`).
pub fn address_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.parse().unwrap_or_else(|error| panic!("the broker URL {url} has no IP:port ({error})"))
}

/// Panics with the fix unless something accepts connections at the broker's address.
pub fn require_broker(name: &str, url: &str, start: &str) {
    let address = address_of(url);
    if let Err(error) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) {
        panic!(
            "{name} is not reachable at {address} ({error}). Start it (bash .ci/run does):\n    {start}\nor point \
             the suite at yours with the URL variable."
        );
    }
}

pub const START_RABBITMQ: &str = "rabbitmq-server -detached && rabbitmqctl await_startup";
pub const START_NATS: &str = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a \
                              127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log";

/// A name no other run uses (queue, stream, subject part).
pub fn private_name(prefix: &str) -> String {
    format!("{prefix}_{}_{:08x}", std::process::id(), fastrand::u32(..))
}

/// A TCP proxy in front of a broker, on its own thread and runtime, whose live connections can be cut at once
/// (both sides see the connection drop, as when a network path fails); new connections are accepted after.
pub struct CuttingProxy {
    pub port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    accepted: Arc<AtomicUsize>,
}

impl CuttingProxy {
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let (cut, cuts) = tokio::sync::watch::channel(0_u64);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    let Ok((mut client, _)) = listener.accept().await else { continue };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut cuts = cuts.clone();
                    cuts.mark_unchanged();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cuts.changed() => {} // both streams are dropped: the connection is gone
                        }
                    });
                }
            });
        });
        Self { port, cut, accepted }
    }

    /// Cuts every live connection.
    pub fn cut_all(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Runs `<example> publish <n>` to completion; returns its output line.
pub fn publish(example: &str, n: usize, env: &[(&str, String)]) -> String {
    let output = Command::new(example_binary(example))
        .args(["publish", &n.to_string()])
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .unwrap_or_else(|error| panic!("run {example} publish: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{example} publish failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// `PUBLISH_MANIFEST` of a publish run: copies sent per key.
pub fn read_manifest(path: &std::path::Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(path).expect("the publish manifest");
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(key, copies)| (key.to_owned(), copies.parse().expect("a copy count")))
        .collect()
}

/// The number after `word` in `line` (`"... as 412 messages"`, `word = "as"`).
pub fn number_after(line: &str, word: &str) -> usize {
    let mut words = line.split(|c: char| c.is_whitespace() || c == ',' || c == ';');
    words
        .by_ref()
        .find(|candidate| *candidate == word)
        .and_then(|_| words.next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no number after {word:?} in {line:?}"))
}

/// One consumer process of the competing-consumers run.
struct Consumer {
    child: Child,
    name: &'static str,
}

/// What the consumers printed and did, all processes together.
#[derive(Debug, Default)]
pub struct ConsumerRun {
    /// Broker deliveries, counted from the consumers' lines: one per outcome line, plus the delivery a killed
    /// consumer was in the middle of.
    pub deliveries: usize,
    /// Deliveries per key.
    pub deliveries_per_key: HashMap<String, usize>,
    /// `applied` lines per key.
    pub applied_per_key: HashMap<String, usize>,
    /// Deliveries a surviving consumer applied or replayed, and so acknowledged. Every published message must be
    /// among them (more when an acknowledgement was lost with a cut connection and the message came back).
    pub acknowledged: usize,
    /// Acknowledged deliveries per key.
    pub acknowledged_per_key: HashMap<String, usize>,
    /// The key the killed consumer was writing when it died.
    pub killed_mid: Option<String>,
    /// The summary line of every consumer that exited (by name).
    pub summaries: HashMap<&'static str, String>,
}

impl ConsumerRun {
    /// Deliveries of a key beyond its first.
    pub fn duplicates_delivered(&self) -> usize {
        self.deliveries_per_key.values().map(|count| count - 1).sum()
    }
}

/// The scenario of both broker suites: consumers `a`, `b` and `c` of `example` compete for the messages; `a`
/// (with a long handler delay) is killed with SIGKILL in the middle of its first message, and a replacement `d` is
/// started; `b` talks to the broker through `proxy`, which cuts its connection once after it has settled
/// `cut_after` deliveries. `url_var` is the variable that names the broker (`AMQP_URL`, `NATS_URL`); `env` the
/// rest (private names, `DATABASE_URL`, `IDLE_EXIT_MS`). Returns once every surviving consumer exited 0.
pub fn run_competing_consumers(
    example: &str,
    url_var: &str,
    direct_url: &str,
    proxy: &CuttingProxy,
    proxied_url: &str,
    env: &[(&str, String)],
    deadline: Duration,
) -> ConsumerRun {
    let (lines_tx, lines) = mpsc::channel::<(&'static str, Option<String>)>();
    let start = |name: &'static str, url: &str, delay_ms: u64| {
        let mut child = Command::new(example_binary(example))
            .arg("consume")
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .env(url_var, url)
            .env("HANDLER_DELAY_MS", delay_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("start {example} consume: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines_tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send((name, Some(line)));
            }
            let _ = lines_tx.send((name, None));
        });
        Consumer { child, name }
    };
    // `a` sleeps long inside its transaction: the kill lands between its write and its commit.
    let mut consumers = vec![start("a", direct_url, 2_000), start("b", proxied_url, 10), start("c", direct_url, 10)];
    let mut run = ConsumerRun::default();
    let mut open = 3;
    let mut cut = false;
    let mut settled_by_b = 0;
    let began = Instant::now();
    while open > 0 {
        let remaining = deadline.checked_sub(began.elapsed()).unwrap_or_default();
        let (name, line) = lines
            .recv_timeout(remaining)
            .unwrap_or_else(|_| panic!("the consumers did not finish within {deadline:?}; so far: {run:?}"));
        let Some(line) = line else {
            open -= 1;
            continue;
        };
        let (word, key) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match word {
            "writing" if name == "a" && run.killed_mid.is_none() => {
                let victim = consumers.iter_mut().find(|consumer| consumer.name == "a").expect("consumer a");
                victim.child.kill().expect("kill -9 consumer a");
                victim.child.wait().expect("reap consumer a");
                run.killed_mid = Some(key.to_owned());
                run.deliveries += 1;
                *run.deliveries_per_key.entry(key.to_owned()).or_default() += 1;
                consumers.push(start("d", direct_url, 10));
                open += 1;
            }
            "applied" | "replayed" | "in-flight" | "key-reused" | "store-unavailable" | "failed" | "refused" => {
                run.deliveries += 1;
                *run.deliveries_per_key.entry(key.to_owned()).or_default() += 1;
                if word == "applied" || word == "replayed" {
                    run.acknowledged += 1;
                    *run.acknowledged_per_key.entry(key.to_owned()).or_default() += 1;
                }
                if word == "applied" {
                    *run.applied_per_key.entry(key.to_owned()).or_default() += 1;
                }
                if name == "b" {
                    settled_by_b += 1;
                    if settled_by_b == 20 && !cut {
                        proxy.cut_all();
                        cut = true;
                    }
                }
            }
            _ if line.contains("idle for") => {
                run.summaries.insert(name, line.clone());
            }
            _ => {}
        }
    }
    assert!(run.killed_mid.is_some(), "consumer a never started a message, so it was not killed mid-message");
    assert!(cut, "consumer b settled fewer than 20 deliveries, so its connection was never cut");
    for consumer in &mut consumers {
        let status = consumer.child.wait().expect("reap a consumer");
        if consumer.name != "a" {
            assert!(status.success(), "consumer {} exited with {status}", consumer.name);
        }
    }
    run
}
