//! `evident-witness keygen`: a fresh witness key, written once to a private file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use evident_core::SigningKey;
use evident_core::cosign::{CosignError, Cosigner};
use rand_core::{OsRng, RngCore as _};

/// Why a key could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeygenError {
    /// The name is not a valid key name.
    #[error(transparent)]
    Key(#[from] CosignError),
    /// The file exists: a witness key is never overwritten.
    #[error("{0} already exists; a witness key is never overwritten (move it away first)")]
    Exists(PathBuf),
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A fresh witness key under `name`: ML-DSA-44 if `ml_dsa`, else Ed25519.
pub fn generate(name: &str, ml_dsa: bool) -> Result<Cosigner, CosignError> {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    if ml_dsa {
        Cosigner::ml_dsa_44(name, seed)
    } else {
        Cosigner::ed25519(name, SigningKey::from_bytes(&seed))
    }
}

/// Writes the private key text to a new file readable by its owner only (0600), and
/// fsyncs it. Refuses an existing file.
pub fn write_private(cosigner: &Cosigner, path: &Path) -> Result<(), KeygenError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeygenError::Exists(path.to_owned())
        } else {
            KeygenError::Write {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let write = |source| KeygenError::Write {
        path: path.to_owned(),
        source,
    };
    file.write_all(format!("{}\n", cosigner.to_private_text()).as_bytes())
        .map_err(write)?;
    file.sync_all().map_err(write)?;
    Ok(())
}
