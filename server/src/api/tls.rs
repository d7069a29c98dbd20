//! Transport security: TLS from configured files, or a certificate `evidentd` makes for
//! itself on first start; mutual TLS when a client CA is configured; plaintext only when
//! configured, and then only on loopback unless explicitly allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::TlsConfig;

/// Why transport security could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    File {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A private key file is readable by others.
    #[error(
        "{path} has mode {mode:o}: a private key must be readable by its owner only (chmod 600 {path})"
    )]
    KeyMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Plaintext on a non-loopback address without the explicit override.
    #[error(
        "plaintext gRPC on {0} would expose submissions and tokens to the network: listen on \
         loopback, configure [tls], or pass --insecure-allow-plaintext"
    )]
    PlaintextOffLoopback(SocketAddr),
    /// The certificate could not be made.
    #[error("making the server certificate: {0}")]
    Generate(String),
    /// The certificate or key could not be used for the tiles listener's HTTPS.
    #[error("the tiles listener's TLS: {0}")]
    Https(String),
}

/// How the server talks to clients, for the start-up banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// No TLS.
    Plaintext,
    /// TLS; `clients_ca` when client certificates are verified (mutual TLS).
    Tls {
        /// The server certificate file.
        cert: PathBuf,
        /// Whether `evidentd` made the certificate itself.
        generated: bool,
        /// The CA file that verifies client certificates.
        clients_ca: Option<PathBuf>,
    },
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Plaintext => f.write_str("PLAINTEXT (no TLS)"),
            Mode::Tls {
                cert,
                generated,
                clients_ca,
            } => {
                write!(f, "TLS with {}", cert.display())?;
                if *generated {
                    let ca = cert.with_file_name(CA_FILE);
                    write!(
                        f,
                        " (made by evidentd; clients trust {} with --ca)",
                        ca.display()
                    )?;
                }
                match clients_ca {
                    Some(ca) => write!(
                        f,
                        "; mutual TLS: client certificates verified against {}",
                        ca.display()
                    ),
                    None => f.write_str("; no client certificates"),
                }
            }
        }
    }
}

/// Where a made certificate lives, under the data folder.
pub const TLS_DIR: &str = "tls";
/// The CA certificate of a made server certificate.
pub const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server.key";

/// Checks that a private key file is readable by its owner only.
pub fn check_private(path: &Path) -> Result<(), TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|source| TlsError::File {
                what: "reading",
                path: path.to_owned(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(TlsError::KeyMode {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The server's TLS settings, or `None` for plaintext; makes a certificate on first start
/// when none is configured.
pub fn server_tls(
    config: &TlsConfig,
    data_dir: &Path,
    listen: SocketAddr,
    allow_plaintext_anywhere: bool,
) -> Result<(Option<ServerTlsConfig>, Mode), TlsError> {
    if config.plaintext {
        if !listen.ip().is_loopback() && !allow_plaintext_anywhere {
            return Err(TlsError::PlaintextOffLoopback(listen));
        }
        return Ok((None, Mode::Plaintext));
    }
    let (cert, key, generated) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), false),
        _ => {
            let dir = data_dir.join(TLS_DIR);
            let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
            if !cert.exists() || !key.exists() {
                // Half of a pair (a crash while making it, one file deleted): make both anew.
                for path in [&cert, &key, &dir.join(CA_FILE)] {
                    match std::fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => {
                            return Err(TlsError::File {
                                what: "removing",
                                path: path.clone(),
                                source,
                            });
                        }
                    }
                }
                generate(&dir, &config.names)?;
            }
            (cert, key, true)
        }
    };
    check_private(&key)?;
    let identity = Identity::from_pem(
        read("reading the certificate", &cert)?,
        read("reading the key", &key)?,
    );
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.client_ca {
        // Optional at the TLS layer: a client may authenticate with a bearer token instead;
        // the roles decide (an unauthenticated request gets UNAUTHENTICATED).
        tls = tls
            .client_ca_root(Certificate::from_pem(read("reading the client CA", ca)?))
            .client_auth_optional(true);
    }
    Ok((
        Some(tls),
        Mode::Tls {
            cert,
            generated,
            clients_ca: config.client_ca.clone(),
        },
    ))
}

/// Makes a CA and a server certificate for localhost (and `names`) in `dir`; the CA's key
/// is not kept, so nothing else can ever be signed with it.
fn generate(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let fail = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "evidentd local CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut sans = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    sans.extend(names.iter().cloned());
    let server_key = KeyPair::generate().map_err(fail)?;
    let mut server = CertificateParams::new(sans).map_err(fail)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "evidentd");
    let server_cert = server.signed_by(&server_key, &issuer).map_err(fail)?;
    let io = |what: &'static str, path: PathBuf| {
        move |source| TlsError::File {
            what,
            path: path.clone(),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("creating", dir.to_owned()))?;
    let key_path = dir.join(KEY_FILE);
    crate::logkey::write_private(&key_path, &server_key.serialize_pem())
        .map_err(io("writing", key_path.clone()))?;
    for (name, pem) in [
        (CERT_FILE, server_cert.pem() + &ca_cert.pem()),
        (CA_FILE, ca_cert.pem()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, pem).map_err(io("writing", path.clone()))?;
    }
    tracing::info!(dir = %dir.display(), "made a server certificate and its CA");
    Ok(())
}

/// The TLS settings of the tiles listener (HTTPS): the gRPC listener's certificate and key —
/// configured, or made at first start by [`server_tls`], which must have run — without
/// client certificates (the tiles are public); `None` when the server serves plaintext.
pub fn https(
    config: &TlsConfig,
    data_dir: &Path,
) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    if config.plaintext {
        return Ok(None);
    }
    let (cert, key) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            let dir = data_dir.join(TLS_DIR);
            (dir.join(CERT_FILE), dir.join(KEY_FILE))
        }
    };
    check_private(&key)?;
    let bad = |path: &Path, e: &dyn std::fmt::Display| {
        TlsError::Https(format!("{}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_slice_iter(&read("reading the certificate", &cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&cert, &e))?;
    if chain.is_empty() {
        return Err(bad(&cert, &"no certificate in the file"));
    }
    let private = PrivateKeyDer::from_pem_slice(&read("reading the key", &key)?)
        .map_err(|e| bad(&key, &e))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Https(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| bad(&cert, &e))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(std::sync::Arc::new(server)))
}
