//! Evident's benchmarks: criterion micro-benchmarks in `benches/`, the load generators in
//! `src/bin/` (`loadgen` against one server, `cluster` against several on PostgreSQL).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

pub mod load;

/// A real `evidentd` started by a bench binary on a fresh data folder; stopped (SIGTERM,
/// then waited for) when dropped.
#[derive(Debug)]
pub struct Started {
    child: std::process::Child,
    /// `http://ADDR` of its plaintext loopback listener.
    pub url: String,
    /// `http://ADDR` of its tiles listener, when its config sets `[tiles]`.
    pub tiles_url: Option<String>,
    _dir: tempfile::TempDir,
    command: std::path::PathBuf,
    log: String,
}

impl Started {
    /// The server's process id (for reading its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's data folder.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    /// Stops the server (SIGTERM, waited for) and starts it again on the same data folder
    /// and config; returns when it was started again (it listens at once and answers once
    /// its start-up check is done). The new listener's address is in `url`.
    pub fn restart(&mut self) -> anyhow::Result<std::time::Instant> {
        self.restart_after(false)
    }

    /// Stops the server — with SIGKILL when `kill`, as a crash would, else SIGTERM — and
    /// starts it again on the same folder; returns when the new one was started.
    pub fn restart_after(&mut self, kill: bool) -> anyhow::Result<std::time::Instant> {
        if kill {
            let _ = self.child.kill();
            let _ = self.child.wait();
        } else {
            stop(&mut self.child);
        }
        let started = std::time::Instant::now();
        let spawned = spawn(
            &self.command,
            &self._dir.path().join("evidentd.toml"),
            &self.log,
            false,
        )?;
        self.child = spawned.child;
        self.url = spawned.url;
        self.tiles_url = spawned.tiles_url;
        Ok(started)
    }
}

fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Starts `evidentd --config CONFIG`; returns once it prints the address it listens on.
fn spawn(evidentd: &Path, config: &Path, log: &str, quiet_stderr: bool) -> anyhow::Result<Spawned> {
    let stderr = if quiet_stderr {
        Stdio::null()
    } else {
        Stdio::inherit()
    };
    spawn_evidentd(evidentd, config, log, stderr)
}

/// An `evidentd` started by [`spawn_evidentd`], listening.
#[derive(Debug)]
pub struct Spawned {
    /// The process; the caller stops it.
    pub child: std::process::Child,
    /// `http://ADDR` of its plaintext loopback listener.
    pub url: String,
    /// `http://ADDR/metrics` when its config sets `metrics_listen`.
    pub metrics_url: Option<String>,
    /// `http://ADDR` of its tiles listener when its config sets `[tiles]`.
    pub tiles_url: Option<String>,
}

/// Starts `evidentd --config CONFIG` with `RUST_LOG=log` and its standard error to
/// `stderr`; returns once it prints the address it listens on (and, when the config sets
/// `metrics_listen`, the address of its metrics).
pub fn spawn_evidentd(
    evidentd: &Path,
    config: &Path,
    log: &str,
    stderr: Stdio,
) -> anyhow::Result<Spawned> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let with_metrics = text.contains("metrics_listen");
    let with_tiles = text.contains("[tiles]");
    let mut child = Command::new(evidentd)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", evidentd.display()))?;
    let stdout = child.stdout.take().context("evidentd stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(addr) = line.strip_prefix("listening on ") {
            // The metrics address is printed on the line after the listener's.
            let metrics_url = with_metrics
                .then(|| lines.next())
                .flatten()
                .and_then(Result::ok)
                .and_then(|l| l.strip_prefix("metrics on ").map(str::to_owned));
            // Then the tiles listener's.
            let tiles_url = with_tiles
                .then(|| lines.next())
                .flatten()
                .and_then(Result::ok)
                .and_then(|l| l.strip_prefix("tiles on ").map(str::to_owned));
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return Ok(Spawned {
                child,
                url: format!("http://{addr}"),
                metrics_url,
                tiles_url,
            });
        }
    }
    let _ = child.wait();
    bail!("evidentd exited before listening")
}

impl Drop for Started {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Starts `evidentd` on `127.0.0.1:0`, plaintext, with a fresh data folder and `settings`
/// (more of the TOML config: genesis, clients, limits) after the listener and data folder
/// lines; `RUST_LOG` is `log`. Returns once it prints the address it listens on.
pub fn start_evidentd(
    evidentd: &Path,
    settings: &str,
    log: &str,
    quiet_stderr: bool,
) -> anyhow::Result<Started> {
    let dir = tempfile::tempdir().context("creating a data folder")?;
    let config = dir.path().join("evidentd.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{settings}\n",
            dir.path().join("data").display().to_string(),
        ),
    )?;
    let spawned = spawn(evidentd, &config, log, quiet_stderr)?;
    Ok(Started {
        child: spawned.child,
        url: spawned.url,
        tiles_url: spawned.tiles_url,
        _dir: dir,
        command: evidentd.to_owned(),
        log: log.to_owned(),
    })
}

/// The bytes allocated under a folder (blocks, not the apparent length of sparse files).
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => {
                        use std::os::unix::fs::MetadataExt as _;
                        m.blocks() * 512
                    }
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
