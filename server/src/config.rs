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
    /// Address of the Prometheus metrics listener (plain HTTP, `GET /metrics`); none by
    /// default. Port 0 picks a free port, printed at start.
    pub metrics_listen: Option<SocketAddr>,
    /// Folder of the store (the log's files and the indexes) and the log key.
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
    /// Seconds between background verifications of the whole store (from start, then
    /// from the end of each); 0 turns them off.
    pub verify_every_seconds: u64,
    /// The background verification reads at most this many entries a second.
    pub verify_entries_per_second: u64,
    /// Where the log and the indexes live: files in `data_dir` (the default), or
    /// PostgreSQL.
    pub store: StoreConfig,
    /// No longer used (it sized sled's page cache when the indexes were in sled); accepted
    /// so that older configuration files still load, with a warning.
    pub store_cache_mb: Option<u64>,
    /// The administrators the trust registry starts from.
    pub genesis: GenesisConfig,
    /// Transport security.
    pub tls: TlsConfig,
    /// Clients known by their certificate (mutual TLS), with their roles.
    #[serde(rename = "client")]
    pub clients: Vec<ClientConfig>,
    /// Clients known by a bearer token (its SHA-256), with their roles.
    #[serde(rename = "token")]
    pub tokens: Vec<TokenConfig>,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Witnesses asked to cosign every checkpoint (C2SP tlog-witness), `[[witness]]`.
    #[serde(rename = "witness")]
    pub witnesses: Vec<WitnessConfig>,
    /// How cosignatures are gathered.
    pub witnessing: WitnessingConfig,
    /// The log as C2SP tlog-tiles over HTTP.
    pub tiles: TilesConfig,
    /// Plaintext beyond loopback: only from the `--insecure-allow-plaintext` flag.
    #[serde(skip)]
    pub insecure_allow_plaintext: bool,
}

/// Which backend stores the log and the indexes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Segment and tile files and sorted index runs in `data_dir` (embedded).
    #[default]
    Files,
    /// Tables in a PostgreSQL database (`url`).
    Postgres,
}

/// `[store]`: where the log and the indexes live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The backend.
    pub backend: Backend,
    /// For `postgres`: a libpq connection string or URL (`EVIDENT_STORE_URL` overrides it).
    pub url: Option<String>,
    /// For `postgres` over TLS: a PEM file of the CA certificates that signed the
    /// database's certificate (the system's trusted roots when none).
    pub ca: Option<std::path::PathBuf>,
    /// For `postgres`: how long the sequencing lease lasts without renewal, in
    /// milliseconds. The holder renews it every third of that; a dead holder is replaced
    /// after about this long and a quarter.
    pub lease_ms: u64,
    /// For `postgres`: this instance's name in the lease, the queue and the logs (default:
    /// the host name and the process id).
    pub instance: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            backend: Backend::default(),
            url: None,
            ca: None,
            lease_ms: 3_000,
            instance: None,
        }
    }
}

impl StoreConfig {
    /// The name an instance holds the sequencing lease under: its name, its host and its
    /// data folder. Two machines given one name by mistake never take each other for
    /// themselves; the same instance restarted (its data folder is locked while it runs,
    /// so the one before it is gone) takes its own lease back at once.
    pub fn lease_holder(&self, data_dir: &std::path::Path) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let folder = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        // Not `instance_name`, whose default names the process: the holder outlives it.
        let name = self.instance.as_deref().unwrap_or("evidentd");
        format!("{name} @{host}:{}", folder.display())
    }

    /// This instance's name: `instance`, or the host name and the process id.
    pub fn instance_name(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "evidentd".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// Transport security. With nothing set, `evidentd` serves TLS with a certificate it makes
/// on first start (`DATA_DIR/tls`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Serve plaintext gRPC (loopback only, unless `--insecure-allow-plaintext`).
    pub plaintext: bool,
    /// The server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM, mode 0600).
    pub key: Option<PathBuf>,
    /// A CA (PEM) that client certificates must chain to: mutual TLS.
    pub client_ca: Option<PathBuf>,
    /// More names (DNS or IP) for a made certificate, beside localhost.
    pub names: Vec<String>,
}

/// Request limits; a request over one gets `RESOURCE_EXHAUSTED` naming it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sustained requests per second of one client (a token, a certificate identity; all
    /// clients together when none is configured).
    pub rate_per_client: f64,
    /// Requests one client may make at once above its rate.
    pub burst_per_client: f64,
    /// Sustained requests per second of all clients together.
    pub rate_global: f64,
    /// Requests all clients together may make at once above that rate.
    pub burst_global: f64,
    /// Requests of one client in flight at once.
    pub max_concurrent_per_client: usize,
    /// Requests in flight at once, all clients together.
    pub max_concurrent: usize,
    /// How long a request may take before it is cancelled, in milliseconds.
    pub request_timeout_ms: u64,
    /// Open connections at once, all peers together; a connection over the cap is closed
    /// as soon as it is accepted.
    pub max_connections: usize,
    /// Open connections at once from one peer IP address.
    pub max_connections_per_ip: usize,
    /// Requests (HTTP/2 streams) in flight at once on one connection.
    pub max_streams_per_connection: u32,
    /// How long a new connection has to send its first bytes and, with TLS, to finish its
    /// handshake, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Interval of HTTP/2 keepalive pings, in milliseconds; a peer that does not answer
    /// one within `keepalive_timeout_ms` is disconnected.
    pub keepalive_interval_ms: u64,
    /// How long a keepalive ping may go unanswered, in milliseconds.
    pub keepalive_timeout_ms: u64,
    /// Age at which a connection is asked to close (HTTP/2 GOAWAY; clients reconnect), in
    /// milliseconds. Requests in flight get `request_timeout_ms` more to finish.
    pub max_connection_age_ms: u64,
    /// Sustained refusals per second (failed authentication or authorization) one peer IP
    /// address may cause; over this rate every request from that address is refused with
    /// `RESOURCE_EXHAUSTED` before its credentials are looked at.
    pub refused_rate_per_ip: f64,
    /// Refusals one peer IP address may cause at once above that rate.
    pub refused_burst_per_ip: f64,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            rate_per_client: 5_000.0,
            burst_per_client: 10_000.0,
            rate_global: 50_000.0,
            burst_global: 100_000.0,
            max_concurrent_per_client: 512,
            max_concurrent: 4_096,
            request_timeout_ms: 30_000,
            max_connections: 1_024,
            max_connections_per_ip: 128,
            max_streams_per_connection: 64,
            handshake_timeout_ms: 10_000,
            keepalive_interval_ms: 60_000,
            keepalive_timeout_ms: 20_000,
            max_connection_age_ms: 3_600_000,
            refused_rate_per_ip: 10.0,
            refused_burst_per_ip: 100.0,
        }
    }
}

/// A client known by its certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// A subject common name or a DNS, URI or email subject alternative name of the client
    /// certificate.
    pub identity: String,
    /// `submitter`, `auditor`, `admin`.
    pub roles: Vec<String>,
}

/// A client known by a bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs.
    pub name: String,
    /// SHA-256 of the token, 64 hex digits (the token itself is never stored).
    pub sha256: String,
    /// `submitter`, `auditor`, `admin`.
    pub roles: Vec<String>,
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
    /// Every entry replayed (chain, times, signatures against the registry of their time,
    /// tree nodes, indexes) and the root against the last checkpoint: start-up time grows
    /// with the log.
    Full,
    /// The same for the last `startup_tail_entries` entries and every entry the indexes
    /// lack, and the root against the checkpoint: what a crash can have damaged.
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
            metrics_listen: None,
            data_dir: PathBuf::from("evident-data"),
            origin: "evident.local/log".to_owned(),
            max_envelope_bytes: 64 * 1024,
            batch: BatchConfig::default(),
            startup_check: StartupCheck::Tail,
            startup_tail_entries: 10_000,
            store_cache_mb: None,
            store: StoreConfig::default(),
            verify_every_seconds: 24 * 3600,
            verify_entries_per_second: 5_000,
            genesis: GenesisConfig::default(),
            tls: TlsConfig::default(),
            clients: Vec::new(),
            tokens: Vec::new(),
            limits: LimitsConfig::default(),
            witnesses: Vec::new(),
            witnessing: WitnessingConfig::default(),
            tiles: TilesConfig::default(),
            insecure_allow_plaintext: false,
        }
    }
}

/// `[[witness]]`: one witness the log asks to cosign its checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's verifier key text, `name+<8 hex id>+base64(0x04 ‖ key)` (Ed25519) or
    /// `…(0x06 ‖ key)` (ML-DSA-44), as the witness's operator publishes it.
    pub key: String,
    /// The witness's submission prefix: `add-checkpoint` is posted to `<url>/add-checkpoint`.
    pub url: String,
}

/// `[witnessing]`: how the log gathers cosignatures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessingConfig {
    /// How many witnesses must cosign a checkpoint before it is published as witnessed
    /// (default: every configured witness).
    pub threshold: Option<usize>,
    /// The shortest time between two rounds of requests, in milliseconds: a witnessed
    /// checkpoint is at most about this much, plus a round trip, behind the log.
    pub interval_ms: u64,
    /// How long one witness has to answer, in milliseconds; one that does not is skipped
    /// for the round (the others' cosignatures are still published).
    pub timeout_ms: u64,
}

impl Default for WitnessingConfig {
    fn default() -> WitnessingConfig {
        WitnessingConfig {
            threshold: None,
            interval_ms: 1_000,
            timeout_ms: 5_000,
        }
    }
}

/// `[tiles]`: the log served as C2SP tlog-tiles over HTTP(S).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TilesConfig {
    /// Address of the tiles listener; none by default. Port 0 picks a free port, printed
    /// at start. HTTPS with the gRPC listener's certificate when the server serves TLS.
    pub listen: Option<SocketAddr>,
    /// Serve the tiles over plain HTTP even when the server serves TLS: behind a proxy or a
    /// CDN that terminates TLS itself.
    pub plaintext: bool,
}

impl Config {
    /// The witnesses and how many must cosign, checked.
    pub fn witness_policy(&self) -> Result<evident_core::cosign::WitnessPolicy, ConfigError> {
        let invalid = |field: String, problem: String| ConfigError::Invalid { field, problem };
        let mut keys = Vec::with_capacity(self.witnesses.len());
        for (i, witness) in self.witnesses.iter().enumerate() {
            let key = evident_core::cosign::CosignerKey::parse(&witness.key)
                .map_err(|e| invalid(format!("witness[{i}].key"), e.to_string()))?;
            let url = witness.url.trim_end_matches('/');
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    format!("witness[{i}].url"),
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
            keys.push(key);
        }
        let threshold = self.witnessing.threshold.unwrap_or(keys.len());
        if !keys.is_empty() && threshold == 0 {
            return Err(invalid(
                "witnessing.threshold".into(),
                "must be at least 1 when witnesses are configured".into(),
            ));
        }
        if self.witnessing.interval_ms == 0 || self.witnessing.timeout_ms == 0 {
            return Err(invalid(
                "witnessing.interval_ms".into(),
                "interval_ms and timeout_ms must be at least 1".into(),
            ));
        }
        evident_core::cosign::WitnessPolicy::new(keys, threshold)
            .map_err(|e| invalid("witnessing.threshold".into(), e.to_string()))
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
        let l = &self.limits;
        for (field, ok) in [
            (
                "limits.rate_per_client",
                l.rate_per_client.is_finite() && l.rate_per_client > 0.0,
            ),
            (
                "limits.burst_per_client",
                l.burst_per_client.is_finite() && l.burst_per_client >= 1.0,
            ),
            (
                "limits.rate_global",
                l.rate_global.is_finite() && l.rate_global > 0.0,
            ),
            (
                "limits.burst_global",
                l.burst_global.is_finite() && l.burst_global >= 1.0,
            ),
            (
                "limits.max_concurrent_per_client",
                l.max_concurrent_per_client >= 1,
            ),
            ("limits.max_concurrent", l.max_concurrent >= 1),
            ("limits.request_timeout_ms", l.request_timeout_ms >= 1),
            ("limits.max_connections", l.max_connections >= 1),
            (
                "limits.max_connections_per_ip",
                l.max_connections_per_ip >= 1,
            ),
            (
                "limits.max_streams_per_connection",
                l.max_streams_per_connection >= 1,
            ),
            ("limits.handshake_timeout_ms", l.handshake_timeout_ms >= 1),
            ("limits.keepalive_interval_ms", l.keepalive_interval_ms >= 1),
            ("limits.keepalive_timeout_ms", l.keepalive_timeout_ms >= 1),
            ("limits.max_connection_age_ms", l.max_connection_age_ms >= 1),
            (
                "limits.refused_rate_per_ip",
                l.refused_rate_per_ip.is_finite() && l.refused_rate_per_ip > 0.0,
            ),
            (
                "limits.refused_burst_per_ip",
                l.refused_burst_per_ip.is_finite() && l.refused_burst_per_ip >= 1.0,
            ),
        ] {
            if !ok {
                return Err(invalid(
                    field.into(),
                    "must be positive (a burst at least 1)".into(),
                ));
            }
        }
        self.witness_policy()?;
        if !(300..=600_000).contains(&self.store.lease_ms) {
            return Err(invalid(
                "store.lease_ms".into(),
                "must be between 300 and 600000 milliseconds".into(),
            ));
        }
        if self
            .store
            .instance
            .as_ref()
            .is_some_and(|n| n.is_empty() || n.len() > 200 || n.chars().any(char::is_control))
        {
            return Err(invalid(
                "store.instance".into(),
                "must be 1 to 200 characters, none of them control characters".into(),
            ));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(invalid(
                "tls.cert".into(),
                "tls.cert and tls.key go together: give both, or neither to let evidentd \
                 make a certificate"
                    .into(),
            ));
        }
        if self.tls.plaintext && (self.tls.cert.is_some() || self.tls.client_ca.is_some()) {
            return Err(invalid(
                "tls.plaintext".into(),
                "plaintext cannot go with tls.cert or tls.client_ca".into(),
            ));
        }
        crate::auth::Auth::new(&self.clients, &self.tokens).map_err(|e| ConfigError::Invalid {
            field: e.field,
            problem: e.problem,
        })?;
        if self.store_cache_mb.is_some() {
            tracing::warn!(
                "`store_cache_mb` is no longer used (the indexes are files the OS caches); \
                 remove it from the configuration"
            );
        }
        if self.verify_every_seconds > 0 && self.verify_entries_per_second == 0 {
            return Err(invalid(
                "verify_entries_per_second".into(),
                "must be at least 1 when verify_every_seconds is set".into(),
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
