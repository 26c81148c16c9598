//! Blocks for tests and examples: shared by the unit tests (`src/testutil.rs`), the integration
//! tests and the throughput example, each of which includes this file and uses part of it.
#![allow(dead_code, clippy::unwrap_used)]

use stargate_protocol::{Block, Bytes, Codec, HashCode, PbLink, PbNode, Version};

/// A raw block (CIDv1, sha2-256).
pub(crate) fn raw(data: impl Into<Bytes>) -> Block {
    Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, data).unwrap()
}

/// A dag-pb node (CIDv0) linking to `children` in order, with `data` as its Data field.
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
