//! A real Redis Cluster of 3 masters and 3 replicas, from `redis-server` on private free ports in a temporary
//! folder, with a short `cluster-node-timeout` so a failover takes seconds. Every server is stopped by PID: when
//! the cluster is dropped, or (for the cluster the suites share) by a watchdog when the test process exits.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::redis_node::{redis_server, wait_for_ping};

/// How long a silent master stays master: short, so that a failover is quick.
pub const NODE_TIMEOUT_MS: u64 = 1000;

pub struct RedisCluster {
    pub ports: Vec<u16>,
    dir: PathBuf,
    servers: Mutex<Vec<Option<Child>>>,
}

impl RedisCluster {
    /// The cluster the suites share (started once per test process).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let cluster = Self::start();
            cluster.stop_when_this_process_exits();
            cluster
        })
    }

    /// Starts six servers, joins them into a cluster, and waits until every slot is served and every master has
    /// its replica.
    pub fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("idempotent-redis-cluster-{}-{}", std::process::id(), fastrand::u32(..)));
        std::fs::create_dir_all(&dir).expect("create the cluster's folder");
        let ports = free_cluster_ports(6);
        let servers = ports.iter().map(|&port| Some(spawn_node(port, &dir))).collect();
        let cluster = Self { ports, dir, servers: Mutex::new(servers) };
        for &port in &cluster.ports {
            wait_for_ping(port);
        }
        let addresses: Vec<String> = cluster.ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_until_healthy(Duration::from_secs(30));
        cluster
    }

    /// `host:port` of every node, as `RedisStore::cluster` takes them.
    pub fn nodes(&self) -> Vec<String> {
        self.ports.iter().map(|port| format!("127.0.0.1:{port}")).collect()
    }

    /// Waits until every node reports `cluster_state:ok` and every master has a replica in sync (`state=online`).
    pub fn wait_until_healthy(&self, within: Duration) {
        let started = Instant::now();
        loop {
            let running: Vec<u16> = self.running_ports();
            let healthy = running.iter().all(|&port| cli(port, &["cluster", "info"]).contains("cluster_state:ok"))
                && self.masters().iter().all(|&port| {
                    let replication = cli(port, &["info", "replication"]);
                    replication.contains("connected_slaves:1") && replication.contains("state=online")
                });
            if healthy {
                return;
            }
            assert!(started.elapsed() < within, "the Redis Cluster did not become healthy within {within:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The ports of the running masters.
    pub fn masters(&self) -> Vec<u16> {
        self.running_ports().into_iter().filter(|&port| cli(port, &["role"]).starts_with("master")).collect()
    }

    /// The port of the master that serves `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = cli(self.ports[0], &["cluster", "keyslot", key]).trim().parse().expect("a slot number");
        for port in self.masters() {
            let nodes = cli(port, &["cluster", "nodes"]);
            let myself = nodes.lines().find(|line| line.contains("myself")).expect("the node's own line");
            let serves = myself.split_whitespace().skip(8).any(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(low), Ok(high)) if low <= slot && slot <= high)
            });
            if serves {
                return port;
            }
        }
        panic!("no running master serves the slot of {key}");
    }

    /// kill -9 the server on `port` (a crash: its replica takes over after the node timeout).
    pub fn kill(&self, port: u16) {
        let index = self.ports.iter().position(|&known| known == port).expect("a port of this cluster");
        let mut servers = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mut child) = servers[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again on its port and configuration: it rejoins the cluster (a replica of whoever
    /// took over its slots).
    pub fn restart(&self, port: u16) {
        let index = self.ports.iter().position(|&known| known == port).expect("a port of this cluster");
        let mut servers = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(servers[index].is_none(), "node {port} is running");
        servers[index] = Some(spawn_node(port, &self.dir));
        drop(servers);
        wait_for_ping(port);
    }

    /// Stops the server on `port` without ending it (SIGSTOP): it answers nothing, to its master included, until
    /// [`RedisCluster::resume`].
    pub fn pause(&self, port: u16) {
        self.signal(port, "-STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self, port: u16) {
        self.signal(port, "-CONT");
    }

    fn signal(&self, port: u16, signal: &str) {
        let index = self.ports.iter().position(|&known| known == port).expect("a port of this cluster");
        let servers = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let pid = servers[index].as_ref().expect("a running node").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// The port of the replica of the master on `master`.
    pub fn replica_of(&self, master: u16) -> u16 {
        let replication = cli(master, &["info", "replication"]);
        let line = replication.lines().find(|line| line.starts_with("slave0:")).expect("a master with a replica");
        let port = line.split(',').find_map(|field| field.strip_prefix("port=")).expect("the replica's port");
        port.parse().expect("a port number")
    }

    fn running_ports(&self) -> Vec<u16> {
        let servers = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.ports.iter().zip(servers.iter()).filter(|(_, child)| child.is_some()).map(|(&port, _)| port).collect()
    }

    /// A shared cluster is never dropped: a watchdog kills its servers (by PID) once this process is gone.
    fn stop_when_this_process_exits(&self) {
        let servers = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let pids: Vec<String> = servers.iter().flatten().map(|child| child.id().to_string()).collect();
        let script = format!(
            "while kill -0 {test} 2>/dev/null; do sleep 1; done; kill -9 {pids} 2>/dev/null; rm -rf '{dir}'",
            test = std::process::id(),
            pids = pids.join(" "),
            dir = self.dir.display()
        );
        // Never waited for: the watchdog's job is to outlive this process.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster's watchdog");
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let servers = self.servers.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for mut child in servers.drain(..).flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_node(port: u16, dir: &std::path::Path) -> Child {
    let extra = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &format!("nodes-{port}.conf"),
        "--cluster-node-timeout",
        &NODE_TIMEOUT_MS.to_string(),
        // A replica may take over however long it was cut off (the tests kill masters on purpose).
        "--cluster-replica-validity-factor",
        "0",
    ]
    .map(str::to_owned);
    redis_server(port, dir, &extra)
        .spawn()
        .unwrap_or_else(|error| panic!("start redis-server for the cluster (apt-get install redis-server): {error}"))
}

/// `count` ports whose cluster bus ports (+10000) are free too.
fn free_cluster_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < count {
        let port = fastrand::u16(20_000..30_000);
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if !ports.contains(&port) && free(port) && free(port + 10_000) {
            ports.push(port);
        }
    }
    ports
}

/// Runs `redis-cli -p port args...`, returning its output (empty when the node does not answer).
pub fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

impl RedisCluster {
    /// Waits until the running nodes serve every slot again (`cluster_state:ok`), e.g. after a replica took over
    /// from a killed master.
    pub fn wait_until_serving(&self, within: Duration) {
        let started = Instant::now();
        loop {
            let running = self.running_ports();
            let serving = running.iter().all(|&port| cli(port, &["cluster", "info"]).contains("cluster_state:ok"))
                && self.masters().len() == 3;
            if serving {
                return;
            }
            assert!(started.elapsed() < within, "the Redis Cluster did not serve every slot within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
