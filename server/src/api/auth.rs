//! Who may talk to the server: client roles from a verified client certificate (mutual
//! TLS) or from a bearer token whose SHA-256 the config holds. Attestation signatures stay
//! the proof of origin; roles only decide who may call what.
//!
//! [`FrontDoor`] checks a call's credentials from its headers and its connection before
//! anything reads the request body: an unauthenticated peer never makes the server buffer
//! a message. The handlers check the exact role again, once they know what is submitted.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Code, Request, Status};

use crate::api::reason::{Reason, refuse};
use crate::config::{ClientConfig, TokenConfig};
use crate::limits::{CappedBody, Refusals};
use crate::metrics::METRICS;

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
    /// One of these roles: a submission, before its payload type is known.
    Either(Role, Role),
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
    /// `PERMISSION_DENIED` unless the client has what a call that `needs` needs; `what`
    /// names the call in the refusal.
    pub fn require(&self, needs: Needs, what: &str) -> Result<(), Status> {
        if self.may(needs) {
            return Ok(());
        }
        tracing::warn!(client = %self.name, what, "request refused: role");
        Err(denied(self, needs, what))
    }

    fn may(&self, needs: Needs) -> bool {
        match needs {
            Needs::AnyRole => !self.roles.is_empty(),
            Needs::Role(Role::Auditor) => {
                self.roles.contains(&Role::Auditor) || self.roles.contains(&Role::Admin)
            }
            Needs::Role(role) => self.roles.contains(&role),
            Needs::Either(a, b) => self.may(Needs::Role(a)) || self.may(Needs::Role(b)),
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
        let certs = request.peer_certs();
        self.identify(
            request
                .metadata()
                .get("authorization")
                .map(|v| v.as_bytes()),
            certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref()),
        )
    }

    /// The client presenting `authorization` (the header's value) or the verified client
    /// certificate `leaf` (DER), or `UNAUTHENTICATED`.
    pub fn identify(
        &self,
        authorization: Option<&[u8]>,
        leaf: Option<&[u8]>,
    ) -> Result<Principal, Status> {
        if self.is_open() {
            return Ok(Principal {
                name: "open".into(),
                roles: [Role::Submitter, Role::Auditor, Role::Admin].into(),
            });
        }
        if let Some(value) = authorization {
            let token = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| unauthenticated("the authorization header is not `Bearer TOKEN`"))?;
            let hash: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
            return match self.tokens.get(&hash) {
                Some((name, roles)) => Ok(Principal {
                    name: format!("token:{name}"),
                    roles: roles.clone(),
                }),
                None => Err(unauthenticated(
                    "the bearer token is not one this server knows",
                )),
            };
        }
        if let Some(leaf) = leaf {
            let names = cert_identities(leaf);
            for name in &names {
                if let Some(roles) = self.certs.get(name) {
                    return Ok(Principal {
                        name: format!("cert:{name}"),
                        roles: roles.clone(),
                    });
                }
            }
            return Err(unauthenticated(format!(
                "the client certificate ({}) is not one this server gives a role to",
                names.join(", ")
            )));
        }
        Err(unauthenticated(
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
        tracing::warn!(%peer, client = %principal.name, what, "request refused: role");
        Err(denied(&principal, needs, what))
    }
}

/// `PERMISSION_DENIED` for `principal`, which lacks what a call that `needs` needs.
fn denied(principal: &Principal, needs: Needs, what: &str) -> Status {
    let needed = match needs {
        Needs::AnyRole => "any role".to_owned(),
        Needs::Role(r) => format!("the {} role", r.as_str()),
        Needs::Either(a, b) => format!("the {} or {} role", a.as_str(), b.as_str()),
    };
    let has: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
    refuse(
        Code::PermissionDenied,
        Reason::RoleMissing,
        format!(
            "{} (roles: {}) may not {what}: that needs {needed}",
            principal.name,
            if has.is_empty() {
                "none".to_owned()
            } else {
                has.join(", ")
            }
        ),
        &[("client", &principal.name)],
    )
}

/// `UNAUTHENTICATED`: no credentials, or none this server accepts.
fn unauthenticated(message: impl Into<String>) -> Status {
    refuse(Code::Unauthenticated, Reason::Unauthenticated, message, &[])
}

/// The gRPC services any peer may call without credentials.
const OPEN_SERVICES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// What the front door caps a call's body for, by its path.
fn call_of(path: &str) -> crate::limits::Call {
    use crate::limits::Call;
    match path.strip_prefix("/evident.v1.Ledger/") {
        Some("Submit") => Call::Submit,
        Some("SubmitBatch") => Call::SubmitBatch,
        Some("SubmitStream") => Call::SubmitStream,
        _ => Call::Other,
    }
}

/// What a call to `path` needs, and how a refusal names the call; `None` for the open
/// services. The handlers of `service.rs` check the same roles again.
fn needs_of(path: &str) -> Option<(Needs, &'static str)> {
    if OPEN_SERVICES.iter().any(|open| path.starts_with(open)) {
        return None;
    }
    let auditor = Needs::Role(Role::Auditor);
    Some(match path.strip_prefix("/evident.v1.Ledger/") {
        // Which role a submission needs depends on its payload type, in the body: the
        // handler decides between the two.
        // A batch or stream may mix both: the handler checks each envelope's role.
        Some("Submit" | "SubmitBatch" | "SubmitStream") => (
            Needs::Either(Role::Submitter, Role::Admin),
            "submit entries",
        ),
        Some("Query") => (auditor, "query the log"),
        Some("GetEntries" | "GetEntry") => (auditor, "read entries"),
        Some("ListSigners") => (auditor, "list the trust registry"),
        Some("GetSignerHistory") => (auditor, "read the trust registry"),
        Some("ListPolicies") => (auditor, "list policies"),
        Some("GetPolicy") => (auditor, "read policies"),
        Some("GetReleaseEvidence") => (auditor, "read release evidence"),
        Some("VerifyRelease") => (auditor, "verify releases"),
        Some("GetCheckpoint") => (Needs::AnyRole, "read checkpoints"),
        Some("GetInclusionProof" | "GetConsistencyProof") => (Needs::AnyRole, "read proofs"),
        _ => (Needs::AnyRole, "call this method"),
    })
}

/// The front door of the gRPC server, a tower layer: before a call's body is read, its
/// peer must be within its refusal budget ([`Refusals`]), its credentials must name a
/// client, and the client must have a role the call can need; then its body is capped at
/// the request size limit ([`CappedBody`]). A refusal is answered at once, with the body
/// never polled, and logged by sample.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    door: Arc<Door>,
}

#[derive(Debug)]
struct Door {
    auth: Arc<Auth>,
    refusals: Arc<Refusals>,
    max_envelope_bytes: usize,
    batch_calls: Arc<crate::limits::BatchCalls>,
}

impl FrontDoor {
    /// A front door for these clients, refusal budgets and envelope limit.
    pub fn new(auth: Arc<Auth>, refusals: Arc<Refusals>, max_envelope_bytes: usize) -> Self {
        FrontDoor {
            door: Arc::new(Door {
                auth,
                refusals,
                max_envelope_bytes,
                batch_calls: Arc::default(),
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for FrontDoor {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            door: self.door.clone(),
        }
    }
}

/// A service behind the [`FrontDoor`].
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    door: Arc<Door>,
}

type Answer<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S> tower_service::Service<http::Request<Body>> for Guarded<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.door.admit(request) {
            Ok(request) => Box::pin(self.inner.call(request)),
            Err(refused) => Box::pin(std::future::ready(Ok(refused.into_http()))),
        }
    }
}

impl Door {
    /// The request, its body capped, if its peer and client may make it.
    fn admit(&self, request: http::Request<Body>) -> Result<http::Request<Body>, Status> {
        let path = request.uri().path();
        let Some((needs, what)) = needs_of(path) else {
            return Ok(request);
        };
        let call = call_of(path);
        let submit = call != crate::limits::Call::Other;
        let count = |refused: Status| {
            if submit {
                METRICS.submission(Err(refused.code()));
            }
            refused
        };
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        self.refusals.admit(peer, what).map_err(count)?;
        let certs = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        let principal = self
            .auth
            .identify(
                request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
                certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref()),
            )
            .map_err(|refused| {
                self.refusals.refused(peer, what, None, &refused);
                count(refused)
            })?;
        if !principal.may(needs) {
            let refused = denied(&principal, needs, what);
            self.refusals
                .refused(peer, what, Some(&principal.name), &refused);
            return Err(count(refused));
        }
        let limit = self.max_envelope_bytes;
        let batch = match call {
            crate::limits::Call::SubmitBatch | crate::limits::Call::SubmitStream => {
                Some(self.batch_calls.open(&principal.name).map_err(count)?)
            }
            _ => None,
        };
        Ok(request.map(|body| {
            let capped = CappedBody::new(body, limit, call);
            Body::new(match batch {
                Some(open) => capped.holding(open),
                None => capped,
            })
        }))
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
