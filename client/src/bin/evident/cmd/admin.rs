//! `evident admin`: administrators of the trust registry.

use crate::{AdminKeys, Cli, public_key_arg, submit_change};
use clap::Subcommand;
use evident_core::registry::Change;

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
                public_key: public_key_arg("--public-key", public_key)?,
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
                public_key: public_key_arg("--public-key", public_key)?,
                threshold: *threshold,
            },
            admins,
        ),
    };
    submit_change(cli, &change, admins).await
}
