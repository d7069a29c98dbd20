//! `evident sigstore`: the Sigstore instances keyless signers' certificates may chain to,
//! changed by administrators as registry entries.

use anyhow::Context as _;
use clap::Subcommand;
use evident_core::registry::Change;
use evident_core::sigstore::TrustedRoot;

use super::admin::submit_change;
use crate::{AdminKeys, Cli};

#[derive(Debug, Subcommand)]
pub(crate) enum SigstoreCommand {
    /// Trust a Sigstore instance: its trusted_root.json (Fulcio CAs, Rekor logs, CT logs,
    /// timestamp authorities), under a name; replaces a root of the same name.
    Trust {
        /// The name signers' certificate rules use, e.g. public-good or github.
        name: String,
        /// The trusted_root.json file (e.g. from `cosign trusted-root create` or a
        /// Sigstore TUF repository). Nothing is fetched: the file is what is trusted.
        file: std::path::PathBuf,
        /// Why, for auditors; trusting a root again after replacing it needs a new one.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// Stop trusting a Sigstore instance.
    Distrust {
        /// Its name.
        name: String,
        /// Why, for auditors.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        admins: AdminKeys,
    },
}

pub(crate) async fn run(cli: &Cli, command: &SigstoreCommand) -> anyhow::Result<()> {
    let (change, admins) = match command {
        SigstoreCommand::Trust {
            name,
            file,
            reason,
            admins,
        } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            // Checked here too, so a wrong file is named before anything is signed.
            TrustedRoot::from_json(&bytes)
                .with_context(|| format!("{} is not a usable trusted root", file.display()))?;
            let trusted_root = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            (
                Change::TrustSigstore {
                    name: name.clone(),
                    trusted_root,
                    reason: reason.clone(),
                },
                admins,
            )
        }
        SigstoreCommand::Distrust {
            name,
            reason,
            admins,
        } => (
            Change::DistrustSigstore {
                name: name.clone(),
                reason: reason.clone(),
            },
            admins,
        ),
    };
    submit_change(cli, &change, admins).await
}
