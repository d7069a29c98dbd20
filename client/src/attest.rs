//! Attestations: an in-toto Statement about subjects, checked as the ledger checks it and
//! signed into a DSSE envelope.

use std::path::Path;

use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::statement::Statement;
use evident_core::{Hash, SigningKey};
use serde_json::json;

use crate::ClientError;

/// A subject of a Statement: a name and one digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The subject's name, e.g. `app` or a file name.
    pub name: String,
    /// The digest algorithm, e.g. `sha256` or `gitCommit`.
    pub algorithm: String,
    /// The digest value (hex).
    pub digest: String,
}

impl Subject {
    /// Parses `NAME=ALGORITHM:HEX`, e.g. `app=sha256:4f2a…`.
    pub fn parse(text: &str) -> Result<Subject, ClientError> {
        let bad = || ClientError::Invalid("expected NAME=ALGORITHM:HEX".to_owned());
        let (name, digest) = text.split_once('=').ok_or_else(bad)?;
        let (algorithm, digest) = digest.split_once(':').ok_or_else(bad)?;
        Ok(Subject {
            name: name.to_owned(),
            algorithm: algorithm.to_owned(),
            digest: digest.to_owned(),
        })
    }

    /// A file as a subject: named by its file name, with its SHA-256.
    pub fn of_file(path: &Path) -> Result<Subject, ClientError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ClientError::input(format!("reading subject {}", path.display()), e))?;
        Ok(Subject {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            algorithm: "sha256".to_owned(),
            digest: Hash::sha256(&bytes).to_hex(),
        })
    }
}

/// The payload of an in-toto Statement v1 about `subjects` (JSON), refused if the ledger
/// would refuse it.
pub fn statement(
    subjects: &[Subject],
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Result<Vec<u8>, ClientError> {
    if subjects.is_empty() {
        return Err(ClientError::Invalid(
            "a statement needs at least one subject".to_owned(),
        ));
    }
    let list: Vec<serde_json::Value> = subjects
        .iter()
        .map(|s| json!({"name": s.name, "digest": {s.algorithm.as_str(): s.digest}}))
        .collect();
    let statement = json!({
        "_type": evident_core::statement::STATEMENT_V1_TYPE,
        "subject": list,
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    let payload = serde_json::to_vec(&statement).expect("a JSON value serializes");
    // Refuse to sign what the ledger would refuse.
    Statement::from_json(&payload)
        .map_err(|e| ClientError::input("the statement is not valid", e))?;
    Ok(payload)
}

/// Signs a Statement payload (from [`statement`]) into a DSSE envelope.
pub fn sign(payload: Vec<u8>, key: &SigningKey) -> Envelope {
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[key])
}

/// An attestation: the Statement about `subjects` with this predicate, signed with `key`.
pub fn attest(
    subjects: &[Subject],
    predicate_type: &str,
    predicate: serde_json::Value,
    key: &SigningKey,
) -> Result<Envelope, ClientError> {
    Ok(sign(statement(subjects, predicate_type, predicate)?, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse() {
        let s = Subject::parse("app=sha256:4f2a").ok();
        assert_eq!(
            s,
            Some(Subject {
                name: "app".into(),
                algorithm: "sha256".into(),
                digest: "4f2a".into()
            })
        );
        for bad in ["app", "app=4f2a"] {
            let error = Subject::parse(bad).err().map(|e| e.to_string());
            assert_eq!(error.as_deref(), Some("expected NAME=ALGORITHM:HEX"));
        }
    }

    #[test]
    fn a_statement_needs_a_subject() {
        assert!(matches!(
            statement(&[], "https://example.com/p", json!({})),
            Err(ClientError::Invalid(_))
        ));
    }

    #[test]
    fn an_attestation_is_a_signed_statement() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let subject = Subject {
            name: "app".into(),
            algorithm: "sha256".into(),
            digest: "4f2a".repeat(16),
        };
        let envelope = attest(&[subject], "https://example.com/p", json!({}), &key);
        let envelope = envelope.ok().map(|e| e.payload_type);
        assert_eq!(envelope.as_deref(), Some(IN_TOTO_PAYLOAD_TYPE));
    }
}
