//! A private PgBouncer in transaction pooling mode (what most managed PostgreSQL offerings run), in front of a
//! PostgreSQL server, so the suites can prove the library correct behind a pooler.
//!
//! Each instance has its own folder (ini, userlist, log, pid file) and a free port. PgBouncer refuses to run as
//! root, so as root it runs as the `postgres` user (`runuser`). It is stopped by its PID, never by name.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running private PgBouncer; stopped and its folder deleted when dropped.
pub struct PgBouncer {
    dir: PathBuf,
    pub port: u16,
    process: Mutex<Option<Running>>,
}

struct Running {
    /// `runuser` (as root) or PgBouncer itself.
    child: Child,
    /// PgBouncer's own PID, from its pid file (once it wrote it).
    pid: Option<u32>,
}

/// The server connections PgBouncer keeps per database: fewer than the clients' pools, so that consecutive
/// round trips of one client land on different backends (what breaks named prepared statements).
pub const SERVER_POOL_SIZE: usize = 6;

/// How many free ports a start tries before it gives up.
const PORT_ATTEMPTS: u32 = 5;

impl PgBouncer {
    /// Starts a PgBouncer in front of the server at `host:port` (trust auth, user `postgres`), or panics saying
    /// what is missing. `search_path`, when given, is set on every server connection (`connect_query`), as a
    /// deployment would with `ALTER ROLE ... SET search_path`: for example processes whose own tables must land
    /// in a test's schema.
    pub fn start(host: &str, port: u16, search_path: Option<&str>) -> Self {
        let binary = binary();
        let dir =
            std::env::temp_dir().join(format!("idempotent-pgbouncer-{}-{}", std::process::id(), fastrand::u32(..)));
        std::fs::create_dir_all(&dir).expect("create the PgBouncer folder");
        let mut bouncer = Self { dir, port: 0, process: Mutex::new(None) };
        // A port free now may be taken by another process before PgBouncer binds it: then PgBouncer exits at once,
        // and the next attempt takes another port.
        for attempt in 1..=PORT_ATTEMPTS {
            bouncer.port =
                std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
            bouncer.configure(host, port, search_path);
            match bouncer.launch(&binary) {
                Ok(()) => return bouncer,
                Err(log) if attempt < PORT_ATTEMPTS && log.contains("Address already in use") => continue,
                Err(log) => panic!("PgBouncer did not start; its log:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Writes the configuration (and a fresh log) of a PgBouncer on `self.port` in front of `host:port`.
    fn configure(&self, host: &str, port: u16, search_path: Option<&str>) {
        let (dir, listen_port) = (&self.dir, self.port);
        let _no_log_yet = std::fs::remove_file(dir.join("pgbouncer.log"));
        let connect_query =
            search_path.map(|schema| format!(" connect_query='SET search_path TO {schema}'")).unwrap_or_default();
        let ini = format!(
            "[databases]\n\
             postgres = host={host} port={port} dbname=postgres{connect_query}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {listen_port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\n\
             default_pool_size = {SERVER_POOL_SIZE}\n\
             max_client_conn = 1000\n\
             server_login_retry = 1\n\
             query_wait_timeout = 30\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n\
             {tracking}",
            dir = dir.display(),
            tracking = if tracks_prepared_statements() { "max_prepared_statements = 200\n" } else { "" },
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).expect("write pgbouncer.ini");
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").expect("write userlist.txt");
        if running_as_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir).status();
            assert!(status.is_ok_and(|status| status.success()), "could not chown {} to postgres", dir.display());
        }
    }

    /// Starts a PgBouncer in front of the server `DATABASE_URL` names.
    pub fn in_front_of_database_url(search_path: Option<&str>) -> Self {
        let config: tokio_postgres::Config = super::postgres::database_url().parse().expect("DATABASE_URL parses");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Self::start(&host, port, search_path)
    }

    /// A `postgres://` URL through this PgBouncer.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops PgBouncer at once (every client and server connection is cut).
    pub fn stop(&self) {
        let Some(mut running) = self.process.lock().unwrap().take() else { return };
        match running.pid {
            Some(pid) => {
                let _ = Command::new("kill").args([immediate_shutdown_signal(), &pid.to_string()]).status();
            }
            None => {
                let _ = running.child.kill();
            }
        }
        let _ = running.child.wait();
        let _ = std::fs::remove_file(self.dir.join("pgbouncer.pid"));
    }

    /// Starts it again on the same port, after [`PgBouncer::stop`].
    pub fn resume(&self) {
        if let Err(log) = self.launch(&binary()) {
            panic!("PgBouncer did not start again; its log:\n{log}");
        }
    }

    /// Starts PgBouncer and waits until it listens; `Err` with its log if it exited or did not listen within 10 s.
    fn launch(&self, binary: &Path) -> Result<(), String> {
        let ini = self.dir.join("pgbouncer.ini");
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(binary);
            command
        } else {
            Command::new(binary)
        };
        let child = command
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {}: {error}", binary.display()));
        *self.process.lock().unwrap() = Some(Running { child, pid: None });
        let started = Instant::now();
        let pid_file = self.dir.join("pgbouncer.pid");
        loop {
            let pid = std::fs::read_to_string(&pid_file).ok().and_then(|text| text.trim().parse::<u32>().ok());
            let listening = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if let (Some(pid), Some(running)) = (pid, self.process.lock().unwrap().as_mut()) {
                running.pid = Some(pid);
            }
            if pid.is_some() && listening {
                return Ok(());
            }
            let exited = self
                .process
                .lock()
                .unwrap()
                .as_mut()
                .is_some_and(|running| running.child.try_wait().is_ok_and(|status| status.is_some()));
            if exited || started.elapsed() > Duration::from_secs(10) {
                self.stop();
                let log = std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default();
                let why = if exited { "it exited" } else { "it did not listen within 10 s" };
                return Err(format!("({why})\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the PgBouncer the suites start tracks protocol-level prepared statements (version 1.21 and later, with
/// `max_prepared_statements` set, as the suites do there). Debian 12's 1.18 does not.
pub fn tracks_prepared_statements() -> bool {
    version() >= (1, 21)
}

/// The signal that stops PgBouncer at once: `SIGTERM` until 1.22; from 1.23 on `SIGTERM` waits for every client to
/// disconnect (which a test blocked in `Drop` never does), and `SIGQUIT` is the immediate shutdown.
fn immediate_shutdown_signal() -> &'static str {
    if version() >= (1, 23) { "-QUIT" } else { "-TERM" }
}

/// The major and minor version of the PgBouncer the suites start.
fn version() -> (u32, u32) {
    static VERSION: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        let output = Command::new(binary()).arg("--version").output().expect("run pgbouncer --version");
        let text = String::from_utf8_lossy(&output.stdout);
        // "PgBouncer 1.18.0" (then, on later versions, the libraries it was built with).
        let version = text.split_whitespace().nth(1).unwrap_or_default();
        let mut numbers = version.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
        let major_minor = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        assert!(major_minor > (0, 0), "could not read PgBouncer's version from {text:?}");
        major_minor
    })
}

fn binary() -> PathBuf {
    if let Ok(binary) = std::env::var("PGBOUNCER") {
        return PathBuf::from(binary);
    }
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "PgBouncer not found: the pooler suites need it. Install it with\n    apt-get install -y pgbouncer\n\
                 or set PGBOUNCER to its binary"
            )
        })
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.starts_with(b"0\n"))
}
