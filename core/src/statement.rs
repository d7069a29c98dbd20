//! in-toto Statement v1 (github.com/in-toto/attestation, `spec/v1/statement.md`): the
//! payload of every attestation, parsed into checked types.
//!
//! Anything that is not a Statement v1 (a legacy link, an older `_type`, a subject without a
//! digest, a malformed digest) is refused with an error that names the field. Unknown fields
//! are ignored, as the specification requires of consumers. A key that appears twice in any
//! object, the predicate included, is refused: a verifier that keeps the first and one that
//! keeps the last would read different statements. The predicate type and subject names
//! pass [`crate::names`].

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};

/// The `_type` of an in-toto Statement v1.
pub const STATEMENT_V1_TYPE: &str = "https://in-toto.io/Statement/v1";

/// A parsed in-toto Statement v1.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The software artifacts the statement is about. Invariant: not empty.
    pub subjects: Vec<Subject>,
    /// A URI naming the predicate's meaning and schema. Invariant: not empty.
    pub predicate_type: String,
    /// The predicate: a JSON object, or `Null` when the statement has none.
    pub predicate: Value,
}

/// One subject of a Statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The subject's name (may be empty: v1 makes it optional).
    pub name: String,
    /// Digests of the subject. Invariant: at least one.
    pub digests: DigestSet,
}

/// A subject's digests, keyed by algorithm, each value validated for that algorithm.
pub type DigestSet = BTreeMap<DigestAlgorithm, String>;

/// Digest algorithms of the in-toto digest set, as spelled in JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// `sha256`
    Sha256,
    /// `sha224`
    Sha224,
    /// `sha384`
    Sha384,
    /// `sha512`
    Sha512,
    /// `sha512_224`
    Sha512_224,
    /// `sha512_256`
    Sha512_256,
    /// `sha3_224`
    Sha3_224,
    /// `sha3_256`
    Sha3_256,
    /// `sha3_384`
    Sha3_384,
    /// `sha3_512`
    Sha3_512,
    /// `sha1`
    Sha1,
    /// `md5`
    Md5,
    /// `gitCommit`: a Git object id, SHA-1 (40 hex) or SHA-256 (64 hex)
    GitCommit,
    /// `gitTree`
    GitTree,
    /// `gitBlob`
    GitBlob,
    /// `gitTag`
    GitTag,
    /// Any other key: kept as written, its value must be non-empty and printable.
    Other(String),
}

impl DigestAlgorithm {
    /// Maps a JSON key to an algorithm.
    pub fn parse(name: &str) -> DigestAlgorithm {
        use DigestAlgorithm::*;
        match name {
            "sha256" => Sha256,
            "sha224" => Sha224,
            "sha384" => Sha384,
            "sha512" => Sha512,
            "sha512_224" => Sha512_224,
            "sha512_256" => Sha512_256,
            "sha3_224" => Sha3_224,
            "sha3_256" => Sha3_256,
            "sha3_384" => Sha3_384,
            "sha3_512" => Sha3_512,
            "sha1" => Sha1,
            "md5" => Md5,
            "gitCommit" => GitCommit,
            "gitTree" => GitTree,
            "gitBlob" => GitBlob,
            "gitTag" => GitTag,
            other => Other(other.to_owned()),
        }
    }

    /// The JSON key.
    pub fn as_str(&self) -> &str {
        use DigestAlgorithm::*;
        match self {
            Sha256 => "sha256",
            Sha224 => "sha224",
            Sha384 => "sha384",
            Sha512 => "sha512",
            Sha512_224 => "sha512_224",
            Sha512_256 => "sha512_256",
            Sha3_224 => "sha3_224",
            Sha3_256 => "sha3_256",
            Sha3_384 => "sha3_384",
            Sha3_512 => "sha3_512",
            Sha1 => "sha1",
            Md5 => "md5",
            GitCommit => "gitCommit",
            GitTree => "gitTree",
            GitBlob => "gitBlob",
            GitTag => "gitTag",
            Other(name) => name,
        }
    }

    /// The accepted lengths in hex digits, or `None` for algorithms Evident does not know.
    fn hex_lengths(&self) -> Option<&'static [usize]> {
        use DigestAlgorithm::*;
        Some(match self {
            Md5 => &[32],
            Sha1 => &[40],
            Sha224 | Sha512_224 | Sha3_224 => &[56],
            Sha256 | Sha512_256 | Sha3_256 => &[64],
            Sha384 | Sha3_384 => &[96],
            Sha512 | Sha3_512 => &[128],
            GitCommit | GitTree | GitBlob | GitTag => &[40, 64],
            Other(_) => return None,
        })
    }

    /// Maps a name given in any case (`GITCOMMIT`, `Sha256`) to a known algorithm; an
    /// unknown name is kept as written.
    pub fn parse_any_case(name: &str) -> DigestAlgorithm {
        const KNOWN: &[&str] = &[
            "sha256",
            "sha224",
            "sha384",
            "sha512",
            "sha512_224",
            "sha512_256",
            "sha3_224",
            "sha3_256",
            "sha3_384",
            "sha3_512",
            "sha1",
            "md5",
            "gitCommit",
            "gitTree",
            "gitBlob",
            "gitTag",
        ];
        match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            Some(known) => DigestAlgorithm::parse(known),
            None => DigestAlgorithm::parse(name),
        }
    }

    /// Whether Evident knows this algorithm's value format (hex of fixed lengths).
    pub fn is_known(&self) -> bool {
        self.hex_lengths().is_some()
    }

    /// Checks a digest value for this algorithm.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        match self.hex_lengths() {
            Some(lengths) => {
                if !value
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                {
                    return Err("must be lowercase hex".to_owned());
                }
                if !lengths.contains(&value.len()) {
                    let want: Vec<String> = lengths.iter().map(usize::to_string).collect();
                    return Err(format!(
                        "must be {} hex digits, got {}",
                        want.join(" or "),
                        value.len()
                    ));
                }
                Ok(())
            }
            None if value.is_empty() => Err("must not be empty".to_owned()),
            None if value.chars().any(char::is_control) => {
                Err("must not contain control characters".to_owned())
            }
            None => Ok(()),
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a payload is not an in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The envelope's payload type is not the in-toto one.
    #[error("payloadType is {0:?}, an in-toto Statement needs {IN_TOTO_PAYLOAD_TYPE:?}")]
    PayloadType(String),
    /// The payload is not JSON.
    #[error("payload is not JSON: {0}")]
    Json(String),
    /// The payload is JSON but not an object.
    #[error("payload is not a JSON object")]
    NotObject,
    /// `_type` is missing or not a string.
    #[error("payload has no `_type` string: not an in-toto Statement")]
    MissingType,
    /// A legacy in-toto link file (`_type: "link"`).
    #[error("payload is a legacy in-toto link, not an in-toto Statement v1 ({STATEMENT_V1_TYPE})")]
    LegacyLink,
    /// Any other `_type`.
    #[error("payload `_type` is {0:?}, expected {STATEMENT_V1_TYPE:?}")]
    UnknownType(String),
    /// A key appears twice in one JSON object.
    #[error(
        "statement key {field:?} appears twice: a verifier that reads the first and one that \
         reads the last would see different statements"
    )]
    DuplicateKey {
        /// The JSON path of the repeated key, e.g. `predicate.result`.
        field: String,
    },
    /// A name the indexes, logs or outputs cannot carry.
    #[error("statement field {0}")]
    Name(#[from] crate::names::NameError),
    /// A required field is missing or has the wrong JSON type.
    #[error("statement field `{field}` {problem}")]
    Field {
        /// The JSON path, e.g. `subject[0].digest`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

pub(crate) fn field_error(field: impl Into<String>, problem: impl Into<String>) -> StatementError {
    StatementError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

impl Statement {
    /// Parses the payload of an envelope, which must have the in-toto payload type.
    pub fn from_envelope(envelope: &Envelope) -> Result<Statement, StatementError> {
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(StatementError::PayloadType(envelope.payload_type.clone()));
        }
        Statement::from_json(&envelope.payload)
    }

    /// Parses a Statement v1 from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Statement, StatementError> {
        reject_duplicate_keys(bytes)?;
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| StatementError::Json(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(StatementError::NotObject);
        };
        match object.get("_type") {
            Some(Value::String(t)) if t == STATEMENT_V1_TYPE => {}
            Some(Value::String(t)) if t == "link" => return Err(StatementError::LegacyLink),
            Some(Value::String(t)) => return Err(StatementError::UnknownType(t.clone())),
            _ => return Err(StatementError::MissingType),
        }
        let subjects = parse_subjects(object.get("subject"))?;
        let predicate_type = match object.get("predicateType") {
            Some(Value::String(p)) if !p.is_empty() => p.clone(),
            Some(Value::String(_)) => return Err(field_error("predicateType", "is empty")),
            Some(_) => return Err(field_error("predicateType", "must be a string")),
            None => return Err(field_error("predicateType", "is missing")),
        };
        crate::names::check_name("predicateType", &predicate_type)?;
        let predicate = match object.get("predicate") {
            None | Some(Value::Null) => Value::Null,
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => return Err(field_error("predicate", "must be a JSON object")),
        };
        Ok(Statement {
            subjects,
            predicate_type,
            predicate,
        })
    }

    /// Every (algorithm, value) digest over all subjects.
    pub fn digests(&self) -> impl Iterator<Item = (&DigestAlgorithm, &str)> {
        self.subjects
            .iter()
            .flat_map(|s| s.digests.iter().map(|(a, v)| (a, v.as_str())))
    }
}

fn parse_subjects(value: Option<&Value>) -> Result<Vec<Subject>, StatementError> {
    let list = match value {
        Some(Value::Array(list)) => list,
        Some(_) => return Err(field_error("subject", "must be an array")),
        None => return Err(field_error("subject", "is missing")),
    };
    if list.is_empty() {
        return Err(field_error(
            "subject",
            "is empty: name at least one artifact",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| parse_subject(i, s))
        .collect()
}

fn parse_subject(i: usize, value: &Value) -> Result<Subject, StatementError> {
    let Value::Object(subject) = value else {
        return Err(field_error(format!("subject[{i}]"), "must be an object"));
    };
    let name = match subject.get("name") {
        None => String::new(),
        Some(Value::String(name)) => name.clone(),
        Some(_) => {
            return Err(field_error(
                format!("subject[{i}].name"),
                "must be a string",
            ));
        }
    };
    crate::names::check_optional_name(&format!("subject[{i}].name"), &name)?;
    let digests = parse_digests(i, subject)?;
    Ok(Subject { name, digests })
}

fn parse_digests(i: usize, subject: &Map<String, Value>) -> Result<DigestSet, StatementError> {
    let map = match subject.get("digest") {
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(field_error(
                format!("subject[{i}].digest"),
                "must be an object",
            ));
        }
        None => {
            return Err(field_error(
                format!("subject[{i}].digest"),
                "is missing: every subject needs a digest",
            ));
        }
    };
    if map.is_empty() {
        return Err(field_error(format!("subject[{i}].digest"), "is empty"));
    }
    let mut digests = DigestSet::new();
    for (name, value) in map {
        let path = || format!("subject[{i}].digest.{name}");
        let Value::String(value) = value else {
            return Err(field_error(path(), "must be a string"));
        };
        let algorithm = DigestAlgorithm::parse(name);
        algorithm
            .validate(value)
            .map_err(|problem| field_error(path(), problem))?;
        digests.insert(algorithm, value.clone());
    }
    Ok(digests)
}

/// Refuses JSON in which any object, at any depth, has a key twice (serde_json's `Value`
/// would silently keep the last).
fn reject_duplicate_keys(bytes: &[u8]) -> Result<(), StatementError> {
    let found = std::cell::RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let seed = Unique {
        path: String::new(),
        found: &found,
    };
    match serde::de::DeserializeSeed::deserialize(seed, &mut deserializer) {
        Ok(()) => Ok(()),
        Err(e) => Err(match found.into_inner() {
            Some(field) => StatementError::DuplicateKey { field },
            None => StatementError::Json(e.to_string()),
        }),
    }
}

/// Walks one JSON value, recording the path of the first repeated key in `found`.
struct Unique<'a> {
    path: String,
    found: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(Unique {
                path: format!("{}[{i}]", self.path),
                found: self.found,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                *self.found.borrow_mut() = Some(path.clone());
                return Err(serde::de::Error::custom(format!(
                    "key `{path}` appears twice"
                )));
            }
            map.next_value_seed(Unique {
                path,
                found: self.found,
            })?;
        }
        Ok(())
    }
}
