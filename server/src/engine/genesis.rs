//! The root of trust: the genesis administrators, fixed in the store at first start, and
//! the registry rebuilt from them and the log's registry entries.

use std::path::Path;

use evident_core::record::LeafRecord;
use evident_core::registry::{GenesisAdmin, GenesisDocument, Registry};
use evident_core::{PublicKey, SigningKey};

use crate::config::Config;
use crate::store::{Store, StoreError};

/// File name of the administrator key `evidentd` creates when none is configured.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// Why the registry cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The config's genesis is not the one the log was started with.
    #[error(
        "the configured genesis administrators differ from the ones this log was started \
         with ({recorded}); a log keeps its genesis for life: change administrators with \
         `evident admin add|remove`"
    )]
    Changed {
        /// The recorded genesis, in words.
        recorded: String,
    },
    /// The genesis is invalid.
    #[error("genesis: {0}")]
    Invalid(String),
    /// Writing the administrator key failed.
    #[error("creating the first administrator key {path}: {source}")]
    KeyFile {
        /// The key file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A registry entry in the store does not apply.
    #[error("entry {index}: registry entry does not apply: {reason}")]
    Replay {
        /// The entry.
        index: u64,
        /// Why.
        reason: String,
    },
}

/// What [`resolve`] found or made.
#[derive(Debug)]
pub struct Genesis {
    /// The genesis registry state.
    pub registry: Registry,
    /// The genesis as a document, as verifiers pin it.
    pub document: GenesisDocument,
    /// Set when this start created the first administrator key.
    pub created_admin_key: Option<std::path::PathBuf>,
}

/// Returns the log's genesis: the one recorded in the store; or, on a new store, the
/// configured one, or a freshly created administrator key when none is configured.
pub fn resolve(config: &Config, store: &Store) -> Result<Genesis, GenesisError> {
    let configured = config
        .check()
        .map_err(|e| GenesisError::Invalid(e.to_string()))?;
    let threshold = config.genesis.threshold.unwrap_or(1);
    let from_config = GenesisDocument {
        threshold,
        admins: configured
            .iter()
            .map(|a| GenesisAdmin {
                identity: a.identity.clone(),
                public_key: a.key.to_hex(),
            })
            .collect(),
    };
    let mut created_admin_key = None;
    let recorded = match store.genesis()? {
        Some(bytes) => {
            let recorded: GenesisDocument = serde_json::from_slice(&bytes).map_err(|e| {
                GenesisError::Invalid(format!("the recorded genesis does not parse: {e}"))
            })?;
            if !from_config.admins.is_empty() && from_config != recorded {
                return Err(GenesisError::Changed {
                    recorded: recorded.describe(),
                });
            }
            recorded
        }
        None => {
            let recorded = if from_config.admins.is_empty() {
                let (path, key) = create_admin_key(&config.data_dir)?;
                created_admin_key = Some(path);
                GenesisDocument {
                    threshold: 1,
                    admins: vec![GenesisAdmin {
                        identity: "admin".into(),
                        public_key: key.to_hex(),
                    }],
                }
            } else {
                from_config.clone()
            };
            store.set_genesis(&serde_json::to_vec(&recorded).expect("the genesis serializes"))?;
            // Instances starting together on one empty database each record theirs: the
            // first one recorded stands, and every instance reads it back.
            let stored = store.genesis()?.unwrap_or_default();
            let stood: GenesisDocument = serde_json::from_slice(&stored).map_err(|e| {
                GenesisError::Invalid(format!("the recorded genesis does not parse: {e}"))
            })?;
            if stood != recorded {
                if let Some(path) = created_admin_key.take() {
                    let _ = std::fs::remove_file(path);
                }
                if !from_config.admins.is_empty() && from_config != stood {
                    return Err(GenesisError::Changed {
                        recorded: stood.describe(),
                    });
                }
            }
            stood
        }
    };
    let registry = recorded
        .to_registry()
        .map_err(|e| GenesisError::Invalid(e.to_string()))?;
    Ok(Genesis {
        registry,
        document: recorded,
        created_admin_key,
    })
}

/// Creates `admin.key`, or loads it if a start that crashed before recording the genesis
/// already created it.
fn create_admin_key(dir: &Path) -> Result<(std::path::PathBuf, PublicKey), GenesisError> {
    let path = dir.join(ADMIN_KEY_FILE);
    let err = |source| GenesisError::KeyFile {
        path: path.clone(),
        source,
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        let seed: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                GenesisError::Invalid(format!("{} is not a signing key", path.display()))
            })?;
        return Ok((
            path,
            PublicKey::from_signing_key(&SigningKey::from_bytes(&seed)),
        ));
    }
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let key = SigningKey::from_bytes(&seed);
    // Durable, with its folder entry, before the genesis that names it is recorded.
    crate::logkey::write_private(&path, &hex::encode(seed)).map_err(err)?;
    Ok((path, PublicKey::from_signing_key(&key)))
}

/// Replays the registry entries below `end` onto the genesis state.
pub fn replay(store: &Store, genesis: &Registry, end: u64) -> Result<Registry, GenesisError> {
    replay_until(store, genesis, end, i64::MAX).map(|(registry, _)| registry)
}

/// Replays the registry entries below `end` integrated at or before `time`; returns the
/// registry and the index of the first entry not covered (`end`, or the first registry
/// entry after `time`).
pub fn replay_until(
    store: &Store,
    genesis: &Registry,
    end: u64,
    time: i64,
) -> Result<(Registry, u64), GenesisError> {
    let mut registry = genesis.clone();
    for index in store.registry_entries(0, end)? {
        let bytes = store.entry(index)?.ok_or(GenesisError::Replay {
            index,
            reason: "the entry is missing".into(),
        })?;
        let record = LeafRecord::decode(&bytes).map_err(|e| GenesisError::Replay {
            index,
            reason: e.to_string(),
        })?;
        if record.integrated_time_nanos() > time {
            return Ok((registry, index));
        }
        registry
            .apply(index, record.integrated_time_nanos(), record.envelope())
            .map_err(|e| GenesisError::Replay {
                index,
                reason: e.to_string(),
            })?;
    }
    Ok((registry, end))
}
