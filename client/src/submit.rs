//! Submission: signed envelopes, envelope files in batches (each receipt written beside its
//! file), and trust-registry changes signed by administrators. With a pinned log key, every
//! receipt is verified and its checkpoint proven consistent with the last one seen.

use std::path::{Path, PathBuf};

use evident_core::Hash;
use evident_core::SigningKey;
use evident_core::cosign::WitnessPolicy;
use evident_core::dsse::Envelope;
use evident_core::note::Verifier;
use evident_core::receipt::Receipt;
use evident_core::registry::{Change, sign_change};

use crate::{CheckpointState, Client, ClientError, MAX_ENVELOPES_PER_REQUEST};

/// How long [`submit_files`] waits for a witnessed checkpoint to cover a receipt.
pub const WITNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The most bytes of envelopes [`batches`] puts in one request (about 3 MiB).
pub const BATCH_BYTES: usize = 3 << 20;

/// Submits a signed envelope and returns its receipt and whether it was already in the
/// log. With `log_key`, the receipt is verified and its checkpoint proven consistent with
/// the one kept in `state_file`, which is then updated.
pub async fn submit_signed(
    client: &mut Client,
    log_key: Option<&Verifier>,
    state_file: &Path,
    envelope: &Envelope,
) -> Result<(Receipt, bool), ClientError> {
    let (receipt, duplicate) = client.submit(envelope).await?;
    if let Some(key) = log_key {
        receipt
            .verify(key)
            .map_err(|e| ClientError::Verification(format!("receipt: {e}")))?;
        let mut state = CheckpointState::load(state_file)?;
        state.advance(client, key, &receipt.checkpoint).await?;
        state.save(state_file)?;
    }
    Ok((receipt, duplicate))
}

/// A trust-registry change in the log.
#[derive(Debug, Clone)]
pub struct ChangeReceipt {
    /// The receipt of the change's entry.
    pub receipt: Receipt,
    /// Whether the same change was already in the log.
    pub duplicate: bool,
    /// The change's operation, as its JSON names it (e.g. `addSigner`).
    pub op: serde_json::Value,
    /// Whether the receipt was verified (a log key was given).
    pub verified: bool,
}

/// Signs a trust-registry change with the administrators' keys and submits it, as
/// [`submit_signed`].
pub async fn submit_change(
    client: &mut Client,
    log_key: Option<&Verifier>,
    state_file: &Path,
    change: &Change,
    admins: &[SigningKey],
) -> Result<ChangeReceipt, ClientError> {
    let refs: Vec<&SigningKey> = admins.iter().collect();
    let envelope = sign_change(change, &refs);
    let (receipt, duplicate) = submit_signed(client, log_key, state_file, &envelope).await?;
    let op = serde_json::to_value(change).expect("a change serializes")["op"].clone();
    Ok(ChangeReceipt {
        receipt,
        duplicate,
        op,
        verified: log_key.is_some(),
    })
}

/// A policy version in the log.
#[derive(Debug, Clone)]
pub struct PolicyReceipt {
    /// The receipt of the policy's entry.
    pub receipt: Receipt,
    /// Whether the same document was already in the log.
    pub duplicate: bool,
    /// The policy's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// Whether the receipt was verified (a log key was given).
    pub verified: bool,
}

/// Checks a policy document (TOML) as the ledger will, signs it with the administrators'
/// keys and submits it as a new version, as [`submit_signed`]. A document the ledger would
/// refuse is refused here, before anything is sent.
pub async fn submit_policy(
    client: &mut Client,
    log_key: Option<&Verifier>,
    state_file: &Path,
    document: &str,
    admins: &[SigningKey],
) -> Result<PolicyReceipt, ClientError> {
    let policy = evident_core::policy::Policy::parse(document)
        .map_err(|e| ClientError::Invalid(format!("the policy does not parse: {e}")))?;
    let refs: Vec<&SigningKey> = admins.iter().collect();
    let envelope = Envelope::sign(
        evident_core::policy::POLICY_PAYLOAD_TYPE,
        document.as_bytes().to_vec(),
        &refs,
    );
    let (receipt, duplicate) = submit_signed(client, log_key, state_file, &envelope).await?;
    Ok(PolicyReceipt {
        receipt,
        duplicate,
        name: policy.name,
        version: policy.version,
        verified: log_key.is_some(),
    })
}

/// Reads and decodes an envelope file: DSSE JSON, or a Sigstore bundle (`cosign attest`,
/// GitHub's artifact attestations) whose DSSE envelope is sent with the bundle's
/// verification material ([`envelope_of_bundle`]).
pub fn read_envelope(path: &Path) -> Result<Envelope, ClientError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ClientError::input(format!("reading {}", path.display()), e))?;
    let context = || format!("{}", path.display());
    if is_sigstore_bundle(&bytes) {
        return envelope_of_bundle(&bytes).map_err(|e| ClientError::input(context(), e));
    }
    Envelope::from_json(&bytes).map_err(|e| ClientError::input(context(), e))
}

/// Whether JSON bytes look like a Sigstore bundle rather than a DSSE envelope: an object
/// with a `mediaType` and no `payloadType`.
pub fn is_sigstore_bundle(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "mediaType")]
        media_type: Option<serde::de::IgnoredAny>,
        #[serde(rename = "payloadType")]
        payload_type: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Peek>(bytes)
        .is_ok_and(|p| p.media_type.is_some() && p.payload_type.is_none())
}

/// The DSSE envelope of a Sigstore bundle, carrying the bundle's verification material
/// ([`Envelope::sigstore`]) for the server to verify and keep.
pub fn envelope_of_bundle(bytes: &[u8]) -> Result<Envelope, BundleInputError> {
    let bundle =
        evident_core::sigstore::Bundle::from_json(bytes).map_err(BundleInputError::Bundle)?;
    let mut envelope = bundle
        .envelope()
        .cloned()
        .ok_or(BundleInputError::NotDsse)?;
    envelope.sigstore = Some(bundle.material_json());
    Ok(envelope)
}

/// Why a Sigstore bundle cannot be submitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleInputError {
    /// The bundle does not parse.
    #[error("not a usable Sigstore bundle: {0}")]
    Bundle(evident_core::sigstore::SigstoreError),
    /// A bundle of a message signature over an artifact.
    #[error(
        "the Sigstore bundle carries a message signature over an artifact, not a DSSE \
         envelope: Evident logs attestations; make one with `cosign attest --new-bundle-format` \
         or GitHub's attest actions"
    )]
    NotDsse,
}

/// Envelopes in batches the server accepts: at most [`MAX_ENVELOPES_PER_REQUEST`] envelopes
/// and about [`BATCH_BYTES`] each (a larger envelope goes alone).
pub fn batches<T>(envelopes: &[(T, Envelope)]) -> Vec<&[(T, Envelope)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, envelope)) in envelopes.iter().enumerate() {
        let size = evident_core::record::encoded_envelope_len(envelope);
        if i > start && (i - start == MAX_ENVELOPES_PER_REQUEST || bytes + size > BATCH_BYTES) {
            out.push(&envelopes[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < envelopes.len() {
        out.push(&envelopes[start..]);
    }
    out
}

/// An envelope file in the log, its receipt written.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The entry's index.
    pub index: u64,
    /// Whether the envelope was already in the log.
    pub duplicate: bool,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The size of the tree the receipt's checkpoint signs.
    pub tree_size: u64,
    /// Where the receipt was written.
    pub receipt_path: PathBuf,
    /// Whether the receipt was verified (a log key was given).
    pub verified: bool,
}

/// How [`submit_files`] went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilesSummary {
    /// How many files failed.
    pub failed: usize,
    /// Whether any of them failed verification (rather than being refused).
    pub verification_failed: bool,
}

/// Submits envelope files and writes each receipt beside its file as `FILE.receipt.json`
/// (or into `receipt_dir`). `on_each` is told about every file, in order, as it is answered.
///
/// One file: its failure is the call's error. Several: they are sent in [`batches`]; every
/// file is answered (a failure is passed to `on_each` and counted in the summary), and the
/// call fails only when the checkpoint state cannot advance. With `log_key`, receipts are
/// verified and `state` advanced through their checkpoints; saving it is the caller's.
///
/// With `witnesses` required, each receipt is proven again against the latest witnessed
/// checkpoint once one covers it (waiting up to [`WITNESS_WAIT`]), so the receipt written
/// carries the witnesses' cosignatures.
pub async fn submit_files<F>(
    client: &mut Client,
    log_key: Option<&Verifier>,
    witnesses: &WitnessPolicy,
    state: &mut CheckpointState,
    receipt_dir: Option<&Path>,
    envelopes: &[(PathBuf, Envelope)],
    mut on_each: F,
) -> Result<FilesSummary, ClientError>
where
    F: FnMut(&Path, Result<Logged, ClientError>),
{
    let mut submitted = Submitted {
        key: log_key,
        witnesses,
        receipt_dir,
        state,
        client,
        seen: None,
    };
    let mut summary = FilesSummary::default();
    if let [(path, envelope)] = envelopes {
        // One file: its error is the command's.
        let (receipt, duplicate) = submitted
            .client
            .submit(envelope)
            .await
            .map_err(|e| ClientError::input(format!("submitting {}", path.display()), e))?;
        let logged = submitted.finish(path, envelope, receipt, duplicate).await?;
        on_each(path, Ok(logged));
        return Ok(summary);
    }
    // Many: in batches, and every file is answered.
    for batch in batches(envelopes) {
        let sent: Vec<Envelope> = batch.iter().map(|(_, e)| e.clone()).collect();
        let answers = match submitted.client.submit_batch(&sent).await {
            Ok(answers) => answers,
            Err(refused) => {
                let text = refused.to_string();
                sent.iter()
                    .map(|_| Err(ClientError::status(tonic::Code::Unknown, text.clone())))
                    .collect()
            }
        };
        // The answers of a batch carry checkpoints in the order the log signed them, not
        // the files' order: the state advances through them by tree size.
        submitted.seen = Some(Vec::new());
        for ((path, envelope), answer) in batch.iter().zip(answers) {
            let outcome = match answer {
                Ok((receipt, duplicate)) => {
                    submitted.finish(path, envelope, receipt, duplicate).await
                }
                Err(refused) => Err(refused),
            };
            if let Err(e) = &outcome {
                summary.failed += 1;
                summary.verification_failed |= e.is_verification_failure();
            }
            on_each(path, outcome);
        }
        let mut seen = submitted.seen.take().unwrap_or_default();
        seen.sort();
        seen.dedup_by_key(|(size, _)| *size);
        if let Some(key) = log_key {
            for (_, note) in seen {
                submitted
                    .state
                    .advance(submitted.client, key, &note)
                    .await?;
            }
        }
    }
    Ok(summary)
}

/// What [`submit_files`] does with each receipt.
struct Submitted<'a> {
    key: Option<&'a Verifier>,
    witnesses: &'a WitnessPolicy,
    receipt_dir: Option<&'a Path>,
    state: &'a mut CheckpointState,
    client: &'a mut Client,
    /// When set, receipts do not advance the checkpoint state one by one: their
    /// checkpoints (tree size and note) are kept here, to advance through in size order.
    seen: Option<Vec<(u64, String)>>,
}

impl Submitted<'_> {
    /// Checks a receipt for `envelope` (from `path`), verifies it when the log key is
    /// pinned, and writes it beside the file (or into the receipt folder).
    async fn finish(
        &mut self,
        path: &Path,
        envelope: &Envelope,
        receipt: Receipt,
        duplicate: bool,
    ) -> Result<Logged, ClientError> {
        // A duplicate is answered with the entry already logged: it must be ours, signed by
        // our signatures, or the gate will not find our evidence.
        if let Some(missing) = envelope
            .signatures
            .iter()
            .position(|own| !receipt.envelope.signatures.iter().any(|s| s.sig == own.sig))
        {
            return Err(ClientError::Verification(format!(
                "{}: the log answered with entry {} as a duplicate, but the logged envelope \
                 does not carry this envelope's signature {missing}: it is not your evidence; \
                 do not rely on it",
                path.display(),
                receipt.index
            )));
        }
        let receipt = if self.witnesses.threshold() > 0 {
            crate::witnessed_receipt(self.client, receipt, WITNESS_WAIT)
                .await
                .map_err(|e| match e {
                    ClientError::Verification(why) => {
                        ClientError::Verification(format!("{}: {why}", path.display()))
                    }
                    other => ClientError::input(format!("{}", path.display()), other),
                })?
        } else {
            receipt
        };
        let verified = match self.key {
            Some(key) => {
                let verified = receipt.verify(key).map_err(|e| {
                    ClientError::Verification(format!("{}: receipt: {e}", path.display()))
                })?;
                crate::check_witnesses(self.witnesses, &receipt.checkpoint, &verified.checkpoint)
                    .map_err(|e| {
                    ClientError::Verification(format!("{}: receipt: {e}", path.display()))
                })?;
                match &mut self.seen {
                    Some(seen) => seen.push((receipt.tree_size, receipt.checkpoint.clone())),
                    None => {
                        self.state
                            .advance(self.client, key, &receipt.checkpoint)
                            .await?;
                    }
                }
                true
            }
            None => false,
        };
        let receipt_path = match self.receipt_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ClientError::input(format!("creating {}", dir.display()), e))?;
                dir.join(format!(
                    "{}.receipt.json",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ))
            }
            None => PathBuf::from(format!("{}.receipt.json", path.display())),
        };
        std::fs::write(&receipt_path, receipt.to_json())
            .map_err(|e| ClientError::input(format!("writing {}", receipt_path.display()), e))?;
        Ok(Logged {
            index: receipt.index,
            duplicate,
            leaf_hash: receipt.leaf_hash,
            tree_size: receipt.tree_size,
            receipt_path,
            verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(payload_len: usize) -> Envelope {
        let key = SigningKey::from_bytes(&[7; 32]);
        Envelope::sign("text/plain", vec![b'x'; payload_len], &[&key])
    }

    #[test]
    fn batches_hold_at_most_the_request_limit() {
        let one = envelope(10);
        let list: Vec<(usize, Envelope)> = (0..MAX_ENVELOPES_PER_REQUEST * 2 + 1)
            .map(|i| (i, one.clone()))
            .collect();
        let sizes: Vec<usize> = batches(&list).iter().map(|b| b.len()).collect();
        assert_eq!(
            sizes,
            [MAX_ENVELOPES_PER_REQUEST, MAX_ENVELOPES_PER_REQUEST, 1]
        );
        assert_eq!(batches::<usize>(&[]).len(), 0);
    }

    #[test]
    fn a_large_envelope_goes_alone() {
        let small = envelope(10);
        let large = envelope(BATCH_BYTES);
        let list = vec![(0, small.clone()), (1, large), (2, small)];
        let firsts: Vec<usize> = batches(&list).iter().map(|b| b[0].0).collect();
        assert_eq!(firsts, [0, 1, 2]);
    }
}
