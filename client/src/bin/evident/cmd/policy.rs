//! `evident policy`: release policies, each version an administrator-signed entry in the log.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use evident_client::keyfile::read_signing_keys;
use evident_client::output::{
    PolicyListOutput, PolicyShowOutput, PolicySubmitOutput, PolicyVersionOutput,
};
use evident_client::report::escape_terminal;
use evident_client::submit::submit_policy;
use evident_client::time_text;

use crate::{AdminKeys, Cli, Format, connect, log_key, print_json, state_path};

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check a policy document (TOML) locally, sign it and submit it as a new version.
    Submit {
        /// The policy file.
        file: PathBuf,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// Show a policy version: NAME or NAME@VERSION (default: the latest).
    Show {
        /// NAME or NAME@VERSION.
        policy: String,
    },
    /// List every policy version in the log.
    List,
}

pub(crate) async fn run(cli: &Cli, command: &PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Submit { file, admins } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            // Refuse locally what the ledger would refuse, with the same line numbers, and
            // name the file.
            evident_core::policy::Policy::parse(&text)
                .with_context(|| format!("{}", file.display()))?;
            let keys = read_signing_keys(&admins.admin_keys)?;
            let key = log_key(cli)?;
            let mut client = connect(cli).await?;
            let logged =
                submit_policy(&mut client, key.as_ref(), &state_path(cli), &text, &keys).await?;
            match cli.format {
                Format::Json | Format::Jsonl | Format::Csv => print_json(&PolicySubmitOutput {
                    index: logged.receipt.index,
                    policy: logged.name.clone(),
                    version: logged.version,
                    leaf_hash: logged.receipt.leaf_hash.to_hex(),
                    duplicate: logged.duplicate,
                    verified: logged.verified,
                }),
                Format::Human => println!(
                    "policy {}@{} is entry {}",
                    logged.name, logged.version, logged.receipt.index
                ),
            }
            Ok(())
        }
        PolicyCommand::Show { policy } => {
            let (name, version) = match policy.split_once('@') {
                Some((n, v)) => (
                    n,
                    Some(
                        v.parse::<u64>()
                            .with_context(|| format!("version {v:?} is not a number"))?,
                    ),
                ),
                None => (policy.as_str(), None),
            };
            let mut client = connect(cli).await?;
            let doc = client.get_policy(name, version).await?;
            match cli.format {
                Format::Json | Format::Jsonl | Format::Csv => print_json(&PolicyShowOutput {
                    name: doc.name.clone(),
                    version: doc.version,
                    index: doc.index,
                    integrated_time: time_text(doc.integrated_time_nanos),
                    signed_by: doc.signed_by.clone(),
                    document: doc.document.clone(),
                }),
                Format::Human => {
                    println!(
                        "# policy {}@{}: entry {}, integrated {}, signed by {}",
                        escape_terminal(&doc.name),
                        doc.version,
                        doc.index,
                        time_text(doc.integrated_time_nanos),
                        escape_terminal(&doc.signed_by.join(", "))
                    );
                    // Line by line, so the document keeps its lines and nothing else
                    // reaches the terminal unescaped.
                    for line in doc.document.lines() {
                        println!("{}", escape_terminal(line));
                    }
                }
            }
            Ok(())
        }
        PolicyCommand::List => {
            let mut client = connect(cli).await?;
            let list = client.list_policies().await?;
            match cli.format {
                Format::Json | Format::Jsonl | Format::Csv => print_json(&PolicyListOutput {
                    policies: list
                        .iter()
                        .map(|(name, version, index)| PolicyVersionOutput {
                            name: name.clone(),
                            version: *version,
                            index: *index,
                        })
                        .collect(),
                }),
                Format::Human => {
                    for (n, v, i) in &list {
                        println!("{}@{v}  entry {i}", escape_terminal(n));
                    }
                }
            }
            Ok(())
        }
    }
}
