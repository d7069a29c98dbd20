//! `evident entry`: one entry of the log, its inclusion proof verified on request.

use anyhow::{Context as _, bail};
use evident_client::output::{EntryOutput, subjects_of};
use evident_client::report::escape_terminal;
use evident_client::time_text;
use evident_client::{CheckpointState, Selector};
use evident_core::Hash;
use evident_core::statement::Statement;

use crate::{Cli, Format, connect, print_json, require_log_key, state_path};

// `evident entry` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The entry's index.
    #[arg(
        long,
        conflicts_with = "leaf_hash",
        required_unless_present = "leaf_hash"
    )]
    pub(crate) index: Option<u64>,
    /// The entry's leaf hash (hex).
    #[arg(long)]
    pub(crate) leaf_hash: Option<String>,
    /// Also fetch and verify its inclusion proof against the latest checkpoint.
    #[arg(long)]
    pub(crate) proof: bool,
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    entry(cli, args.index, args.leaf_hash.as_deref(), args.proof).await
}

async fn entry(
    cli: &Cli,
    index: Option<u64>,
    leaf_hash: Option<&str>,
    proof: bool,
) -> anyhow::Result<()> {
    let selector = match (index, leaf_hash) {
        (Some(i), _) => Selector::Index(i),
        (None, Some(h)) => Selector::LeafHash(Hash::from_hex(h).context("--leaf-hash")?),
        (None, None) => bail!("name the entry with --index or --leaf-hash"),
    };
    let key = if proof {
        Some(require_log_key(cli)?)
    } else {
        None
    };
    let state_file = state_path(cli);
    // Read the state before asking the server, so a newer checkpoint saved meanwhile by
    // another process cannot look like a rollback.
    let mut state = CheckpointState::load(&state_file)?;
    let mut client = connect(cli).await?;
    let entry = client.entry(selector, proof.then_some(0)).await?;
    let mut proven = None;
    if let Some(key) = &key {
        let size = state.prove_inclusion(&mut client, key, &entry).await?;
        state.save(&state_file)?;
        proven = Some(size);
    }
    let record = &entry.record;
    let statement = Statement::from_envelope(record.envelope()).ok();
    let sigstore_bundle = record.envelope().sigstore.as_deref().and_then(|material| {
        evident_core::sigstore::Bundle::json_of_parts(material, record.envelope()).ok()
    });
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&EntryOutput {
            index: record.index(),
            integrated_time: time_text(record.integrated_time_nanos()),
            integrated_time_nanos: record.integrated_time_nanos(),
            kind: record.kind().into(),
            leaf_hash: entry.leaf_hash.to_hex(),
            previous_leaf_hash: record.previous_leaf_hash().to_hex(),
            predicate_type: statement.as_ref().map(|s| s.predicate_type.clone()),
            subjects: statement.as_ref().map(subjects_of).unwrap_or_default(),
            envelope: serde_json::from_str(&record.envelope().to_json())
                .expect("an envelope's JSON is JSON"),
            sigstore_bundle: sigstore_bundle.clone(),
            inclusion_proven_at_tree_size: proven,
        }),
        Format::Human => {
            println!("entry {} ({})", record.index(), record.kind());
            println!(
                "integrated:    {}",
                time_text(record.integrated_time_nanos())
            );
            println!("leaf hash:     {}", entry.leaf_hash);
            println!("previous hash: {}", record.previous_leaf_hash());
            if let Some(s) = &statement {
                println!("predicate:     {}", escape_terminal(&s.predicate_type));
                for subject in &s.subjects {
                    let digests: Vec<String> = subject
                        .digests
                        .iter()
                        .map(|(a, v)| format!("{a}:{v}"))
                        .collect();
                    println!(
                        "subject:       {} {}",
                        escape_terminal(&subject.name),
                        escape_terminal(&digests.join(" "))
                    );
                }
            }
            if let Some(bundle) = &sigstore_bundle {
                let media_type = bundle["mediaType"].as_str().unwrap_or_default();
                println!(
                    "sigstore:      came in a bundle ({}); `--format json` gives it whole \
                     (sigstore_bundle) for any Sigstore client",
                    escape_terminal(media_type)
                );
            }
            if let Some(size) = proven {
                println!("included:      verified in the signed tree of {size} entries");
            }
        }
    }
    Ok(())
}
