//! A throwaway PostgreSQL cluster that a test may stop and start, so fault tests never touch the shared server.
//!
//! It runs from the server binaries of the machine's PostgreSQL installation (`/usr/lib/postgresql/<version>/bin`,
//! or `PG_BIN`), on its own port and socket directory. `initdb` refuses to run as root, so as root the cluster is
//! created and run as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private cluster; stopped and deleted when dropped.
pub struct PrivateCluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

impl PrivateCluster {
    /// Creates and starts a cluster on a free port, or panics saying what is missing.
    pub fn start() -> Self {
        let bin = server_binaries();
        let dir = cluster_folder("idempotent-private-pg");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let cluster = Self { bin, dir, port };
        run(
            cluster
                .as_cluster_owner("initdb")
                .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
                .arg(cluster.data()),
            "initdb a private cluster",
        );
        cluster.resume();
        cluster
    }

    /// `postgres://` URL of the cluster.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Everything the server logged so far (its `-l` log file).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).expect("read the private cluster's log")
    }

    /// Stops the server at once (connections are cut, as in a crash or a failover).
    pub fn stop(&self) {
        run(
            self.as_cluster_owner("pg_ctl").args(["stop", "-m", "immediate", "-w", "-D"]).arg(self.data()),
            "stop the private cluster",
        );
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn resume(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        run(
            self.as_cluster_owner("pg_ctl")
                .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
                .arg(self.dir.join("server.log"))
                .arg("-D")
                .arg(self.data()),
            "start the private cluster",
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn as_cluster_owner(&self, program: &str) -> Command {
        as_cluster_owner(&self.bin, program)
    }
}

/// `program` of the server binaries in `bin`, run as the cluster's owner: `postgres` when the test runs as root
/// (initdb and the server refuse root), the current user otherwise.
pub fn as_cluster_owner(bin: &Path, program: &str) -> Command {
    let program = bin.join(program);
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.as_cluster_owner("pg_ctl").args(["stop", "-m", "immediate", "-D"]).arg(self.data()).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new folder for a throwaway cluster under the temporary directory, named `prefix-<pid>-<random>`, owned by the
/// user the cluster runs as.
pub fn cluster_folder(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), fastrand::u32(..)));
    std::fs::create_dir_all(&dir).expect("create the cluster's folder");
    if running_as_root() {
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir), "chown the cluster folder to postgres");
    }
    dir
}

/// The folder of the PostgreSQL server binaries (`PG_BIN`, or the newest `/usr/lib/postgresql/<version>/bin`), or a
/// panic saying how to install them.
pub fn server_binaries() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .ok()
        .and_then(|versions| versions.filter_map(Result::ok).map(|entry| entry.path()).max())
        .map(|version| version.join("bin"))
        .filter(|bin| bin.join("initdb").exists());
    newest.unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under {}: install the postgresql package \
             (apt-get install postgresql) or set PG_BIN to the folder that holds them",
            root.display()
        )
    })
}

/// Whether the test runs as root (then the clusters run as `postgres`).
pub fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.starts_with(b"0\n"))
}

/// Runs `command` to its end, or panics with what it printed.
pub fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|error| panic!("could not {what}: {error}"));
    assert!(
        output.status.success(),
        "could not {what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
