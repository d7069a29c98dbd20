//! `evident attest`: an in-toto Statement signed into a DSSE envelope.

use std::path::{Path, PathBuf};

use crate::{Cli, read_signing_key};
use anyhow::{Context as _, anyhow, bail};
use evident_core::Hash;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::statement::Statement;
use serde_json::json;

// `evident attest` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A subject as NAME=ALGORITHM:HEX, e.g. app=sha256:4f2a… (repeatable).
    #[arg(long = "subject")]
    pub(crate) subjects: Vec<String>,
    /// A file whose SHA-256 is a subject, named by its file name (repeatable).
    #[arg(long = "subject-file")]
    pub(crate) subject_files: Vec<PathBuf>,
    /// The predicate type URI.
    #[arg(long)]
    pub(crate) predicate_type: String,
    /// A JSON file holding the predicate object (default: `{}`).
    #[arg(long)]
    pub(crate) predicate: Option<PathBuf>,
    /// The signing key file (from `evident keygen`).
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// Where to write the envelope (default: standard output).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

pub(crate) async fn run(_cli: &Cli, args: &Args) -> anyhow::Result<()> {
    attest(
        &args.subjects,
        &args.subject_files,
        &args.predicate_type,
        args.predicate.as_deref(),
        &args.key,
        args.out.as_deref(),
    )
}

fn attest(
    subjects: &[String],
    subject_files: &[PathBuf],
    predicate_type: &str,
    predicate: Option<&Path>,
    key: &Path,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut list = Vec::new();
    for s in subjects {
        let (name, digest) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--subject {s:?}: expected NAME=ALGORITHM:HEX"))?;
        let (alg, value) = digest
            .split_once(':')
            .ok_or_else(|| anyhow!("--subject {s:?}: expected NAME=ALGORITHM:HEX"))?;
        list.push(json!({"name": name, "digest": {alg: value}}));
    }
    for path in subject_files {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading subject {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        list.push(json!({"name": name, "digest": {"sha256": Hash::sha256(&bytes).to_hex()}}));
    }
    if list.is_empty() {
        bail!("name at least one subject with --subject or --subject-file");
    }
    let predicate: serde_json::Value = match predicate {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("reading predicate {}", path.display()))?;
            serde_json::from_slice(&text)
                .with_context(|| format!("predicate {} is not JSON", path.display()))?
        }
        None => json!({}),
    };
    let statement = json!({
        "_type": evident_core::statement::STATEMENT_V1_TYPE,
        "subject": list,
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    let payload = serde_json::to_vec(&statement).expect("a JSON value serializes");
    // Refuse to sign what the ledger would refuse.
    Statement::from_json(&payload).context("the statement is not valid")?;
    let key = read_signing_key(key)?;
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&key]);
    let text = envelope.to_json();
    match out {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}
