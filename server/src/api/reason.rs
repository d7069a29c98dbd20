//! Machine-readable reasons for refusals: every refusal a pipeline may want to tell apart
//! carries a `google.rpc.ErrorInfo` in the status details (gRPC's richer error model), with
//! a fixed `reason` in SCREAMING_SNAKE_CASE, the domain `evident.dev`, and metadata naming
//! what it is about. The message stays the human explanation. docs/ERRORS.md lists them.

use std::collections::HashMap;

use evident_core::kinds::Refusal;
use evident_core::registry::{AuthError, RegistryError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// The `ErrorInfo.domain` of every reason.
pub const DOMAIN: &str = "evident.dev";

/// Why a request or an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The envelope carries no signature.
    NoSignatures,
    /// No signature verifies under a registered signer key.
    UnknownKey,
    /// The signing key was revoked at or before the entry's time.
    KeyRevoked,
    /// The signing key's validity ended at or before the entry's time.
    KeyExpired,
    /// The signing key is not valid yet at the entry's time.
    KeyNotYetValid,
    /// The signing key may not attest this predicate type.
    PredicateTypeNotAllowed,
    /// The caller is over its request rate, or the server over its global rate.
    OverRateLimit,
    /// The caller, or the server, has as many requests in flight as it may.
    OverConcurrency,
    /// The caller, or the server, has as many batch or stream calls open as it may.
    TooManyOpenCalls,
    /// The envelope, or the request, is larger than the server takes.
    TooLarge,
    /// No credentials, or credentials the server does not accept.
    Unauthenticated,
    /// The caller is known but lacks the role the call needs.
    RoleMissing,
    /// No kind of entry has the envelope's payload type.
    PayloadTypeNotAccepted,
    /// An attestation's payload is not an in-toto Statement v1, or declares a release name
    /// or version the log cannot carry.
    StatementInvalid,
    /// A registry change or policy version lacks enough administrators' signatures.
    NotEnoughAdmins,
    /// A registry change that is malformed.
    RegistryChangeInvalid,
    /// A registry change that does not fit the registry's state.
    RegistryConflict,
    /// A policy document that does not parse or names roles no signer holds.
    PolicyInvalid,
    /// A policy version that is not above the policy's latest version.
    PolicyVersionNotHigher,
    /// A Sigstore bundle that does not verify against the registry's trusted roots.
    SigstoreBundleInvalid,
    /// A Sigstore certificate that verifies, but no registered signer's rule matches.
    UnknownCertificateIdentity,
    /// A Sigstore bundle, and the registry trusts no Sigstore root.
    NoSigstoreRoot,
}

impl Reason {
    /// The `ErrorInfo.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoSignatures => "NO_SIGNATURES",
            Reason::UnknownKey => "UNKNOWN_KEY",
            Reason::KeyRevoked => "KEY_REVOKED",
            Reason::KeyExpired => "KEY_EXPIRED",
            Reason::KeyNotYetValid => "KEY_NOT_YET_VALID",
            Reason::PredicateTypeNotAllowed => "PREDICATE_TYPE_NOT_ALLOWED",
            Reason::OverRateLimit => "OVER_RATE_LIMIT",
            Reason::OverConcurrency => "OVER_CONCURRENCY",
            Reason::TooManyOpenCalls => "TOO_MANY_OPEN_CALLS",
            Reason::TooLarge => "TOO_LARGE",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::RoleMissing => "ROLE_MISSING",
            Reason::PayloadTypeNotAccepted => "PAYLOAD_TYPE_NOT_ACCEPTED",
            Reason::StatementInvalid => "STATEMENT_INVALID",
            Reason::NotEnoughAdmins => "NOT_ENOUGH_ADMINS",
            Reason::RegistryChangeInvalid => "REGISTRY_CHANGE_INVALID",
            Reason::RegistryConflict => "REGISTRY_CONFLICT",
            Reason::PolicyInvalid => "POLICY_INVALID",
            Reason::PolicyVersionNotHigher => "POLICY_VERSION_NOT_HIGHER",
            Reason::SigstoreBundleInvalid => "SIGSTORE_BUNDLE_INVALID",
            Reason::UnknownCertificateIdentity => "UNKNOWN_CERTIFICATE_IDENTITY",
            Reason::NoSigstoreRoot => "NO_SIGSTORE_ROOT",
        }
    }
}

/// The `ErrorInfo.reason` a status carries, if any.
pub fn of(status: &Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

/// A status with `code`, `message` and an `ErrorInfo` of `reason` with `metadata`.
pub fn refuse(
    code: Code,
    reason: Reason,
    message: impl Into<String>,
    metadata: &[(&str, &str)],
) -> Status {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason.as_str(), DOMAIN, metadata),
    )
}

/// The status of a refused entry: the one mapping from [`Refusal`] to a gRPC code and
/// reason, whether the check on submit or the sequencer refused it.
pub fn refused(refusal: &Refusal) -> Status {
    let message = refusal.to_string();
    match refusal {
        Refusal::Unauthorized(e) => unauthorized(e),
        Refusal::NoAdminSignatures(_) => {
            refuse(Code::Unauthenticated, Reason::NoSignatures, message, &[])
        }
        Refusal::PayloadType(payload_type) => refuse(
            Code::InvalidArgument,
            Reason::PayloadTypeNotAccepted,
            message,
            &[("payload_type", payload_type)],
        ),
        Refusal::Statement(_) | Refusal::Release(_) => refuse(
            Code::InvalidArgument,
            Reason::StatementInvalid,
            message,
            &[],
        ),
        Refusal::Registry(e) => match e {
            RegistryError::NotEnoughAdmins { .. } => refuse(
                Code::PermissionDenied,
                Reason::NotEnoughAdmins,
                message,
                &[],
            ),
            RegistryError::Conflict(_) => refuse(
                Code::FailedPrecondition,
                Reason::RegistryConflict,
                message,
                &[],
            ),
            _ => refuse(
                Code::InvalidArgument,
                Reason::RegistryChangeInvalid,
                message,
                &[],
            ),
        },
        Refusal::Unencodable(_) => Status::invalid_argument(message),
        Refusal::SigstoreNotAccepted(_) => refuse(
            Code::InvalidArgument,
            Reason::PayloadTypeNotAccepted,
            message,
            &[],
        ),
        Refusal::Policy(_) | Refusal::PolicyText => {
            refuse(Code::InvalidArgument, Reason::PolicyInvalid, message, &[])
        }
        Refusal::PolicyVersion {
            name,
            latest,
            version,
        } => refuse(
            Code::FailedPrecondition,
            Reason::PolicyVersionNotHigher,
            message,
            &[
                ("policy", name),
                ("latest_version", &latest.to_string()),
                ("version", &version.to_string()),
            ],
        ),
        other => Status::invalid_argument(other.to_string()),
    }
}

/// The status of an attestation whose signatures do not authorize it: UNAUTHENTICATED when
/// it carries none, PERMISSION_DENIED otherwise, each with its reason, the signer and the
/// key as metadata.
pub fn unauthorized(e: &AuthError) -> Status {
    match e {
        AuthError::NoSignatures => refuse(
            Code::Unauthenticated,
            Reason::NoSignatures,
            format!("{e}: sign PAE(payloadType, payload) with a registered signer key"),
            &[],
        ),
        AuthError::UnknownKey { hints } => refuse(
            Code::PermissionDenied,
            Reason::UnknownKey,
            e.to_string(),
            &[("keyid_hints", hints)],
        ),
        AuthError::Revoked { key, identity, .. } => refuse(
            Code::PermissionDenied,
            Reason::KeyRevoked,
            e.to_string(),
            &[("identity", identity), ("key", key)],
        ),
        AuthError::Expired { key, identity, .. } => refuse(
            Code::PermissionDenied,
            Reason::KeyExpired,
            e.to_string(),
            &[("identity", identity), ("key", key)],
        ),
        AuthError::NotYetValid { key, identity, .. } => refuse(
            Code::PermissionDenied,
            Reason::KeyNotYetValid,
            e.to_string(),
            &[("identity", identity), ("key", key)],
        ),
        AuthError::PredicateType {
            key,
            identity,
            predicate_type,
        } => refuse(
            Code::PermissionDenied,
            Reason::PredicateTypeNotAllowed,
            e.to_string(),
            &[
                ("identity", identity),
                ("key", key),
                ("predicate_type", predicate_type),
            ],
        ),
        AuthError::Sigstore(why) => refuse(
            Code::PermissionDenied,
            Reason::SigstoreBundleInvalid,
            e.to_string(),
            &[("sigstore_reason", why.reason())],
        ),
        AuthError::UnknownCertificate {
            issuer,
            subject,
            root,
        } => refuse(
            Code::PermissionDenied,
            Reason::UnknownCertificateIdentity,
            e.to_string(),
            &[
                ("issuer", issuer),
                ("subject", subject),
                ("trusted_root", root),
            ],
        ),
        AuthError::NoSigstoreRoot => refuse(
            Code::FailedPrecondition,
            Reason::NoSigstoreRoot,
            e.to_string(),
            &[],
        ),
        other => Status::permission_denied(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[test]
    fn the_reason_of_a_status_is_read_back() {
        let status = refuse(Code::ResourceExhausted, Reason::TooLarge, "big", &[]);
        assert_eq!(of(&status).as_deref(), Some("TOO_LARGE"));
        assert_eq!(of(&Status::internal("no details")), None);
    }

    fn info(status: &Status) -> (String, HashMap<String, String>) {
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.domain, DOMAIN);
        (info.reason.clone(), info.metadata.clone())
    }

    #[test]
    fn every_authorization_failure_has_its_code_reason_and_signer() {
        let key = || "ab12".to_owned();
        let identity = || "ci@example.com".to_owned();
        let at = || "2026-01-01T00:00:00Z".to_owned();
        let cases = [
            (
                AuthError::NoSignatures,
                Code::Unauthenticated,
                "NO_SIGNATURES",
            ),
            (
                AuthError::UnknownKey { hints: "k1".into() },
                Code::PermissionDenied,
                "UNKNOWN_KEY",
            ),
            (
                AuthError::Revoked {
                    key: key(),
                    identity: identity(),
                    at: at(),
                    reason: "leaked".into(),
                },
                Code::PermissionDenied,
                "KEY_REVOKED",
            ),
            (
                AuthError::Expired {
                    key: key(),
                    identity: identity(),
                    at: at(),
                },
                Code::PermissionDenied,
                "KEY_EXPIRED",
            ),
            (
                AuthError::NotYetValid {
                    key: key(),
                    identity: identity(),
                    at: at(),
                },
                Code::PermissionDenied,
                "KEY_NOT_YET_VALID",
            ),
            (
                AuthError::PredicateType {
                    key: key(),
                    identity: identity(),
                    predicate_type: "https://example.com/p".into(),
                },
                Code::PermissionDenied,
                "PREDICATE_TYPE_NOT_ALLOWED",
            ),
        ];
        for (error, code, reason) in cases {
            let status = unauthorized(&error);
            assert_eq!(status.code(), code, "{error}");
            let (found, metadata) = info(&status);
            assert_eq!(found, reason);
            assert!(status.message().contains(&error.to_string()), "{error}");
            if !matches!(
                error,
                AuthError::NoSignatures | AuthError::UnknownKey { .. }
            ) {
                assert_eq!(metadata["identity"], "ci@example.com");
                assert_eq!(metadata["key"], "ab12");
            }
        }
    }

    #[test]
    fn reasons_are_distinct_screaming_snake_case() {
        let all = [
            Reason::NoSignatures,
            Reason::UnknownKey,
            Reason::KeyRevoked,
            Reason::KeyExpired,
            Reason::KeyNotYetValid,
            Reason::PredicateTypeNotAllowed,
            Reason::OverRateLimit,
            Reason::OverConcurrency,
            Reason::TooManyOpenCalls,
            Reason::TooLarge,
            Reason::Unauthenticated,
            Reason::RoleMissing,
            Reason::PayloadTypeNotAccepted,
            Reason::StatementInvalid,
            Reason::NotEnoughAdmins,
            Reason::RegistryChangeInvalid,
            Reason::RegistryConflict,
            Reason::PolicyInvalid,
            Reason::PolicyVersionNotHigher,
        ];
        let names: std::collections::BTreeSet<&str> = all.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), all.len());
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name}"
            );
        }
    }

    /// Every refusal of an entry has its code, and the reason docs/ERRORS.md gives it.
    #[test]
    fn every_refusal_of_an_entry_has_its_code_and_reason() {
        use evident_core::record::RecordError;
        let cases: Vec<(Refusal, Code, Option<&str>)> = vec![
            (
                Refusal::PayloadType("text/plain".into()),
                Code::InvalidArgument,
                Some("PAYLOAD_TYPE_NOT_ACCEPTED"),
            ),
            (
                Refusal::NoAdminSignatures("policies"),
                Code::Unauthenticated,
                Some("NO_SIGNATURES"),
            ),
            (
                Refusal::Unauthorized(AuthError::NoSignatures),
                Code::Unauthenticated,
                Some("NO_SIGNATURES"),
            ),
            (
                Refusal::Registry(RegistryError::NotEnoughAdmins {
                    threshold: 2,
                    reason: "one".into(),
                }),
                Code::PermissionDenied,
                Some("NOT_ENOUGH_ADMINS"),
            ),
            (
                Refusal::Registry(RegistryError::Conflict("a key added twice".into())),
                Code::FailedPrecondition,
                Some("REGISTRY_CONFLICT"),
            ),
            (
                Refusal::Registry(RegistryError::Malformed("not JSON".into())),
                Code::InvalidArgument,
                Some("REGISTRY_CHANGE_INVALID"),
            ),
            (
                Refusal::Policy(evident_core::policy::PolicyError::Parse("line 1".into())),
                Code::InvalidArgument,
                Some("POLICY_INVALID"),
            ),
            (
                Refusal::PolicyText,
                Code::InvalidArgument,
                Some("POLICY_INVALID"),
            ),
            (
                Refusal::PolicyVersion {
                    name: "prod".into(),
                    latest: 3,
                    version: 2,
                },
                Code::FailedPrecondition,
                Some("POLICY_VERSION_NOT_HIGHER"),
            ),
            (
                Refusal::Unencodable(RecordError::TooLong {
                    field: "signature keyid",
                    len: 70_000,
                    max: 65_535,
                }),
                Code::InvalidArgument,
                None,
            ),
        ];
        for (refusal, code, reason) in cases {
            let status = refused(&refusal);
            assert_eq!(status.code(), code, "{refusal}");
            assert_eq!(of(&status).as_deref(), reason, "{refusal}");
            assert!(
                status.message().starts_with(&refusal.to_string()),
                "{refusal}: {}",
                status.message()
            );
        }
    }
}
