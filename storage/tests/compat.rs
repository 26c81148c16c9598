//! A database written by an earlier build keeps opening, with the same content.
//!
//! `tests/fixtures/schema-1/stargate.redb` was written by the first schema version and is
//! committed. When the schema changes, the new build must still open this file (through a
//! migration) or refuse it with a clear error; add a fixture for the new version as well:
//! `STARGATE_REGENERATE_FIXTURE=1 cargo test -p stargate-storage --test compat` writes the
//! current version's fixture (then rename the directory after the new version).
// Helpers outside #[test] functions fail the test by unwrapping too.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

mod common;

use common::{node, raw};
use ipld_core::ipld::Ipld;
use stargate_protocol::{Block, Cid, Codec, HashCode, Version};
use stargate_storage::{DATABASE_FILE, PinFilter, PinMode, PinType, Store, StoreOptions};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-1");

struct Content {
    blocks: Vec<Block>,
    recursive: Vec<Cid>,
    direct: Vec<Cid>,
}

/// What the fixture holds: small and multi-chunk raw leaves, a CIDv0 dag-pb root over them, a
/// dag-cbor document linking one of them, a directly pinned block and an unpinned one.
fn content() -> Content {
    let mut leaves: Vec<Block> = (0..3)
        .map(|i| raw(format!("stargate fixture leaf {i}").into_bytes()))
        .collect();
    leaves.push(raw((0..150_000u32)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()));
    let root = node(&leaves.iter().collect::<Vec<_>>(), &[0x08, 0x02]);
    let doc = Ipld::Map(
        [("leaf".to_owned(), Ipld::Link(*leaves[0].cid()))]
            .into_iter()
            .collect(),
    );
    let cbor = Block::encode(
        Version::V1,
        Codec::DagCbor,
        HashCode::Sha2_256,
        serde_ipld_dagcbor::to_vec(&doc).unwrap(),
    )
    .unwrap();
    let direct = raw(b"stargate fixture direct".to_vec());
    let loose = raw(b"stargate fixture unpinned".to_vec());
    let recursive = vec![*root.cid(), *cbor.cid()];
    let direct_pins = vec![*direct.cid()];
    let mut blocks = leaves;
    blocks.extend([root, cbor, direct, loose]);
    Content {
        blocks,
        recursive,
        direct: direct_pins,
    }
}

fn write_fixture(dir: &Path, content: &Content) {
    let _ = std::fs::remove_file(dir.join(DATABASE_FILE));
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    store.put_many(content.blocks.iter().cloned()).unwrap();
    for cid in &content.recursive {
        store.pin(cid, PinMode::Recursive).unwrap();
    }
    for cid in &content.direct {
        store.pin(cid, PinMode::Direct).unwrap();
    }
}

#[test]
fn the_schema_1_fixture_still_opens_with_its_content() {
    let content = content();
    if std::env::var_os("STARGATE_REGENERATE_FIXTURE").is_some() {
        std::fs::create_dir_all(FIXTURE).unwrap();
        write_fixture(Path::new(FIXTURE), &content);
    }
    let fixture = Path::new(FIXTURE).join(DATABASE_FILE);
    assert!(
        fixture.is_file(),
        "missing fixture {}: it is committed to the repository",
        fixture.display()
    );
    // Opening writes (schema check, repair), so work on a copy.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&fixture, dir.path().join(DATABASE_FILE)).unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();

    for block in &content.blocks {
        assert_eq!(store.get(block.cid()).unwrap().as_ref(), Some(block));
    }
    assert_eq!(store.stat().unwrap().blocks, content.blocks.len() as u64);
    let listed = |filter| -> BTreeSet<Cid> {
        store
            .pins(filter)
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    };
    assert_eq!(
        listed(PinFilter::Recursive),
        content.recursive.iter().copied().collect()
    );
    assert_eq!(
        listed(PinFilter::Direct),
        content.direct.iter().copied().collect()
    );
    // The dag-cbor pin protects its leaf through the stored links.
    assert!(matches!(
        store.pin_type(content.blocks[0].cid()).unwrap(),
        Some(PinType::Indirect { .. })
    ));
    assert!(store.verify(|_| {}).unwrap().corrupt.is_empty());
    // Only the unpinned block is garbage.
    assert_eq!(store.gc().unwrap().blocks_removed, 1);
}
