//! `evidentd`'s settings: a TOML file, overridden by command-line flags.
//!
//! Every field has a default, so `evidentd` runs with no file at all. An unknown field is an
//! error that names it: a typo must not silently fall back to a default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use evident_core::PublicKey;
use evident_core::registry::Admin;
use serde::Deserialize;

/// Everything `run` needs to know.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the gRPC listener.
    pub listen: SocketAddr,
    /// Folder of the sled store and the log key.
    pub data_dir: PathBuf,
    /// The log's origin: the first line of every checkpoint and the name of the log key.
    pub origin: String,
    /// Largest accepted envelope, in bytes of its encoding (payload, type and signatures).
    pub max_envelope_bytes: usize,
    /// Group commit.
    pub batch: BatchConfig,
    /// How much of the store to check at start.
    pub startup_check: StartupCheck,
    /// How many of the last entries a `tail` start-up check reads.
    pub startup_tail_entries: u64,
    /// sled's page cache, in MiB.
    pub store_cache_mb: u64,
    /// The administrators the trust registry starts from.
    pub genesis: GenesisConfig,
}

/// The root of trust: the administrators who sign registry changes. Recorded in the store
/// on first start; a log keeps its genesis for life.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenesisConfig {
    /// How many distinct administrators must sign a registry change (default 1).
    pub threshold: Option<usize>,
    /// The administrators. When none are configured on a new store, `evidentd` creates
    /// one key, `admin.key` in the data folder.
    #[serde(rename = "admin")]
    pub admins: Vec<AdminConfig>,
}

/// Group commit: the sequencer writes up to `max_entries` per batch, waiting at most
/// `max_delay_ms` for more once it has one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most entries in one batch (one fsync).
    pub max_entries: usize,
    /// Longest wait for more entries once a batch has one, in milliseconds.
    pub max_delay_ms: u64,
    /// Submissions waiting for the sequencer before new ones wait for room.
    pub queue_depth: usize,
}

/// How much of the store the server checks before it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartupCheck {
    /// Every entry: chain, leaf hash, and the whole tree against the last checkpoint.
    Full,
    /// The last `startup_tail_entries` entries' chain and leaf hashes, and the root against
    /// the checkpoint.
    Tail,
}

/// An administrator key with the identity it stands for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Who holds the key, e.g. `alice@example.com`.
    pub identity: String,
    /// The raw Ed25519 public key, 64 hex digits (what `evident keygen` prints).
    pub public_key: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:50051"
                .parse()
                .expect("a valid socket address literal"),
            data_dir: PathBuf::from("evident-data"),
            origin: "evident.local/log".to_owned(),
            max_envelope_bytes: 64 * 1024,
            batch: BatchConfig::default(),
            startup_check: StartupCheck::Full,
            startup_tail_entries: 10_000,
            store_cache_mb: 128,
            genesis: GenesisConfig::default(),
        }
    }
}

impl Default for BatchConfig {
    fn default() -> BatchConfig {
        BatchConfig {
            max_entries: 1024,
            max_delay_ms: 0,
            queue_depth: 8192,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings; the message names the field.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and field.
        message: String,
    },
    /// A value is out of range.
    #[error("config field `{field}`: {problem}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The group-commit wait.
    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.batch.max_delay_ms)
    }

    /// Checks ranges and parses the genesis administrators (empty when none are configured).
    pub fn check(&self) -> Result<Vec<Admin>, ConfigError> {
        let invalid = |field: String, problem: String| ConfigError::Invalid { field, problem };
        if self.batch.max_entries == 0 {
            return Err(invalid(
                "batch.max_entries".into(),
                "must be at least 1".into(),
            ));
        }
        if self.batch.queue_depth == 0 {
            return Err(invalid(
                "batch.queue_depth".into(),
                "must be at least 1".into(),
            ));
        }
        if self.store_cache_mb < 8 {
            return Err(invalid(
                "store_cache_mb".into(),
                "must be at least 8".into(),
            ));
        }
        if self.startup_tail_entries == 0 {
            return Err(invalid(
                "startup_tail_entries".into(),
                "must be at least 1".into(),
            ));
        }
        if self.max_envelope_bytes < 256 {
            return Err(invalid(
                "max_envelope_bytes".into(),
                "must be at least 256".into(),
            ));
        }
        self.genesis
            .admins
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if a.identity.trim().is_empty() {
                    return Err(invalid(
                        format!("genesis.admin[{i}].identity"),
                        "is empty".into(),
                    ));
                }
                let key = PublicKey::from_hex(&a.public_key).map_err(|e| {
                    invalid(format!("genesis.admin[{i}].public_key"), e.to_string())
                })?;
                Ok(Admin {
                    identity: a.identity.clone(),
                    key,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(text: &str) -> Result<Vec<Admin>, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check().map_err(|e| e.to_string())
    }

    #[test]
    fn out_of_range_settings_are_named() {
        for (text, field) in [
            ("store_cache_mb = 1", "store_cache_mb"),
            ("startup_tail_entries = 0", "startup_tail_entries"),
            ("max_envelope_bytes = 10", "max_envelope_bytes"),
            ("[batch]\nmax_entries = 0", "batch.max_entries"),
        ] {
            let err = checked(text).unwrap_err();
            assert!(err.contains(&format!("`{field}`")), "{text}: {err}");
        }
        assert!(checked("store_cache_mb = 64\nstartup_tail_entries = 1").is_ok());
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = checked("store_cache = 64").unwrap_err();
        assert!(err.contains("store_cache"), "{err}");
    }
}
