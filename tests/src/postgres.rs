//! A real PostgreSQL server for end-to-end tests: `initdb` in a temporary folder and
//! `pg_ctl` on a free loopback port (Debian's `postgresql` package, which `scripts/test`
//! installs), run as the `postgres` user when the tests run as root (PostgreSQL refuses
//! root). Stopped at once when dropped. The server crate's unit tests start theirs the same
//! way (`server/src/engine/storage/postgres.rs`, `testdb`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// A libpq connection string for its `postgres` database.
    pub url: String,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test installs Debian's postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    fn tool(&self, tool: &str) -> Command {
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        command.stdout(Stdio::null());
        command
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Starts a fresh server.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("a temporary folder");
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = Postgres {
            url: format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            bin: bin_dir(),
            port,
            dir,
        };
        let status = pg
            .tool("initdb")
            .args(["-D", &pg.data(), "-A", "trust", "-U", "postgres"])
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        pg.up(port);
        pg
    }

    fn up(&self, port: u16) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=on",
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let status = self
            .tool("pg_ctl")
            .args([
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ])
            .status()
            .expect("pg_ctl start");
        assert!(status.success(), "pg_ctl start failed");
    }

    /// Starts the server again after [`Postgres::kill`], on the same port and data.
    pub fn restart(&self) {
        self.up(self.port);
    }

    /// Stops the server at once, as a crash of its machine would.
    pub fn kill(&self) {
        let status = self
            .tool("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .status()
            .expect("pg_ctl stop");
        assert!(status.success(), "pg_ctl stop failed");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stderr(Stdio::null())
            .status();
    }
}
