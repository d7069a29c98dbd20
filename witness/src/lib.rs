//! `evident-witness`: a witness that third parties run beside Evident logs
//! (c2sp.org/tlog-witness). A log sends it each new checkpoint with a consistency proof
//! from the last one the witness cosigned; the witness checks the log's signature and the
//! proof, durably records the checkpoint, and answers with its cosignature
//! (c2sp.org/tlog-cosignature, Ed25519 or ML-DSA-44). Clients that require cosignatures
//! from witnesses they trust cannot be shown a fork of the log unless those witnesses are
//! shown it too — and a witness refuses, and keeps, any fork it is shown.
//!
//! The binary is a thin shell over [`run`]; `docs/WITNESS.md` is the operator's guide.
//! A witness never cosigns a checkpoint it has not made durable, and never cosigns a
//! smaller tree, or another root at the same size, after a larger one.

#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod keygen;
pub mod request;
pub mod state;
pub mod witness;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Config;
pub use witness::{AddError, OpenError, Witness};

/// Opens the witness the configuration describes (key, state) and serves it on
/// `listener` until `shutdown` resolves. The configuration's `listen` is not used: the
/// caller binds.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), OpenError> {
    let witness = Witness::open(&config)?;
    http::serve(listener, Arc::new(witness), shutdown).await;
    Ok(())
}
