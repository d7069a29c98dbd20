//! `evident keygen`: a new signing key file and its public key.

use std::path::{Path, PathBuf};

use crate::{Cli, Format, print_json, write_secret};
use anyhow::Context as _;
use evident_core::{PublicKey, SigningKey};
use serde_json::json;

// `evident keygen` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write the private key.
    #[arg(long, default_value = "evident-signing.key")]
    pub(crate) out: PathBuf,
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    keygen(&args.out, cli.format)
}

fn keygen(out: &Path, format: Format) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let key = SigningKey::from_bytes(&seed);
    let public = PublicKey::from_signing_key(&key);
    write_secret(out, &format!("{}\n", hex::encode(seed)))
        .with_context(|| format!("writing {}", out.display()))?;
    let pub_path = PathBuf::from(format!("{}.pub", out.display()));
    std::fs::write(&pub_path, format!("{}\n", public.to_hex()))
        .with_context(|| format!("writing {}", pub_path.display()))?;
    match format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
            "privateKey": out, "publicKeyFile": pub_path,
            "publicKey": public.to_hex(), "keyId": public.key_id(),
        })),
        Format::Human => {
            println!("private key: {} (mode 0600)", out.display());
            println!("public key:  {}", public.to_hex());
            println!("written to:  {}", pub_path.display());
        }
    }
    Ok(())
}
