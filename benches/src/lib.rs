//! Evident's benchmarks: criterion micro-benchmarks in `benches/`, the load generator in `src/bin/`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// A real `evidentd` started by a bench binary on a fresh data folder; stopped (SIGTERM,
/// then waited for) when dropped.
#[derive(Debug)]
pub struct Started {
    child: std::process::Child,
    /// `http://ADDR` of its plaintext loopback listener.
    pub url: String,
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
        let (child, url) = spawn(
            &self.command,
            &self._dir.path().join("evidentd.toml"),
            &self.log,
            false,
        )?;
        self.child = child;
        self.url = url;
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
fn spawn(
    evidentd: &Path,
    config: &Path,
    log: &str,
    quiet_stderr: bool,
) -> anyhow::Result<(std::process::Child, String)> {
    let mut command = Command::new(evidentd);
    command
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped());
    if quiet_stderr {
        command.stderr(Stdio::null());
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", evidentd.display()))?;
    let stdout = child.stdout.take().context("evidentd stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(addr) = line.strip_prefix("listening on ") {
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return Ok((child, format!("http://{addr}")));
        }
    }
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
    let (child, url) = spawn(evidentd, &config, log, quiet_stderr)?;
    Ok(Started {
        child,
        url,
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
