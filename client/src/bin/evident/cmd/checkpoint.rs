//! `evident checkpoint`: the latest checkpoint, verified and proven consistent with the last one seen.

use crate::{Cli, Format, connect, print_json, require_log_key, state_path, witness_policy};
use evident_client::output::CheckpointOutput;
use evident_client::report::escape_terminal;
use evident_client::{CheckpointState, Refreshed};

/// `evident checkpoint` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

pub(crate) async fn run(cli: &Cli) -> anyhow::Result<()> {
    let key = require_log_key(cli)?;
    let mut client = connect(cli).await?;
    let state_file = state_path(cli);
    let Refreshed {
        checkpoint,
        previous,
        note,
    } = CheckpointState::refresh(&mut client, &key, &witness_policy(cli)?, &state_file).await?;
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&CheckpointOutput {
            origin: checkpoint.origin.clone(),
            tree_size: checkpoint.size,
            root_hash: checkpoint.root.to_hex(),
            previous_tree_size: previous,
            state_file: state_file.clone(),
            note,
        }),
        Format::Human => {
            println!("origin:    {}", escape_terminal(&checkpoint.origin));
            println!("tree size: {}", checkpoint.size);
            println!("root hash: {}", checkpoint.root);
            match previous {
                Some(p) => println!("consistent with the checkpoint of {p} entries seen before"),
                None => println!(
                    "first checkpoint seen from this log; remembered in {}",
                    state_file.display()
                ),
            }
        }
    }
    Ok(())
}
