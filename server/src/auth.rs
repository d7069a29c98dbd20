//! Who may talk to the server: client roles from a verified client certificate (mutual
//! TLS) or from a bearer token whose SHA-256 the config holds. Attestation signatures stay
//! the proof of origin; roles only decide who may call what.

use std::collections::{BTreeSet, HashMap};

use sha2::{Digest, Sha256};
use tonic::{Request, Status};

use crate::config::{ClientConfig, TokenConfig};

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Submit attestations.
    Submitter,
    /// Read entries, proofs, queries, bundles and verdicts.
    Auditor,
    /// Submit registry changes and policy versions (and read, as an auditor).
    Admin,
}

impl Role {
    /// The role's name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "submitter" => Some(Role::Submitter),
            "auditor" => Some(Role::Auditor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any authenticated client: checkpoints and proofs, which every client verifies.
    AnyRole,
    /// This role (an administrator also has the auditor's reads).
    Role(Role),
}

/// An authenticated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// How it is named in logs: `cert:IDENTITY`, `token:NAME`, or `open`.
    pub name: String,
    /// Its roles.
    pub roles: BTreeSet<Role>,
}

impl Principal {
    fn may(&self, needs: Needs) -> bool {
        match needs {
            Needs::AnyRole => !self.roles.is_empty(),
            Needs::Role(Role::Auditor) => {
                self.roles.contains(&Role::Auditor) || self.roles.contains(&Role::Admin)
            }
            Needs::Role(role) => self.roles.contains(&role),
        }
    }
}

/// The configured clients.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Certificate identity → roles.
    certs: HashMap<String, BTreeSet<Role>>,
    /// SHA-256 of a token → (its name, roles).
    tokens: HashMap<[u8; 32], (String, BTreeSet<Role>)>,
}

/// A role name or token hash in the config that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("config field `{field}`: {problem}")]
pub struct AuthConfigError {
    /// The field.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

fn roles(field: &str, names: &[String]) -> Result<BTreeSet<Role>, AuthConfigError> {
    if names.is_empty() {
        return Err(AuthConfigError {
            field: field.to_owned(),
            problem: "names no role (submitter, auditor, admin)".into(),
        });
    }
    names
        .iter()
        .map(|n| {
            Role::parse(n).ok_or_else(|| AuthConfigError {
                field: field.to_owned(),
                problem: format!("{n:?} is not a role: use submitter, auditor or admin"),
            })
        })
        .collect()
}

/// The SHA-256 of a bearer token, as the config stores it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Auth {
    /// The clients of the config.
    pub fn new(clients: &[ClientConfig], tokens: &[TokenConfig]) -> Result<Auth, AuthConfigError> {
        let mut auth = Auth::default();
        for (i, c) in clients.iter().enumerate() {
            let field = format!("client[{i}]");
            if c.identity.trim().is_empty() {
                return Err(AuthConfigError {
                    field: format!("{field}.identity"),
                    problem: "is empty".into(),
                });
            }
            let roles = roles(&format!("{field}.roles"), &c.roles)?;
            if auth.certs.insert(c.identity.clone(), roles).is_some() {
                return Err(AuthConfigError {
                    field: format!("{field}.identity"),
                    problem: format!("{:?} is configured twice", c.identity),
                });
            }
        }
        for (i, t) in tokens.iter().enumerate() {
            let field = format!("token[{i}]");
            let hash: [u8; 32] = hex::decode(&t.sha256)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| AuthConfigError {
                    field: format!("{field}.sha256"),
                    problem: "must be 64 hex digits: the SHA-256 of the token \
                              (`evidentd token` prints it)"
                        .into(),
                })?;
            let roles = roles(&format!("{field}.roles"), &t.roles)?;
            if auth.tokens.insert(hash, (t.name.clone(), roles)).is_some() {
                return Err(AuthConfigError {
                    field: format!("{field}.sha256"),
                    problem: "the same token hash is configured twice".into(),
                });
            }
        }
        Ok(auth)
    }

    /// Whether no client is configured: then every client has every role (loopback only).
    pub fn is_open(&self) -> bool {
        self.certs.is_empty() && self.tokens.is_empty()
    }

    /// The client of a request, or `UNAUTHENTICATED`.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        if self.is_open() {
            return Ok(Principal {
                name: "open".into(),
                roles: [Role::Submitter, Role::Auditor, Role::Admin].into(),
            });
        }
        if let Some(value) = request.metadata().get("authorization") {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    Status::unauthenticated("the authorization header is not `Bearer TOKEN`")
                })?;
            let hash: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
            return match self.tokens.get(&hash) {
                Some((name, roles)) => Ok(Principal {
                    name: format!("token:{name}"),
                    roles: roles.clone(),
                }),
                None => Err(Status::unauthenticated(
                    "the bearer token is not one this server knows",
                )),
            };
        }
        if let Some(certs) = request.peer_certs() {
            if let Some(leaf) = certs.first() {
                let names = cert_identities(leaf.as_ref());
                for name in &names {
                    if let Some(roles) = self.certs.get(name) {
                        return Ok(Principal {
                            name: format!("cert:{name}"),
                            roles: roles.clone(),
                        });
                    }
                }
                return Err(Status::unauthenticated(format!(
                    "the client certificate ({}) is not one this server gives a role to",
                    names.join(", ")
                )));
            }
        }
        Err(Status::unauthenticated(
            "no credentials: present a client certificate (--cert, --cert-key) or a bearer \
             token (--token)",
        ))
    }

    /// The client of a request if it may make a call that `needs`; `UNAUTHENTICATED` or
    /// `PERMISSION_DENIED` (logged with the peer) otherwise.
    pub fn check<T>(
        &self,
        request: &Request<T>,
        needs: Needs,
        what: &str,
    ) -> Result<Principal, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "?".into());
        let principal = self.authenticate(request).inspect_err(|e| {
            tracing::warn!(%peer, what, reason = e.message(), "unauthenticated request refused");
        })?;
        if principal.may(needs) {
            return Ok(principal);
        }
        let needed = match needs {
            Needs::AnyRole => "any role".to_owned(),
            Needs::Role(r) => format!("the {} role", r.as_str()),
        };
        let has: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
        tracing::warn!(%peer, client = %principal.name, what, "request refused: role");
        Err(Status::permission_denied(format!(
            "{} (roles: {}) may not {what}: that needs {needed}",
            principal.name,
            if has.is_empty() {
                "none".to_owned()
            } else {
                has.join(", ")
            }
        )))
    }
}

/// The names a client certificate goes by: its subject's common names and its DNS, URI and
/// email subject alternative names.
fn cert_identities(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::RFC822Name(n) | GeneralName::URI(n) => {
                    names.push((*n).to_owned())
                }
                _ => {}
            }
        }
    }
    names
}
