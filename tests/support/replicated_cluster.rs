//! A throwaway primary with a synchronous standby, for failover tests: two private clusters on their own ports,
//! the standby cloned from the primary with `pg_basebackup -R` and streaming from it. The primary can be crashed
//! (`kill -9` of the postmaster and of every one of its children, found by PID) and the standby promoted.
//!
//! Both servers run with `fsync=off`, as [`super::private_cluster::PrivateCluster`] does, for speed: a crash here
//! is a `kill -9` of processes, after which the operating system still holds (and writes) everything they wrote,
//! so what a commit flushed, on the primary or on the standby, survives it. A power loss would need `fsync=on`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::private_cluster::{as_cluster_owner, cluster_folder, run, server_binaries};

/// The standby's `application_name` (its `cluster_name`), which the primary's `synchronous_standby_names` names.
const STANDBY_NAME: &str = "standby";

/// The moments of a crash of the primary (see `ReplicatedCluster::crash_primary`).
pub struct Crash {
    /// Before the postmaster was frozen: its running backends still answer until the `kill -9`.
    pub frozen_at: Instant,
    /// Just before the `kill -9`.
    pub killed_at: Instant,
    /// When every killed process was gone.
    pub over_at: Instant,
    /// How many processes the `kill -9` killed.
    pub processes: usize,
}

/// A primary and its synchronous standby; every server process still running is stopped, by PID, and both
/// folders are deleted, when dropped.
pub struct ReplicatedCluster {
    bin: PathBuf,
    dir: PathBuf,
    pub primary_port: u16,
    pub standby_port: u16,
    /// The primary was crashed: all its processes are gone (its `postmaster.pid` is stale, so it is never read
    /// again: the PID may belong to another process by now).
    primary_crashed: AtomicBool,
}

impl ReplicatedCluster {
    /// Creates a primary, clones a standby from it, starts both and waits until the standby streams as the
    /// primary's synchronous standby; or panics saying what is missing.
    pub fn start() -> Self {
        let bin = server_binaries();
        for program in ["pg_basebackup", "psql"] {
            assert!(
                bin.join(program).exists(),
                "{program} not found in {}: install the postgresql package (apt-get install postgresql) or set \
                 PG_BIN to the folder of the server binaries",
                bin.display()
            );
        }
        let dir = cluster_folder("idempotent-replicated-pg");
        let [primary_port, standby_port] = free_ports();
        let cluster = Self { bin, dir, primary_port, standby_port, primary_crashed: AtomicBool::new(false) };
        // initdb --auth=trust also trusts replication connections (`host replication all 127.0.0.1/32 trust`),
        // and wal_level=replica with 10 WAL senders is the default since PostgreSQL 10; both are said anyway.
        run(
            cluster
                .as_owner("initdb")
                .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
                .arg(cluster.primary_data()),
            "initdb the primary",
        );
        // Synchronous replication is set on the primary's command line, not in its configuration files, so that
        // the clone does not inherit it: the promoted standby has no standby of its own, and with
        // `synchronous_standby_names` set it would wait forever on every commit.
        let primary_options = format!(
            "{} -c wal_level=replica -c max_wal_senders=4 -c synchronous_commit=on \
             -c synchronous_standby_names={STANDBY_NAME}",
            cluster.common_options(cluster.primary_port)
        );
        cluster.pg_ctl_start(&cluster.primary_data(), &primary_options, "primary");
        run(
            cluster
                .as_owner("pg_basebackup")
                .args(["-h", "127.0.0.1", "-p", &cluster.primary_port.to_string(), "-U", "postgres"])
                .args(["--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast", "--no-sync", "-D"])
                .arg(cluster.standby_data()),
            "clone the standby with pg_basebackup",
        );
        // A walreceiver's application_name is its server's cluster_name when primary_conninfo names none.
        let standby_options =
            format!("{} -c cluster_name={STANDBY_NAME}", cluster.common_options(cluster.standby_port));
        cluster.pg_ctl_start(&cluster.standby_data(), &standby_options, "standby");
        let sync = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}' \
             AND state = 'streaming' AND sync_state = 'sync'"
        );
        cluster.poll(cluster.primary_port, &sync, "1", "the standby streams as the synchronous standby");
        cluster
    }

    /// The app's URL: both servers, the first that accepts writes (`target_session_attrs=read-write`).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=2",
            self.primary_port, self.standby_port
        )
    }

    /// The primary alone.
    pub fn primary_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.primary_port)
    }

    /// The standby alone.
    pub fn standby_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.standby_port)
    }

    /// The primary's `sync_state` for the standby right now (`sync`, `async`, ... or empty when not connected).
    pub fn standby_sync_state(&self) -> String {
        self.query(
            self.primary_port,
            &format!("SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"),
        )
        .unwrap_or_default()
    }

    /// Crashes the primary: freezes the postmaster (`SIGSTOP`, so that it forks no new backend), lists its children
    /// by their parent PID, and `kill -9`s them all, the postmaster with them, in one `kill`. Returns when every
    /// one of them is gone, with the crash's moments and how many processes it killed.
    pub fn crash_primary(&self) -> Crash {
        let frozen_at = Instant::now();
        let postmaster = postmaster_pid(&self.primary_data());
        run(Command::new("kill").args(["-STOP", &postmaster.to_string()]), "freeze the primary's postmaster");
        let mut victims = children_of(postmaster);
        victims.push(postmaster);
        let pids: Vec<String> = victims.iter().map(u32::to_string).collect();
        let killed_at = Instant::now();
        run(Command::new("kill").arg("-KILL").args(&pids), "kill -9 the primary and its backends");
        self.primary_crashed.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while victims.iter().any(|&pid| alive(pid)) {
            assert!(Instant::now() < deadline, "the primary's processes {victims:?} survived kill -9 for 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        Crash { frozen_at, killed_at, over_at: Instant::now(), processes: victims.len() }
    }

    /// Promotes the standby (`pg_ctl promote -w`) and waits until it accepts writes.
    pub fn promote_standby(&self) {
        run(
            self.as_owner("pg_ctl").args(["promote", "-w", "-t", "30", "-D"]).arg(self.standby_data()),
            "promote the standby",
        );
        self.poll(self.standby_port, "SELECT pg_is_in_recovery()", "f", "the promoted standby leaves recovery");
    }

    /// Everything a server logged so far (`primary` or `standby`).
    pub fn server_log(&self, which: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{which}.log"))).unwrap_or_default()
    }

    fn common_options(&self, port: u16) -> String {
        format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.dir.display())
    }

    fn pg_ctl_start(&self, data: &Path, options: &str, which: &str) {
        run(
            self.as_owner("pg_ctl")
                .args(["start", "-w", "-t", "60", "-o", options, "-l"])
                .arg(self.dir.join(format!("{which}.log")))
                .arg("-D")
                .arg(data),
            &format!("start the {which}"),
        );
    }

    /// Polls `sql` on the server at `port` until it answers `expected`, for up to 30 s.
    fn poll(&self, port: u16, sql: &str, expected: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.query(port, sql);
            if answer.as_deref() == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited 30 s for {what}: {sql} answers {answer:?}\nprimary log:\n{}\nstandby log:\n{}",
                self.server_log("primary"),
                self.server_log("standby")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One value from `psql -At`, or `None` when the server does not answer.
    fn query(&self, port: u16, sql: &str) -> Option<String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres", "-XAtc", sql])
            .output()
            .ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    fn primary_data(&self) -> PathBuf {
        self.dir.join("primary")
    }

    fn standby_data(&self) -> PathBuf {
        self.dir.join("standby")
    }

    fn as_owner(&self, program: &str) -> Command {
        as_cluster_owner(&self.bin, program)
    }
}

impl Drop for ReplicatedCluster {
    fn drop(&mut self) {
        // `pg_ctl stop` signals the PID of the server's `postmaster.pid`; a crashed primary has nothing left.
        let mut running = vec![self.standby_data()];
        if !self.primary_crashed.load(Ordering::SeqCst) {
            running.push(self.primary_data());
        }
        for data in running {
            if data.join("postmaster.pid").exists() {
                let _ = self.as_owner("pg_ctl").args(["stop", "-m", "immediate", "-w", "-D"]).arg(&data).output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two distinct free ports (both held while the second is chosen).
fn free_ports() -> [u16; 2] {
    let listeners = [(); 2].map(|()| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"));
    listeners.each_ref().map(|listener| listener.local_addr().expect("addr").port())
}

/// The first line of `postmaster.pid`: the postmaster's PID.
fn postmaster_pid(data: &Path) -> u32 {
    let file = std::fs::read_to_string(data.join("postmaster.pid")).expect("read postmaster.pid");
    file.lines().next().and_then(|line| line.trim().parse().ok()).expect("a PID on postmaster.pid's first line")
}

/// The PIDs whose parent is `parent`, from `/proc/<pid>/stat` (its fourth field, after the command in parentheses).
fn children_of(parent: u32) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("read /proc");
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// A process's state letter and parent PID, or `None` once it is gone.
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut after_command = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = after_command.next()?.chars().next()?;
    let ppid = after_command.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` still runs (a zombie, dead and not yet reaped by its parent, does not).
fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}
