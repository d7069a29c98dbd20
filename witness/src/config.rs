//! The witness's configuration file (TOML): where it listens, its key, its state, and the
//! logs it follows with the keys it trusts for each. Parsed once at start; nothing here
//! touches the network or the state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use evident_core::note::Verifier;
use serde::Deserialize;

/// The default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7380";

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("config {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// A value is wrong.
    #[error("config {path}: {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    key_file: PathBuf,
    state_dir: PathBuf,
    #[serde(default)]
    log: Vec<LogEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogEntry {
    origin: String,
    key: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The file holding the witness's private key (`evident-witness keygen` writes it).
    pub key_file: PathBuf,
    /// The directory of the witness's state: the latest cosigned checkpoint of each log,
    /// and the evidence of forks it refused.
    pub state_dir: PathBuf,
    /// The logs followed, by origin, each with the log keys trusted for it.
    ///
    /// Invariant: every origin has at least one key.
    pub logs: BTreeMap<String, Vec<Verifier>>,
}

impl Config {
    /// Reads and checks a configuration file. Relative `key_file` and `state_dir` are
    /// taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            ConfigError::Value { message, .. } => ConfigError::Value {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let path = PathBuf::new();
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let value = |message: String| ConfigError::Value {
            path: path.clone(),
            message,
        };
        let listen_text = file.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text
            .parse()
            .map_err(|e| value(format!("listen = {listen_text:?}: {e}")))?;
        let mut logs: BTreeMap<String, Vec<Verifier>> = BTreeMap::new();
        for entry in file.log {
            if entry.origin.is_empty() || entry.origin.contains('\n') {
                return Err(value(format!(
                    "log origin {:?} must be one non-empty line",
                    entry.origin
                )));
            }
            let texts: Vec<&String> = entry.key.iter().chain(entry.keys.iter()).collect();
            if texts.is_empty() {
                return Err(value(format!(
                    "log {:?} has no key (set key = \"<verifier key>\" or keys = [...])",
                    entry.origin
                )));
            }
            let keys = logs.entry(entry.origin.clone()).or_default();
            for text in texts {
                let verifier = Verifier::parse(text)
                    .map_err(|e| value(format!("log {:?}: {e}", entry.origin)))?;
                if !keys.contains(&verifier) {
                    keys.push(verifier);
                }
            }
        }
        Ok(Config {
            listen,
            key_file: base.join(file.key_file),
            state_dir: base.join(file.state_dir),
            logs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evident_core::SigningKey;
    use evident_core::note::Signer;

    fn key(seed: u8) -> String {
        Signer::new("log.example/a", SigningKey::from_bytes(&[seed; 32]))
            .unwrap()
            .verifier()
            .to_string()
    }

    #[test]
    fn several_keys_for_one_origin_are_merged() {
        let text = format!(
            "key_file = \"w.key\"\nstate_dir = \"state\"\n\
             [[log]]\norigin = \"log.example/a\"\nkey = \"{}\"\n\
             [[log]]\norigin = \"log.example/a\"\nkeys = [\"{}\", \"{}\"]\n",
            key(1),
            key(2),
            key(1)
        );
        let config = Config::parse(&text, Path::new("/etc/w")).unwrap();
        assert_eq!(config.logs["log.example/a"].len(), 2);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.key_file, Path::new("/etc/w/w.key"));
    }

    #[test]
    fn a_log_without_a_key_is_refused() {
        let text = "key_file = \"k\"\nstate_dir = \"s\"\n[[log]]\norigin = \"o\"\n";
        let err = Config::parse(text, Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("has no key"), "{err}");
    }

    #[test]
    fn an_unknown_setting_is_refused() {
        let text = "key_file = \"k\"\nstate_dir = \"s\"\nlisten_on = \"x\"\n";
        assert!(Config::parse(text, Path::new(".")).is_err());
    }
}
