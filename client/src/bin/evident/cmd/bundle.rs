//! `evident bundle`: evidence bundles, exported from the log or verified offline.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use clap::Subcommand;
use evident_client::gate::target;
use evident_client::{CheckpointState, Release};
use evident_core::record::{EntryKind, LeafRecord};

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
    },
}

pub(crate) async fn run(cli: &Cli, command: &BundleCommand) -> anyhow::Result<()> {
    match command {
        BundleCommand::Export {
            artifact,
            release,
            out,
            intoto,
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
        } => {
            let release = target(artifact.as_deref(), release.as_deref());
            super::verify::gate(cli, &release, policy, Some(file), &genesis.genesis, None).await
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
    let bundle = client.release_bundle(release).await?;
    let verified = match log_key(cli)? {
        Some(key) => {
            let file = state_path(cli);
            let mut state = CheckpointState::load(&file)?;
            let checkpoint = state.advance(&mut client, &key, &bundle.checkpoint).await?;
            state.save(&file)?;
            format!("the checkpoint of {} entries", checkpoint.size)
        }
        None => "the bundle's checkpoint (not checked: no log key pinned)".to_owned(),
    };
    let mut lines = String::new();
    let mut attestations = 0;
    for entry in &bundle.entries {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&entry.leaf_record)
            .context("the server's bundle holds a leaf record that is not base64")?;
        let record = LeafRecord::decode(&bytes)
            .map_err(|e| anyhow!("the server's bundle holds a bad leaf record: {e}"))?;
        if record.kind() == EntryKind::Attestation {
            lines.push_str(&record.envelope().to_json());
            lines.push('\n');
            attestations += 1;
        }
    }
    let intoto = intoto.map(Path::to_path_buf).unwrap_or_else(|| {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.strip_suffix(".json").unwrap_or(&name);
        out.with_file_name(format!("{stem}.intoto.jsonl"))
    });
    std::fs::write(out, bundle.to_json() + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(&intoto, lines).with_context(|| format!("writing {}", intoto.display()))?;
    println!(
        "{}: {} entries proven at {verified}",
        out.display(),
        bundle.entries.len(),
    );
    println!(
        "{}: {attestations} attestation envelopes (in-toto bundle)",
        intoto.display()
    );
    Ok(())
}
