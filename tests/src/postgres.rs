//! A real PostgreSQL server for end-to-end tests: `initdb` in a temporary folder and
//! `pg_ctl` on a free loopback port (Debian's `postgresql` package, which `scripts/test`
//! installs), run as the `postgres` user when the tests run as root (PostgreSQL refuses
//! root). Stopped at once when dropped. The server crate's unit tests start theirs the same
//! way (`server/src/engine/storage/postgres.rs`, `testdb`).
//!
//! When the suite runs on the PostgreSQL backend (`EVIDENT_TEST_STORE=postgres`), every
//! test server gets a database of its own ([`fresh_database`]) in one PostgreSQL server
//! for the whole run: `EVIDENT_TEST_PG_URL`'s (which `scripts/test` starts and stops), or
//! else one started here that stops when the test process exits. It must never hand two
//! configs the same database: a test's log would then hold another test's entries.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

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

    /// Starts a fresh server that lives as long as this process, however the process ends:
    /// a watchdog waits for the end of a pipe only this process holds open, then stops
    /// the server and removes its folder. Returns its connection string.
    fn start_for_this_process() -> String {
        let pg = Postgres::start();
        let stop = pg.tool("pg_ctl");
        let mut stop_args = vec![stop.get_program().to_owned()];
        stop_args.extend(stop.get_args().map(ToOwned::to_owned));
        stop_args.extend(["-D", &pg.data(), "-m", "immediate", "stop"].map(Into::into));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"read -r _; "$@" >/dev/null 2>&1; rm -rf "$PG_DIR""#)
            .arg("sh")
            .args(stop_args)
            .env("PG_DIR", pg.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the watchdog of the test PostgreSQL");
        let url = pg.url.clone();
        // Neither is ever dropped: the server stops when the watchdog reads end of file.
        static KEPT: OnceLock<(Postgres, Child)> = OnceLock::new();
        assert!(
            KEPT.set((pg, watchdog)).is_ok(),
            "one PostgreSQL per test process"
        );
        url
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

/// The PostgreSQL server of this run: `EVIDENT_TEST_PG_URL` (a libpq connection string or
/// `postgres://` URL of a user that may create databases), or one started for this
/// process.
fn shared_server() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("EVIDENT_TEST_PG_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => Postgres::start_for_this_process(),
    })
}

/// `url` with its database replaced by `dbname`, in either of libpq's forms.
fn with_database(url: &str, dbname: &str) -> String {
    let Some(scheme_end) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .map(|rest| url.len() - rest.len())
    else {
        // In a key=value string the last setting of a keyword wins.
        return format!("{url} dbname={dbname}");
    };
    let (head, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let authority_end = head[scheme_end..]
        .find('/')
        .map_or(head.len(), |i| scheme_end + i);
    format!("{}/{dbname}{query}", &head[..authority_end])
}

/// The database `url` names, in either of libpq's forms.
fn database_of(url: &str) -> Option<&str> {
    match url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        Some(rest) => {
            let path = &rest[rest.find('/')? + 1..];
            Some(&path[..path.find('?').unwrap_or(path.len())])
        }
        None => url
            .split_whitespace()
            .filter_map(|setting| setting.strip_prefix("dbname="))
            .next_back(),
    }
}

/// The database of a test server's config, when it is on PostgreSQL: its `[store]` url.
pub fn url_of_config(config: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(config).expect("reading the config");
    let store = &text[text.find("[store]")?..];
    let store = &store[..store[1..].find("\n[").map_or(store.len(), |i| i + 1)];
    if !store.contains("backend = \"postgres\"") {
        return None;
    }
    let line = store.lines().find_map(|l| l.strip_prefix("url = "))?;
    Some(line.trim().trim_matches('"').to_owned())
}

/// Creates a new database in this run's PostgreSQL server, a copy of `template` when
/// given (which nothing may be connected to), and returns a connection string for it.
fn create_database(template: Option<&str>) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let server = shared_server();
    // Unique in the server, even one that outlives a run: the process and its start time.
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time after 1970")
            .as_millis();
        format!("{}_{started}", std::process::id())
    });
    let name = format!("evident_{run}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut sql = format!("CREATE DATABASE {name}");
    if let Some(template) = template {
        sql.push_str(&format!(" TEMPLATE \"{template}\""));
    }
    let out = Command::new(bin_dir().join("psql"))
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            server,
            "-c",
            &sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "creating database {name} in {server}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    with_database(server, &name)
}

/// Creates a new, empty database in this run's PostgreSQL server and returns a connection
/// string for it.
pub fn fresh_database() -> String {
    create_database(None)
}

/// Copies the database `url` names (a stopped server's) into a new one in this run's
/// PostgreSQL server, and returns a connection string for the copy.
pub fn copy_database(url: &str) -> String {
    let name = database_of(url).expect("the url names its database");
    create_database(Some(name))
}

#[cfg(test)]
mod tests {
    use super::{database_of, with_database};

    #[test]
    fn a_database_is_named_in_either_form_of_connection_string() {
        assert_eq!(
            with_database("host=127.0.0.1 port=5 user=postgres dbname=postgres", "e_1"),
            "host=127.0.0.1 port=5 user=postgres dbname=postgres dbname=e_1"
        );
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "e_1"),
            "postgres://u@h:5/e_1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://u@h", "e_1"),
            "postgresql://u@h/e_1"
        );
        assert_eq!(
            database_of("host=h dbname=postgres dbname=e_1"),
            Some("e_1")
        );
        assert_eq!(
            database_of("postgres://u@h:5/e_1?sslmode=disable"),
            Some("e_1")
        );
        assert_eq!(database_of("postgres://u@h"), None);
    }
}
