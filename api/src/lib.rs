//! Evident's wire boundary, in one place for the server and the client.
//!
//! - [`convert`]: every proto ⇄ core conversion, each malformed field named in its error
//!   ([`convert::ConvertError`]). The server's `service.rs` converts requests and answers
//!   with it; the [`Client`] converts the server's answers.
//! - [`Client`]: the typed gRPC client of `evident.v1.Ledger` — connecting (TLS, client
//!   certificates, the bearer token, sent in plaintext to loopback only), timeouts and
//!   retries ([`RetryPolicy`]), and one method per call, answering core types. The
//!   `evident` library and CLI use it, and so does `evidentd backup`.
//!
//! This crate checks shapes, never evidence: a receipt, a checkpoint or a proof it returns is
//! not yet verified. Verification is `evident-core`'s, called by the library.
//!
//! Besides this crate, only the server's `service.rs` (and `lib.rs`, which mounts the
//! services) sees `evident-proto` types; `evident-server` and `evident-client` never depend
//! on each other, and meet here.

mod client;
pub mod convert;

use std::path::PathBuf;

use evident_core::note::NoteError;

pub use client::{
    Bearer, Client, ConnectOptions, Credentials, Entry, EntryPage, EntryPages, Hit,
    MAX_ANSWER_BYTES, MAX_ENVELOPES_PER_REQUEST, PolicyDocument, Query, QueryPage, Release,
    RetryPolicy, SignerHistory, SignerListing, SubmitAnswer, SubmitStream, is_retryable,
};
pub use convert::Selector;

/// What went wrong talking to the ledger or checking its answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached.
    #[error("connecting to {0}")]
    Connect(String),
    /// The server answered with an error status.
    #[error("the server refused ({code:?}): {message}")]
    #[non_exhaustive]
    Status {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
        /// The machine-readable reason (`google.rpc.ErrorInfo.reason`, docs/ERRORS.md:
        /// `UNKNOWN_KEY`, `KEY_REVOKED`, `OVER_RATE_LIMIT`, …), when the refusal has one.
        reason: Option<String>,
    },
    /// The server's answer is malformed.
    #[error("the server's answer is malformed: {0}")]
    Response(String),
    /// A checkpoint did not verify under the pinned log key.
    #[error("checkpoint does not verify: {0}")]
    Checkpoint(#[from] NoteError),
    /// The log is not consistent with the checkpoint this client saw before: a fork or a
    /// rollback.
    #[error("{0}")]
    Inconsistent(String),
    /// The state file could not be read or written.
    #[error("checkpoint state {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Evidence did not verify (a receipt, a bundle, a duplicate that is not ours): a failed
    /// verification, like [`ClientError::Inconsistent`].
    #[error("{0}")]
    Verification(String),
    /// An input (a key, a document, a name, the server's answer) is not what it must be.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written, or its content could not be understood: what
    /// was being done, and the underlying error as the source.
    #[error("{context}")]
    Input {
        /// What was being done, e.g. `reading genesis.json`.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A bundle could not be read.
    #[error(transparent)]
    Bundle(#[from] evident_core::bundle::BundleError),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> ClientError {
        ClientError::Status {
            code: status.code(),
            message: status.message().to_owned(),
            reason: crate::client::error_reason(&status),
        }
    }
}

impl ClientError {
    /// Whether this is a failed verification (exit 1) rather than an error (exit 2).
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            ClientError::Checkpoint(_)
                | ClientError::Inconsistent(_)
                | ClientError::Verification(_)
        )
    }

    /// A [`ClientError::Status`] without a reason: `code` and `message` as a refusal of
    /// the server would carry them.
    pub fn status(code: tonic::Code, message: impl Into<String>) -> ClientError {
        ClientError::Status {
            code,
            message: message.into(),
            reason: None,
        }
    }

    /// An [`ClientError::Input`] error: `context`, caused by `source`.
    pub fn input(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> ClientError {
        ClientError::Input {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// An answer that does not convert is a malformed answer.
impl From<convert::ConvertError> for ClientError {
    fn from(e: convert::ConvertError) -> ClientError {
        ClientError::Response(e.to_string())
    }
}
