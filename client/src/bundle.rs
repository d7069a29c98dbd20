//! Evidence bundles exported from the ledger, with their attestations in the in-toto
//! bundle form (JSON Lines, one DSSE envelope per line) for other tools.

use std::path::Path;

use base64::Engine as _;
use evident_core::bundle::Bundle;
use evident_core::note::Verifier;
use evident_core::record::{EntryKind, LeafRecord};

use crate::{CheckpointState, Client, ClientError, Release};

/// An evidence bundle fetched by [`export`].
#[derive(Debug, Clone)]
pub struct Exported {
    /// The bundle.
    pub bundle: Bundle,
    /// Its attestation envelopes, one JSON line each (the in-toto bundle form).
    pub intoto_jsonl: String,
    /// How many attestation envelopes `intoto_jsonl` holds.
    pub attestations: usize,
    /// The size of the bundle's checkpoint, when it was verified and proven consistent
    /// with the last one seen (a log key was given); `None` when not checked.
    pub proven_size: Option<u64>,
}

/// Fetches the evidence bundle of a release or artifact. With `log_key`, the bundle's
/// checkpoint is verified and proven consistent with the last one kept in `state_file`,
/// which is then updated.
pub async fn export(
    client: &mut Client,
    release: &Release,
    log_key: Option<&Verifier>,
    state_file: &Path,
) -> Result<Exported, ClientError> {
    let bundle = client.release_bundle(release).await?;
    let proven_size = match log_key {
        Some(key) => {
            let mut state = CheckpointState::load(state_file)?;
            let checkpoint = state.advance(client, key, &bundle.checkpoint).await?;
            state.save(state_file)?;
            Some(checkpoint.size)
        }
        None => None,
    };
    let mut intoto_jsonl = String::new();
    let mut attestations = 0;
    for entry in &bundle.entries {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&entry.leaf_record)
            .map_err(|e| {
                ClientError::input(
                    "the server's bundle holds a leaf record that is not base64",
                    e,
                )
            })?;
        let record = LeafRecord::decode(&bytes).map_err(|e| {
            ClientError::Invalid(format!("the server's bundle holds a bad leaf record: {e}"))
        })?;
        if record.kind() == EntryKind::Attestation {
            intoto_jsonl.push_str(&record.envelope().to_json());
            intoto_jsonl.push('\n');
            attestations += 1;
        }
    }
    Ok(Exported {
        bundle,
        intoto_jsonl,
        attestations,
        proven_size,
    })
}
