//! `evident bundle`: evidence bundles, exported from the log or verified offline.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use evident_client::gate::target;
use evident_client::{Release, bundle};

use crate::{Cli, GenesisArg, connect, log_key, state_path};

#[derive(Debug, Subcommand)]
pub(crate) enum BundleCommand {
    /// Fetch the evidence bundle of an artifact and write it to a file.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["artifact", "release"])))]
    Export {
        /// The artifact, ALGORITHM:HEX.
        #[arg(long)]
        artifact: Option<String>,
        /// Or the release, NAME@VERSION.
        #[arg(long)]
        release: Option<String>,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
        /// Where to write the attestations as an in-toto bundle (JSON Lines, one DSSE
        /// envelope per line) [default: OUT with `.intoto.jsonl` in place of `.json`].
        #[arg(long)]
        intoto: Option<PathBuf>,
        #[command(flatten)]
        connection: crate::Connection,
        #[command(flatten)]
        log: crate::LogArgs,
    },
    /// Verify a bundle offline and evaluate a policy over it, for the artifact or release
    /// asked: the bundle's signed manifest must say it answers exactly that.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["artifact", "release"])))]
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// The artifact to decide about, ALGORITHM:HEX.
        #[arg(long)]
        artifact: Option<String>,
        /// Or the release, NAME@VERSION, as the policy's release signers declare it.
        #[arg(long)]
        release: Option<String>,
        /// The policy: NAME or NAME@VERSION.
        #[arg(long)]
        policy: String,
        #[command(flatten)]
        genesis: GenesisArg,
        #[command(flatten)]
        log: crate::LogArgs,
        #[command(flatten)]
        output: crate::DocOutput,
    },
}

pub(crate) async fn run(cli: &Cli, command: &BundleCommand) -> anyhow::Result<()> {
    match command {
        BundleCommand::Export {
            artifact,
            release,
            out,
            intoto,
            ..
        } => {
            export_bundle(
                cli,
                &target(artifact.as_deref(), release.as_deref()),
                out,
                intoto.as_deref(),
            )
            .await
        }
        BundleCommand::Verify {
            file,
            artifact,
            release,
            policy,
            genesis,
            ..
        } => {
            let release = target(artifact.as_deref(), release.as_deref());
            super::gate::gate(
                cli,
                &release,
                policy,
                Some(file),
                &genesis.genesis,
                None,
                None,
            )
            .await
        }
    }
}

/// `evident bundle export`: the evidence bundle of a release or artifact, and its
/// attestations in the in-toto bundle form (`.intoto.jsonl`) for other tools. With a pinned
/// log key, the bundle's checkpoint is verified and proven consistent with the last one seen.
async fn export_bundle(
    cli: &Cli,
    release: &Release,
    out: &Path,
    intoto: Option<&Path>,
) -> anyhow::Result<()> {
    let mut client = connect(cli).await?;
    let key = log_key(cli)?;
    let exported = bundle::export(&mut client, release, key.as_ref(), &state_path(cli)).await?;
    let verified = match exported.proven_size {
        Some(size) => format!("the checkpoint of {size} entries"),
        None => "the bundle's checkpoint (not checked: no log key pinned)".to_owned(),
    };
    let intoto = intoto.map(Path::to_path_buf).unwrap_or_else(|| {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.strip_suffix(".json").unwrap_or(&name);
        out.with_file_name(format!("{stem}.intoto.jsonl"))
    });
    std::fs::write(out, exported.bundle.to_json() + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(&intoto, &exported.intoto_jsonl)
        .with_context(|| format!("writing {}", intoto.display()))?;
    println!(
        "{}: {} entries proven at {verified}",
        out.display(),
        exported.bundle.entries.len(),
    );
    println!(
        "{}: {} attestation envelopes (in-toto bundle)",
        intoto.display(),
        exported.attestations
    );
    Ok(())
}
