//! `evident keygen`: a new signing key file and its public key.

use std::path::PathBuf;

use evident_client::keyfile;
use evident_client::output::KeygenOutput;

use crate::{Cli, Format, print_json};

// `evident keygen` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write the private key.
    #[arg(long, default_value = "evident-signing.key")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let key = keyfile::generate(&args.out)?;
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&KeygenOutput {
            private_key: key.private_key.clone(),
            public_key_file: key.public_key_file.clone(),
            public_key: key.public_key.to_hex(),
            key_id: key.public_key.key_id(),
        }),
        Format::Human => {
            println!("private key: {} (mode 0600)", key.private_key.display());
            println!("public key:  {}", key.public_key.to_hex());
            println!("written to:  {}", key.public_key_file.display());
        }
    }
    Ok(())
}
