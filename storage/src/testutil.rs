//! Helpers shared by the unit tests.

use bytes::Bytes;
use stargate_protocol::{Block, Cid, Codec, HashCode, PbLink, PbNode, Version};

use crate::{Store, StoreOptions};

pub(crate) fn open() -> (tempfile::TempDir, Store) {
    open_with(StoreOptions::default())
}

pub(crate) fn open_with(options: StoreOptions) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options).unwrap();
    (dir, store)
}

pub(crate) fn raw(data: impl Into<Bytes>) -> Block {
    Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, data).unwrap()
}

/// A dag-pb node (CIDv0) linking to `children`.
pub(crate) fn node(children: &[&Block], data: &[u8]) -> Block {
    let node = PbNode {
        links: children
            .iter()
            .map(|c| PbLink {
                cid: *c.cid(),
                name: None,
                tsize: Some(c.data().len() as u64),
            })
            .collect(),
        data: Some(Bytes::copy_from_slice(data)),
    };
    Block::encode(Version::V0, Codec::DagPb, HashCode::Sha2_256, node.encode()).unwrap()
}

pub(crate) fn cids(blocks: &[&Block]) -> Vec<Cid> {
    blocks.iter().map(|b| *b.cid()).collect()
}
