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
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
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
    let mut command = Command::new(evidentd);
    command
        .arg("--config")
        .arg(&config)
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
            return Ok(Started {
                child,
                url: format!("http://{addr}"),
                _dir: dir,
            });
        }
    }
    bail!("evidentd exited before listening")
}
