//! The log's signing key: created on first start in the data folder (mode 0600), loaded on
//! every later start. Its text is never logged.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use evident_core::SigningKey;
use evident_core::note::Signer;

/// File name of the private key in the data folder.
pub const KEY_FILE: &str = "log.key";
/// File name of the public verifier key in the data folder.
pub const PUB_FILE: &str = "log.pub";

/// The key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("log key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a signer key.
    #[error("log key {path}: {reason}")]
    Invalid {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        reason: String,
    },
}

/// Loads `dir/log.key`, or creates it for `origin` if there is none.
pub fn load_or_create(dir: &Path, origin: &str) -> Result<Signer, KeyFileError> {
    let path = dir.join(KEY_FILE);
    let io = |source| KeyFileError::Io {
        path: path.clone(),
        source,
    };
    let signer = match std::fs::read_to_string(&path) {
        Ok(text) => {
            crate::tls::check_private(&path).map_err(|e| KeyFileError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let signer = Signer::parse_private(&text).map_err(|e| KeyFileError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if signer.verifier().name() != origin {
                return Err(KeyFileError::Invalid {
                    path: path.clone(),
                    reason: format!(
                        "the key is for origin {:?} but the configured origin is {origin:?}; \
                         a log keeps its origin for life",
                        signer.verifier().name()
                    ),
                });
            }
            signer
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
            let signer = Signer::new(origin, SigningKey::from_bytes(&seed)).map_err(|e| {
                KeyFileError::Invalid {
                    path: path.clone(),
                    reason: format!("origin cannot name a key: {e}"),
                }
            })?;
            write_private(&path, &signer.to_private_text()).map_err(io)?;
            tracing::info!(path = %path.display(), "created the log key");
            signer
        }
        Err(e) => return Err(io(e)),
    };
    let pub_path = dir.join(PUB_FILE);
    std::fs::write(&pub_path, format!("{}\n", signer.verifier())).map_err(|source| {
        KeyFileError::Io {
            path: pub_path,
            source,
        }
    })?;
    Ok(signer)
}

/// Writes a new secret file: mode 0600, refusing to overwrite, synced with its folder entry.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
