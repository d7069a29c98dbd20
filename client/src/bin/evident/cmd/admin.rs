//! `evident admin`: administrators of the trust registry.

use clap::Subcommand;
use evident_client::keyfile::{read_public_key, read_signing_keys};
use evident_client::output::{RegistryChangeOutput, RegistryOp};
use evident_client::submit;
use evident_core::registry::Change;

use crate::{AdminKeys, Cli, Format, connect, log_key, print_json, state_path};

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Add an administrator.
    Add {
        /// Who holds the key.
        #[arg(long)]
        identity: String,
        /// The public key (64 hex digits) or a file holding it.
        #[arg(long)]
        public_key: String,
        /// The new threshold of administrator signatures.
        #[arg(long)]
        threshold: Option<usize>,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// Remove an administrator.
    Remove {
        /// The administrator's public key (64 hex digits) or a file holding it.
        #[arg(long)]
        public_key: String,
        /// The new threshold of administrator signatures.
        #[arg(long)]
        threshold: Option<usize>,
        #[command(flatten)]
        admins: AdminKeys,
    },
}

pub(crate) async fn run(cli: &Cli, command: &AdminCommand) -> anyhow::Result<()> {
    let (change, admins) = match command {
        AdminCommand::Add {
            identity,
            public_key,
            threshold,
            admins,
        } => (
            Change::AddAdmin {
                identity: identity.clone(),
                public_key: read_public_key("--public-key", public_key)?.to_hex(),
                threshold: *threshold,
            },
            admins,
        ),
        AdminCommand::Remove {
            public_key,
            threshold,
            admins,
        } => (
            Change::RemoveAdmin {
                public_key: read_public_key("--public-key", public_key)?.to_hex(),
                threshold: *threshold,
            },
            admins,
        ),
    };
    submit_change(cli, &change, admins).await
}

/// Signs a registry change with the administrators' keys, submits it and prints its entry.
pub(crate) async fn submit_change(
    cli: &Cli,
    change: &Change,
    admins: &AdminKeys,
) -> anyhow::Result<()> {
    let keys = read_signing_keys(&admins.admin_keys)?;
    let key = log_key(cli)?;
    let mut client = connect(cli).await?;
    let logged =
        submit::submit_change(&mut client, key.as_ref(), &state_path(cli), change, &keys).await?;
    let receipt = &logged.receipt;
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&RegistryChangeOutput {
            index: receipt.index,
            op: registry_op(change),
            duplicate: logged.duplicate,
            leaf_hash: receipt.leaf_hash.to_hex(),
            verified: logged.verified,
        }),
        Format::Human => println!(
            "registry entry {}: {}{}",
            receipt.index,
            logged.op.as_str().unwrap_or_default(),
            if logged.duplicate {
                " (already in the log)"
            } else {
                ""
            }
        ),
    }
    Ok(())
}

/// The operation of a change, as the output names it.
fn registry_op(change: &Change) -> RegistryOp {
    match change {
        Change::AddSigner { .. } => RegistryOp::AddSigner,
        Change::RotateSigner { .. } => RegistryOp::RotateSigner,
        Change::RevokeKey { .. } => RegistryOp::RevokeKey,
        Change::RevokeSigner { .. } => RegistryOp::RevokeSigner,
        Change::TrustSigstore { .. } => RegistryOp::TrustSigstore,
        Change::DistrustSigstore { .. } => RegistryOp::DistrustSigstore,
        Change::AddAdmin { .. } => RegistryOp::AddAdmin,
        Change::RemoveAdmin { .. } => RegistryOp::RemoveAdmin,
    }
}
