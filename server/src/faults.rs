//! The sequencer under storage faults, over the real log and indexes with the log's files
//! on [`SimFs`]: a failed `fdatasync` stops every acknowledgement for good (no retried
//! fsync), a full disk is a clear error, and after the power cut that follows, every
//! acknowledged entry is there.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use evident_core::SigningKey;
use evident_core::note::Signer;
use evident_core::receipt::Receipt;
use evident_core::registry::{Admin, Change, GenesisDocument, Registry, sign_change};

use crate::config::StartupCheck;
use crate::ledger::{BatchLimits, Ledger, LedgerError, SequencerHandle};
use crate::storage::LogStore;
use crate::storage::files::FileLog;
use crate::storage::runs::RunIndex;
use crate::storage::vfs::{Fate, SimFs, Vfs};
use crate::store::Store;

const LOG: &str = "/data/log";

struct Running {
    ledger: Ledger,
    sequencer: SequencerHandle,
    admin: SigningKey,
    _index: tempfile::TempDir,
}

fn start(fs: &SimFs) -> Running {
    let admin = SigningKey::from_bytes(&[9; 32]);
    let admins = vec![Admin {
        identity: "admin".into(),
        key: evident_core::PublicKey::from_signing_key(&admin),
    }];
    let registry = Registry::genesis(admins.clone(), 1).unwrap();
    let document = GenesisDocument::of(&admins, 1);
    let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
    let index = tempfile::tempdir().unwrap();
    let store = Store::from_parts(
        Arc::new(FileLog::open(vfs, Path::new(LOG)).unwrap()),
        Arc::new(
            RunIndex::open(
                Arc::new(crate::storage::vfs::OsFs),
                &index.path().join("indexes"),
            )
            .unwrap(),
        ),
    );
    if store.genesis().unwrap().is_none() {
        store
            .set_genesis(&serde_json::to_vec(&document).unwrap())
            .unwrap();
    }
    let verifier_key = SigningKey::from_bytes(&[3; 32]);
    let signer = Signer::new("evident.test/log", verifier_key).unwrap();
    let checked = crate::check::check_store(
        &store,
        signer.verifier(),
        StartupCheck::Tail,
        10_000,
        &registry,
    )
    .unwrap();
    let (ledger, sequencer) = Ledger::start(
        Arc::new(store),
        signer,
        checked.tail,
        crate::genesis::Genesis {
            registry,
            document,
            created_admin_key: None,
        },
        checked.registry,
        BatchLimits {
            max_entries: 64,
            max_delay: Duration::ZERO,
            queue_depth: 64,
        },
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    Running {
        ledger,
        sequencer,
        admin,
        _index: index,
    }
}

/// Registers signer `n`: one registry entry.
async fn add_signer(running: &Running, n: u32) -> Result<Receipt, LedgerError> {
    let key = SigningKey::from_bytes(&[n as u8 + 100; 32]);
    let change = Change::AddSigner {
        identity: format!("signer-{n}@test"),
        public_key: Some(evident_core::PublicKey::from_signing_key(&key).to_hex()),
        roles: vec!["ci".into()],
        predicate_types: vec!["*".into()],
        not_before: None,
        not_after: None,
        certificate: None,
    };
    let envelope = sign_change(&change, &[&running.admin]);
    let checked = evident_core::kinds::of(evident_core::record::EntryKind::Registry)
        .check(&running.ledger.registry(), &envelope, 0)
        .unwrap();
    running
        .ledger
        .submit(envelope, checked)
        .await
        .map(|(receipt, _)| receipt)
}

/// The durable state after a power cut now: every unsynced write lost.
fn power_cut(fs: &SimFs) -> SimFs {
    fs.snapshot().materialise(&mut |_| Fate::Drop, 0)
}

/// Every acknowledged receipt's record is in the log that `fs` recovers, byte for byte.
fn assert_all_there(fs: &SimFs, receipts: &[Receipt]) {
    let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
    let log = FileLog::open(vfs, Path::new(LOG)).unwrap();
    for receipt in receipts {
        let record = log
            .entry(receipt.index)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged entry {} is lost", receipt.index));
        let stored = evident_core::record::LeafRecord::decode(&record).unwrap();
        assert_eq!(stored.leaf_hash(), receipt.leaf_hash);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_every_acknowledgement_and_loses_nothing_acknowledged() {
    let fs = SimFs::new();
    let running = start(&fs);
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        acknowledged.push(add_signer(&running, n).await.unwrap());
    }
    let failure = running.sequencer.failure();
    assert!(failure.borrow().is_none());
    fs.fail_sync_after(0);
    let refused = add_signer(&running, 20).await.unwrap_err();
    assert!(
        matches!(refused, LedgerError::Store(_)) && refused.to_string().contains("fdatasync"),
        "{refused}"
    );
    // The sequencer has stopped: no later submission is acknowledged, even though the
    // file system would now sync again (a retried fsync could report success for pages
    // the kernel already dropped).
    for n in 21..25 {
        let refused = add_signer(&running, n).await.unwrap_err();
        assert!(refused.to_string().contains("fdatasync"), "{refused}");
    }
    assert!(
        failure.borrow().is_some(),
        "the failure is published: the server's health turns NOT_SERVING on it"
    );
    assert_eq!(running.ledger.published().checkpoint.size, 20);
    assert_all_there(&power_cut(&fs), &acknowledged);
    // A restart recovers from what is durable and takes submissions again.
    let recovered = power_cut(&fs);
    drop(running);
    let running = start(&recovered);
    let size = running.ledger.published().checkpoint.size;
    assert!(size >= 20, "{size}");
    let receipt = add_signer(&running, 30).await.unwrap();
    assert_eq!(receipt.index, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_error_and_loses_nothing_acknowledged() {
    let fs = SimFs::new();
    let running = start(&fs);
    let mut acknowledged = Vec::new();
    for n in 0..10 {
        acknowledged.push(add_signer(&running, n).await.unwrap());
    }
    // Room for a few more entries, not for many.
    fs.set_space_limit(Some(fs.used_space() + 4_000));
    let mut refused = None;
    for n in 10..200 {
        match add_signer(&running, n).await {
            Ok(receipt) => acknowledged.push(receipt),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the disk fills up");
    let text = refused.to_string();
    assert!(text.contains("disk is full"), "{text}");
    assert!(
        text.contains("cannot write /data/log/"),
        "names the file: {text}"
    );
    assert!(running.sequencer.failure().borrow().is_some());
    assert_all_there(&power_cut(&fs), &acknowledged);
}
