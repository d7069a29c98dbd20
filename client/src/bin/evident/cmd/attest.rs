//! `evident attest`: an in-toto Statement signed into a DSSE envelope.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use evident_client::attest::{self, Subject};
use evident_client::keyfile;
use serde_json::json;

use crate::Cli;

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
    let mut subjects = Vec::new();
    for s in &args.subjects {
        subjects.push(Subject::parse(s).with_context(|| format!("--subject {s:?}"))?);
    }
    for path in &args.subject_files {
        subjects.push(Subject::of_file(path)?);
    }
    if subjects.is_empty() {
        bail!("name at least one subject with --subject or --subject-file");
    }
    let predicate: serde_json::Value = match &args.predicate {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("reading predicate {}", path.display()))?;
            serde_json::from_slice(&text)
                .with_context(|| format!("predicate {} is not JSON", path.display()))?
        }
        None => json!({}),
    };
    let payload = attest::statement(&subjects, &args.predicate_type, predicate)?;
    let key = keyfile::read_signing_key(&args.key)?;
    let text = attest::sign(payload, &key).to_json();
    match &args.out {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}
