//! C2SP tlog-tiles and tlog-proof: tile paths and their strict parser, which tiles a tree
//! has (the spec's worked example), tiles made from a tree and read back through
//! `TiledTree` (roots and proofs equal the memory tree's; a tampered tile fails), entry
//! bundles, interoperability with Cloudflare's `tlog_tiles` (a port of Go's
//! golang.org/x/mod/sumdb/tlog), and tlog proofs.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use evident_core::Hash;
use evident_core::merkle::{
    self, MemoryTree, consistency_proof, inclusion_proof, leaf_hash, verify_consistency,
    verify_inclusion,
};
use evident_core::tiles::{
    BundleError, BundleId, Resource, TileError, TileId, TiledTree, bundles_new_between,
    decode_bundle, encode_bundle, resources_new_between, tile_hashes, tiles, tiles_new_between,
};
use proptest::prelude::*;

/// A memory tree of `n` leaves, leaf i the hash of `i` in big-endian.
fn memory_tree(n: u64) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for i in 0..n {
        tree.push(leaf_hash(&i.to_be_bytes()));
    }
    tree
}

/// The tiles of the first `size` leaves of `tree`, as a static mirror would serve them.
fn serve(tree: &MemoryTree, size: u64) -> HashMap<TileId, Vec<u8>> {
    tiles(size)
        .into_iter()
        .map(|id| (id, tile_hashes(tree, id).expect("the tree holds the tile")))
        .collect()
}

fn fetcher(served: &HashMap<TileId, Vec<u8>>) -> impl Fn(TileId) -> Result<Vec<u8>, String> + '_ {
    |id| {
        served
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("{id} not served"))
    }
}

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId::new(level, index, width).unwrap()
}

#[test]
fn paths_group_the_index_in_threes_with_x_prefixes() {
    assert_eq!(tile(0, 1234067, 256).path(), "tile/0/x001/x234/067");
    assert_eq!(tile(3, 1234067, 1).path(), "tile/3/x001/x234/067.p/1");
    assert_eq!(tile(0, 0, 256).path(), "tile/0/000");
    assert_eq!(tile(63, 999, 255).path(), "tile/63/999.p/255");
    assert_eq!(tile(1, 1000, 17).path(), "tile/1/x001/000.p/17");
    assert_eq!(
        BundleId::new(1234067, 112).unwrap().path(),
        "tile/entries/x001/x234/067.p/112"
    );
    assert_eq!(
        tile(0, u64::MAX, 256).path(),
        "tile/0/x018/x446/x744/x073/x709/x551/615"
    );
    assert_eq!(
        Resource::parse("tile/0/x018/x446/x744/x073/x709/x551/615").unwrap(),
        Resource::Tile(tile(0, u64::MAX, 256))
    );
}

#[test]
fn ids_out_of_range_are_refused() {
    assert!(TileId::new(64, 0, 256).is_err());
    assert!(TileId::new(0, 0, 0).is_err());
    assert!(TileId::new(0, 0, 257).is_err());
    assert!(BundleId::new(0, 0).is_err());
    assert!(BundleId::new(0, 257).is_err());
}

#[test]
fn every_non_canonical_path_is_refused() {
    for path in [
        "",
        "tile",
        "tile/",
        "tile/0",
        "tile/0/",
        "tiles/0/000",
        "/tile/0/000",
        "tile/00/000",
        "tile/01/000",
        "tile/+1/000",
        "tile/64/000",
        "tile/256/000",
        "tile/data/000",
        "tile/Entries/000",
        "tile/8/0/000",
        "tile/0/0",
        "tile/0/00",
        "tile/0/0000",
        "tile/0/x000",
        "tile/0/001/000",
        "tile/0/x000/001",
        "tile/0/x001/x234/67",
        "tile/0/x01/234",
        "tile/0/X001/234",
        "tile/0/x001//234",
        "tile/0/x001/234/",
        "tile/0/xx01/234",
        "tile/0/x-01/234",
        "tile/0/000.p/0",
        "tile/0/000.p/00",
        "tile/0/000.p/01",
        "tile/0/000.p/256",
        "tile/0/000.p/300",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/000.p/1/",
        "tile/0/000.p/1.p/1",
        "tile/0/x001.p/1/234",
        "tile/0/000.q/1",
        "tile/0/000/",
        "tile/entries/000.p/256",
        "tile/entries/x000/000",
        "tile/entries/",
        "tile/0/x018/x446/x744/x073/x709/x551/616",
        "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
        "tile/0/ 000",
        "tile/0/000 ",
    ] {
        assert!(Resource::parse(path).is_err(), "{path:?} was accepted");
    }
    let err = Resource::parse("tile/0/000.p/256").unwrap_err().to_string();
    assert!(err.contains("partial width"), "{err}");
    assert!(TileId::parse("tile/entries/000").is_err());
    assert!(BundleId::parse("tile/0/000").is_err());
}

fn any_resource() -> impl Strategy<Value = Resource> {
    let index = prop_oneof![0u64..2000, any::<u64>()];
    prop_oneof![
        (0u8..=63, index.clone(), 1u16..=256)
            .prop_map(|(l, n, w)| Resource::Tile(TileId::new(l, n, w).unwrap())),
        (index, 1u16..=256).prop_map(|(n, w)| Resource::Entries(BundleId::new(n, w).unwrap())),
    ]
}

proptest! {
    #[test]
    fn parse_inverts_path(resource in any_resource()) {
        prop_assert_eq!(Resource::parse(&resource.path()).unwrap(), resource);
    }

    #[test]
    fn tiles_new_between_is_what_the_new_tree_adds(a in 0u64..200_000, b in 0u64..200_000) {
        let (old, new) = (a.min(b), a.max(b));
        let before: BTreeSet<TileId> = tiles(old).into_iter().collect();
        let after: BTreeSet<TileId> = tiles(new).into_iter().collect();
        let added: BTreeSet<TileId> = tiles_new_between(old, new).into_iter().collect();
        prop_assert_eq!(added, after.difference(&before).copied().collect::<BTreeSet<_>>());
        let bundles: Vec<TileId> = bundles_new_between(old, new).iter().map(BundleId::tile).collect();
        let level0: Vec<TileId> =
            tiles_new_between(old, new).into_iter().filter(|t| t.level() == 0).collect();
        prop_assert_eq!(bundles, level0);
    }
}

#[test]
fn the_specs_worked_example() {
    let want = vec![
        tile(0, 273, 112),
        tile(1, 0, 256),
        tile(1, 1, 17),
        tile(2, 0, 1),
    ];
    let got = tiles(70_000);
    assert_eq!(got.len(), 273 + 4);
    assert!((0..273).all(|n| got.contains(&tile(0, n, 256))));
    for t in want {
        assert!(got.contains(&t), "{t} missing");
    }
    assert_eq!(tiles(256), vec![tile(0, 0, 256), tile(1, 0, 1)]);
    assert_eq!(tiles(0), vec![]);
    assert_eq!(tiles(1), vec![tile(0, 0, 1)]);
    assert_eq!(tiles_new_between(70_000, 70_000), vec![]);
    assert_eq!(tiles_new_between(70_001, 70_000), vec![]);
    assert_eq!(tiles_new_between(70_000, 70_001), vec![tile(0, 273, 113)]);
    let resources = resources_new_between(255, 256);
    assert_eq!(
        resources,
        vec![
            Resource::Tile(tile(0, 0, 256)),
            Resource::Tile(tile(1, 0, 1)),
            Resource::Entries(BundleId::new(0, 256).unwrap()),
        ]
    );
    // The largest trees have tiles up to level 7.
    assert!(tiles_new_between((1 << 56) - 1, 1 << 56).contains(&tile(7, 0, 1)));
}

/// Sizes with every shape of tile boundary, and some from a fixed pseudo-random sequence.
fn sizes(max: u64) -> Vec<u64> {
    let mut sizes = vec![1, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, max];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..6 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        sizes.push(1 + (x >> 33) % max);
    }
    sizes.retain(|&s| s <= max);
    sizes
}

#[test]
fn roots_and_proofs_through_tiles_equal_the_memory_trees() {
    let max = 70_000;
    let tree = memory_tree(max);
    for size in sizes(max) {
        let served = serve(&tree, size);
        let tiled = TiledTree::new(size, fetcher(&served));
        let root = merkle::root(&tree, size).unwrap();
        assert_eq!(merkle::root(&tiled, size).unwrap(), root, "size {size}");
        let step = (size / 13).max(1);
        for index in (0..size)
            .step_by(usize::try_from(step).unwrap())
            .chain([size - 1])
        {
            let proof = inclusion_proof(&tiled, index, size).unwrap();
            assert_eq!(proof, inclusion_proof(&tree, index, size).unwrap());
            let leaf = leaf_hash(&index.to_be_bytes());
            verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
        }
        for old in [1, size / 3, size / 2, size - 1, size]
            .into_iter()
            .filter(|&o| o > 0)
        {
            let proof = consistency_proof(&tiled, old, size).unwrap();
            assert_eq!(proof, consistency_proof(&tree, old, size).unwrap());
            let old_root = merkle::root(&tree, old).unwrap();
            verify_consistency(old, size, &proof, &old_root, &root).unwrap();
        }
    }
}

#[test]
fn a_tampered_tile_fails_the_verified_proof() {
    let size = 70_000;
    let tree = memory_tree(size);
    let root = tree.root();
    let mut served = serve(&tree, size);
    // Leaf 5's sibling, leaf 4, is hash 4 of level-0 tile 0.
    served.get_mut(&tile(0, 0, 256)).unwrap()[4 * 32] ^= 1;
    let tiled = TiledTree::new(size, fetcher(&served));
    let proof = inclusion_proof(&tiled, 5, size).unwrap();
    let leaf = leaf_hash(&5u64.to_be_bytes());
    assert!(verify_inclusion(5, size, &leaf, &proof, &root).is_err());
    // The root reads higher tiles only, so it does not see this one: only a proof that
    // reads a tile checks it.
    assert_eq!(merkle::root(&tiled, size).unwrap(), root);
    let proof = consistency_proof(&tiled, 7, size).unwrap();
    let old_root = merkle::root(&tree, 7).unwrap();
    assert!(verify_consistency(7, size, &proof, &old_root, &root).is_err());

    // A hash in a level-1 tile (the root of level-0 tile 3), in leaf 0's proof.
    let mut served = serve(&tree, size);
    served.get_mut(&tile(1, 0, 256)).unwrap()[3 * 32 + 31] ^= 0x80;
    let tiled = TiledTree::new(size, fetcher(&served));
    let proof = inclusion_proof(&tiled, 0, size).unwrap();
    assert!(verify_inclusion(0, size, &leaf_hash(&0u64.to_be_bytes()), &proof, &root).is_err());
}

#[test]
fn a_tile_of_the_wrong_length_or_outside_the_tree_is_an_error() {
    let tree = memory_tree(300);
    let mut served = serve(&tree, 300);
    served.get_mut(&tile(0, 1, 44)).unwrap().pop();
    let tiled = TiledTree::new(300, fetcher(&served));
    let err = tiled_err(&tiled, 0, 299);
    assert!(
        matches!(
            err,
            TileError::Length {
                got: 1407,
                want: 1408,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        tiled_err(&tiled, 0, 300),
        TileError::OutsideTree { .. }
    ));
    assert!(matches!(
        tiled_err(&tiled, 9, 0),
        TileError::OutsideTree { .. }
    ));
    assert!(matches!(
        tiled_err(&tiled, 64, 0),
        TileError::OutsideTree { .. }
    ));
    assert!(matches!(
        tiled_err(&tiled, 0, u64::MAX),
        TileError::OutsideTree { .. }
    ));
    // The served partial tile is gone once the tree is bigger: a clear fetch error.
    let tiled = TiledTree::new(301, fetcher(&served));
    let err = tiled_err(&tiled, 0, 300);
    assert_eq!(
        err.to_string(),
        "fetching tile tile/0/001.p/45: tile/0/001.p/45 not served"
    );
    assert!(matches!(
        tile_hashes(&tree, tile(7, 1, 256)),
        Err(TileError::Beyond(_))
    ));
    assert!(matches!(
        tile_hashes(&tree, tile(0, u64::MAX, 256)),
        Err(TileError::Beyond(_))
    ));
    assert!(matches!(
        tile_hashes(&tree, tile(0, 1, 256)),
        Err(TileError::Source { .. })
    ));
}

fn tiled_err<F: evident_core::tiles::TileFetcher>(
    tiled: &TiledTree<F>,
    level: u32,
    index: u64,
) -> TileError<F::Error> {
    use evident_core::merkle::SubtreeSource as _;
    tiled.subtree_hash(level, index).expect_err("an error")
}

#[test]
fn tiled_tree_caches_the_tiles_it_fetched() {
    let tree = memory_tree(1000);
    let served = serve(&tree, 1000);
    let fetches = RefCell::new(0);
    let tiled = TiledTree::new(1000, |id: TileId| {
        *fetches.borrow_mut() += 1;
        served.get(&id).cloned().ok_or("missing")
    });
    for index in 0..1000 {
        inclusion_proof(&tiled, index, 1000).unwrap();
    }
    // Four level-0 tiles and one level-1 tile, each fetched once.
    assert_eq!(*fetches.borrow(), 5);
}

#[test]
fn bundles_round_trip_and_decode_strictly() {
    let records: Vec<Vec<u8>> = (0..256u32).map(|i| vec![i as u8; i as usize * 3]).collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let bytes = encode_bundle(&refs).unwrap();
    assert_eq!(decode_bundle(&bytes, 256).unwrap(), refs);
    assert_eq!(encode_bundle(&[b"ab"]).unwrap(), b"\x00\x02ab");
    assert_eq!(encode_bundle(&[]).unwrap(), b"");
    assert_eq!(decode_bundle(b"", 0).unwrap(), Vec::<&[u8]>::new());
    assert_eq!(decode_bundle(b"\x00\x00", 1).unwrap(), vec![b"" as &[u8]]);

    assert_eq!(
        decode_bundle(&bytes, 255),
        Err(BundleError::Trailing {
            extra: 2 + 255 * 3,
            expected: 255
        })
    );
    assert!(matches!(
        decode_bundle(&bytes, 257),
        Err(BundleError::Truncated { index: 256, .. })
    ));
    assert!(matches!(
        decode_bundle(&bytes[..bytes.len() - 1], 256),
        Err(BundleError::Truncated { index: 255, .. })
    ));
    assert!(matches!(
        decode_bundle(b"\x00", 1),
        Err(BundleError::Truncated { index: 0, .. })
    ));
    assert!(matches!(
        decode_bundle(b"\x00\x03ab", 1),
        Err(BundleError::Truncated { index: 0, .. })
    ));

    let big = vec![0u8; 65_536];
    let max = vec![0u8; 65_535];
    let err = encode_bundle(&[&max, &big]).unwrap_err();
    assert_eq!(
        err,
        BundleError::TooLarge {
            index: 1,
            len: 65_536
        }
    );
    assert!(
        err.to_string()
            .contains("tlog-tiles entry bundle format cannot carry"),
        "{err}"
    );
    let many = vec![b"" as &[u8]; 257];
    assert_eq!(
        encode_bundle(&many),
        Err(BundleError::TooMany { count: 257 })
    );
}

#[test]
fn a_bundles_records_hash_to_its_level_zero_tile() {
    let records: Vec<Vec<u8>> = (0..300u64).map(|i| i.to_be_bytes().to_vec()).collect();
    let tree = memory_tree(300);
    for id in bundles_new_between(0, 300) {
        let start = usize::try_from(id.index() * 256).unwrap();
        let refs: Vec<&[u8]> = records[start..start + usize::from(id.width())]
            .iter()
            .map(Vec::as_slice)
            .collect();
        let bundle = encode_bundle(&refs).unwrap();
        let leaves: Vec<u8> = decode_bundle(&bundle, usize::from(id.width()))
            .unwrap()
            .into_iter()
            .flat_map(|r| leaf_hash(r).0)
            .collect();
        assert_eq!(leaves, tile_hashes(&tree, id.tile()).unwrap());
    }
}

/// Cloudflare's `tlog_tiles` reads our tiles through its own `TileHashReader`, which checks
/// them against the root it is given.
mod interop {
    use super::*;
    use tlog_tiles::{
        Error, Tile, TileHashReader, TileReader, check_record, check_tree, prove_record,
        prove_tree, tree_hash,
    };

    /// Serves tiles made by our `tile_hashes`, at whatever width the reader asks.
    struct OurTiles<'a> {
        tree: &'a MemoryTree,
        size: u64,
        asked: RefCell<BTreeSet<String>>,
    }

    impl TileReader for OurTiles<'_> {
        fn height(&self) -> u8 {
            8
        }

        fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, Error> {
            tiles
                .iter()
                .map(|t| {
                    let ours = ours(t);
                    assert_eq!(ours.path(), c2sp_path(t));
                    // Every tile it asks for is the tree's tile or a prefix of it.
                    let width = TiledTree::new(self.size, |_: TileId| Err::<Vec<u8>, ()>(()))
                        .tile_id(ours.level(), ours.index())
                        .expect("a tile of the tree")
                        .width();
                    assert!(ours.width() <= width);
                    self.asked.borrow_mut().insert(ours.path());
                    tile_hashes(self.tree, ours).map_err(|_| Error::InvalidTile)
                })
                .collect()
        }

        fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
    }

    fn ours(t: &Tile) -> TileId {
        assert_eq!(t.height(), 8);
        TileId::new(
            t.level(),
            t.level_index(),
            u16::try_from(t.width()).unwrap(),
        )
        .unwrap()
    }

    /// `tlog_tiles` writes Go sumdb's paths, `tile/<H>/<L or data>/…`; tlog-tiles drops
    /// the height and names entry bundles `entries`.
    fn c2sp_path(t: &Tile) -> String {
        let go = t.path();
        let rest = go.strip_prefix("tile/8/").expect("height 8");
        match rest.strip_prefix("data/") {
            Some(n) => format!("tile/entries/{n}"),
            None => format!("tile/{rest}"),
        }
    }

    fn theirs(h: Hash) -> tlog_tiles::Hash {
        tlog_tiles::Hash(h.0)
    }

    #[test]
    fn tile_paths_agree() {
        for size in [1, 255, 256, 257, 70_000, 16_777_217] {
            let go = Tile::new_tiles(8, 0, size);
            let ids = tiles(size);
            assert_eq!(go.len(), ids.len(), "size {size}");
            for (t, id) in go.iter().zip(&ids) {
                assert_eq!(ours(t), *id);
                assert_eq!(c2sp_path(t), id.path());
                let mut data = *t;
                data.set_is_data();
                if t.level() == 0 {
                    let bundle = BundleId::new(id.index(), id.width()).unwrap();
                    assert_eq!(c2sp_path(&data), bundle.path());
                }
            }
        }
        for (old, new) in [(0, 1), (1, 70_000), (65_535, 65_537), (70_000, 140_000)] {
            let go: Vec<TileId> = Tile::new_tiles(8, old, new).iter().map(ours).collect();
            assert_eq!(go, tiles_new_between(old, new));
        }
    }

    #[test]
    fn their_reader_verifies_our_tiles_and_proofs_agree() {
        let max = 70_000;
        let tree = memory_tree(max);
        for size in sizes(max) {
            let reader = OurTiles {
                tree: &tree,
                size,
                asked: RefCell::new(BTreeSet::new()),
            };
            let root = merkle::root(&tree, size).unwrap();
            let hashes = TileHashReader::new(size, theirs(root), &reader);
            assert_eq!(
                tree_hash(size, &hashes).unwrap(),
                theirs(root),
                "size {size}"
            );
            let step = (size / 7).max(1);
            for index in (0..size)
                .step_by(usize::try_from(step).unwrap())
                .chain([size - 1])
            {
                let go = prove_record(size, index, &hashes).unwrap();
                let ours = inclusion_proof(&tree, index, size).unwrap();
                assert_eq!(go, ours.iter().copied().map(theirs).collect::<Vec<_>>());
                let leaf = leaf_hash(&index.to_be_bytes());
                check_record(&go, size, theirs(root), index, theirs(leaf)).unwrap();
            }
            for old in [1, size / 3, size - 1, size].into_iter().filter(|&o| o > 0) {
                let old_root = merkle::root(&tree, old).unwrap();
                let go = prove_tree(size, old, &hashes).unwrap();
                let ours = consistency_proof(&tree, old, size).unwrap();
                assert_eq!(go, ours.iter().copied().map(theirs).collect::<Vec<_>>());
                check_tree(&go, size, theirs(root), old, theirs(old_root)).unwrap();
            }
            assert!(!reader.asked.borrow().is_empty());

            // A wrong root: their reader refuses our (honest) tiles.
            let wrong = TileHashReader::new(size, theirs(Hash([1; 32])), &reader);
            assert!(tree_hash(size, &wrong).is_err());
        }
    }
}

mod tlog_proof {
    use evident_core::cosign::{CosignError, Cosigner, WitnessPolicy, add_signature_lines};
    use evident_core::note::{Checkpoint, Signer};
    use evident_core::tlog_proof::{TlogProof, TlogProofError};
    use evident_core::{Hash, SigningKey};

    use super::*;

    const ORIGIN: &str = "example.com/fancylog";

    fn log_signer() -> Signer {
        Signer::new(ORIGIN, SigningKey::from_bytes(&[1; 32])).unwrap()
    }

    fn witness(i: u8) -> Cosigner {
        Cosigner::ed25519(
            &format!("witness{i}.example"),
            SigningKey::from_bytes(&[10 + i; 32]),
        )
        .unwrap()
    }

    fn policy(threshold: usize) -> WitnessPolicy {
        WitnessPolicy::new(
            (1..=3).map(|i| witness(i).key().clone()).collect(),
            threshold,
        )
        .unwrap()
    }

    /// The checkpoint of `tree`'s first `size` leaves, signed by the log and cosigned by
    /// `witnesses`.
    fn checkpoint(tree: &MemoryTree, size: u64, witnesses: &[u8]) -> String {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: merkle::root(tree, size).unwrap(),
            extensions: vec![],
        };
        let mut note = cp.sign(&log_signer()).unwrap();
        for &i in witnesses {
            let line = witness(i)
                .cosign(&cp.to_body(), 1_700_000_000 + u64::from(i))
                .unwrap();
            note = add_signature_lines(&note, &line).unwrap();
        }
        note
    }

    fn proof(tree: &MemoryTree, index: u64, size: u64, witnesses: &[u8]) -> TlogProof {
        TlogProof {
            extra: None,
            index,
            proof: inclusion_proof(tree, index, size).unwrap(),
            checkpoint: checkpoint(tree, size, witnesses),
        }
    }

    fn leaf(i: u64) -> Hash {
        leaf_hash(&i.to_be_bytes())
    }

    #[test]
    fn a_proof_round_trips_and_verifies() {
        let tree = memory_tree(1000);
        let log = log_signer().verifier().clone();
        for (index, extra) in [
            (0, None),
            (737, Some(b"age-v1.2.1".to_vec())),
            (999, Some(vec![])),
        ] {
            let mut p = proof(&tree, index, 1000, &[1, 2, 3]);
            p.extra = extra;
            let text = p.to_text();
            assert_eq!(TlogProof::parse(&text).unwrap(), p);
            let verified = p.verify(&leaf(index), &log, &policy(2)).unwrap();
            assert_eq!(verified.checkpoint.size, 1000);
            assert_eq!(verified.cosigned.len(), 3);
        }
        // A tree of one leaf: no proof lines.
        let p = proof(&tree, 0, 1, &[1]);
        assert!(p.proof.is_empty());
        let text = p.to_text();
        assert!(
            text.contains("index 0\n\nexample.com/fancylog\n1\n"),
            "{text}"
        );
        TlogProof::parse(&text)
            .unwrap()
            .verify(&leaf(0), &log, &policy(1))
            .unwrap();
    }

    #[test]
    fn the_specs_example_shape_parses() {
        // The spec's example, with our own hashes and signatures in place of its truncated
        // ones.
        let tree = memory_tree(64);
        let hashes: Vec<String> = (0..5u8).map(|i| Hash::sha256(&[i]).to_base64()).collect();
        let text = format!(
            "c2sp.org/tlog-proof@v1\nextra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6\n\
             index 73894\n{}\n\n{}",
            hashes.join("\n"),
            checkpoint(&tree, 64, &[1, 2, 3])
        );
        let p = TlogProof::parse(&text).unwrap();
        assert_eq!(
            p.extra.as_deref(),
            Some(&b"age-v1.2.1-darwin-arm64.tar.gz"[..])
        );
        assert_eq!(p.index, 73894);
        assert_eq!(p.proof.len(), 5);
        assert_eq!(p.proof[4].to_base64(), hashes[4]);
        assert_eq!(p.checkpoint.lines().count(), 8);
        assert_eq!(p.to_text(), text);
        // Index 73894 is not in a tree of 64.
        let err = p
            .verify(&leaf(0), log_signer().verifier(), &policy(3))
            .unwrap_err();
        assert!(
            matches!(
                err,
                TlogProofError::Inclusion {
                    index: 73894,
                    size: 64,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn every_malformed_proof_is_refused_naming_its_line() {
        let tree = memory_tree(100);
        let good = proof(&tree, 42, 100, &[1]).to_text();
        let lines: Vec<&str> = good.split('\n').collect();
        let cp = checkpoint(&tree, 100, &[1]);
        let proof_lines = lines[2..9].join("\n");
        let h = Hash::sha256(b"x").to_base64();
        let cases: Vec<(String, usize)> = vec![
            (String::new(), 1),
            (good.replacen("@v1", "@v2", 1), 1),
            (format!(" {good}"), 1),
            (
                good.replacen("c2sp.org/tlog-proof@v1\n", "c2sp.org/tlog-proof@v1\r\n", 1),
                1,
            ),
            ("c2sp.org/tlog-proof@v1".into(), 1),
            (good.replacen("index 42", "index 042", 1), 2),
            (good.replacen("index 42", "index  42", 1), 2),
            (good.replacen("index 42", "index +42", 1), 2),
            (good.replacen("index 42", "index", 1), 2),
            (
                good.replacen("index 42", "index 18446744073709551616", 1),
                2,
            ),
            (good.replacen("index 42", "Index 42", 1), 2),
            (good.replacen("index 42", "index 42 ", 1), 2),
            (good.replacen("index 42\n", "", 1), 2),
            (
                good.replacen("index 42", "extra AAAA\nextra AAAA\nindex 42", 1),
                3,
            ),
            (good.replacen("index 42", "extra AAA\nindex 42", 1), 2),
            (good.replacen("index 42", "extra\nindex 42", 1), 2),
            (good.replacen("index 42", "extraAAAA\nindex 42", 1), 2),
            (good.replacen("index 42", "extra A-_A\nindex 42", 1), 2),
            (good.replacen("index 42", "index 42\nextra AAAA", 1), 3),
            (good.replacen(lines[3], &lines[3][..40], 1), 4),
            (good.replacen(lines[3], &format!("{}AAAA", lines[3]), 1), 4),
            (good.replacen(lines[3], &format!(" {}", lines[3]), 1), 4),
            (good.replacen(lines[3], &lines[3].replace('=', ""), 1), 4),
            // A non-canonical spelling of a hash: the last character's unused bits set.
            (
                good.replacen(lines[3], &format!("{}B=", &lines[3][..42]), 1),
                4,
            ),
            (
                format!(
                    "c2sp.org/tlog-proof@v1\nindex 0\n{}\n\n{cp}",
                    vec![h.as_str(); 64].join("\n")
                ),
                66,
            ),
            (
                format!("c2sp.org/tlog-proof@v1\nindex 42\n{proof_lines}\n"),
                10,
            ),
            (
                format!("c2sp.org/tlog-proof@v1\nindex 42\n{proof_lines}\n\n"),
                11,
            ),
            (
                format!("c2sp.org/tlog-proof@v1\nindex 42\n{proof_lines}\n\n\n{cp}"),
                11,
            ),
            (
                format!("c2sp.org/tlog-proof@v1\nindex 42\n{proof_lines}\n\nnot a note"),
                11,
            ),
            (
                format!(
                    "c2sp.org/tlog-proof@v1\nindex 42\n{proof_lines}\n\n{}",
                    cp.trim_end()
                ),
                11,
            ),
            (
                format!(
                    "c2sp.org/tlog-proof@v1\nindex 42\n{proof_lines}\n\n{}",
                    cp.replacen("\n100\n", "\n0100\n", 1)
                ),
                11,
            ),
        ];
        for (text, line) in cases {
            match TlogProof::parse(&text) {
                Err(TlogProofError::Malformed { line: got, why }) => {
                    assert_eq!(got, line, "{text:?}: {why}");
                    let message = TlogProof::parse(&text).unwrap_err().to_string();
                    assert!(message.starts_with(&format!("tlog proof line {line}: ")));
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        // 63 proof lines is the most a proof can have, and parses.
        let text = format!(
            "c2sp.org/tlog-proof@v1\nindex 0\n{}\n\n{cp}",
            vec![h.as_str(); 63].join("\n")
        );
        assert_eq!(TlogProof::parse(&text).unwrap().proof.len(), 63);
    }

    #[test]
    fn the_wrong_leaf_index_or_size_is_refused() {
        let tree = memory_tree(1000);
        let log = log_signer().verifier().clone();
        let p = proof(&tree, 500, 1000, &[1, 2]);
        let inclusion =
            |r: Result<_, TlogProofError>| matches!(r, Err(TlogProofError::Inclusion { .. }));
        assert!(inclusion(p.verify(&leaf(501), &log, &policy(2))));
        let mut wrong_index = p.clone();
        wrong_index.index = 501;
        assert!(inclusion(wrong_index.verify(&leaf(500), &log, &policy(2))));
        wrong_index.index = 1000;
        assert!(inclusion(wrong_index.verify(&leaf(500), &log, &policy(2))));
        // The proof for a tree of 999 under the checkpoint of 1000.
        let mut other_size = p.clone();
        other_size.proof = inclusion_proof(&tree, 500, 999).unwrap();
        assert!(inclusion(other_size.verify(&leaf(500), &log, &policy(2))));
        // A flipped byte in a proof hash.
        let mut flipped = p.clone();
        flipped.proof[3].0[0] ^= 1;
        assert!(inclusion(flipped.verify(&leaf(500), &log, &policy(2))));
        let message = flipped
            .verify(&leaf(500), &log, &policy(2))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("tlog proof of entry 500 in the checkpoint of size 1000"),
            "{message}"
        );
    }

    #[test]
    fn too_few_cosignatures_or_another_log_is_refused() {
        let tree = memory_tree(10);
        let log = log_signer().verifier().clone();
        let p = proof(&tree, 3, 10, &[2]);
        p.verify(&leaf(3), &log, &policy(1)).unwrap();
        let err = p.verify(&leaf(3), &log, &policy(2)).unwrap_err();
        assert!(
            matches!(
                err,
                TlogProofError::Witnesses(CosignError::TooFew {
                    have: 1,
                    need: 2,
                    ..
                })
            ),
            "{err}"
        );
        // A cosignature by an untrusted witness does not count.
        let stranger =
            Cosigner::ed25519("witness1.example", SigningKey::from_bytes(&[99; 32])).unwrap();
        let cp = Checkpoint::verify(&p.checkpoint, &log).unwrap();
        let line = stranger.cosign(&cp.to_body(), 1).unwrap();
        let mut p2 = p.clone();
        p2.checkpoint = add_signature_lines(&p.checkpoint, &line).unwrap();
        assert!(p2.verify(&leaf(3), &log, &policy(2)).is_err());

        let other = Signer::new(ORIGIN, SigningKey::from_bytes(&[2; 32])).unwrap();
        assert!(matches!(
            p.verify(&leaf(3), other.verifier(), &WitnessPolicy::none()),
            Err(TlogProofError::Checkpoint(_))
        ));
        let renamed =
            Signer::new("example.com/otherlog", SigningKey::from_bytes(&[1; 32])).unwrap();
        assert!(matches!(
            p.verify(&leaf(3), renamed.verifier(), &WitnessPolicy::none()),
            Err(TlogProofError::Checkpoint(_))
        ));
    }
}
