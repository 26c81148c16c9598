//! Links between blocks, and walking the DAG below a CID.
//!
//! dag-pb links come from [`PbNode`], dag-cbor links from every CID (tag 42) anywhere in the
//! document. Other codecs (raw, dag-json, libp2p-key) are leaves: a dag-json DAG pins, and
//! survives GC, as its root block only. A block that does not decode under its codec has no
//! links, the same at store time and at walk time.

use std::collections::HashSet;
use std::ops::ControlFlow;

use bytes::Bytes;
use ipld_core::ipld::Ipld;
use redb::ReadableTable;
use stargate_protocol::{Block, Cid, Codec, PbNode};

use crate::StoreError;
use crate::tables::Tables;

/// Whether blocks of this codec can link to others.
fn may_link(codec: u64) -> bool {
    codec == Codec::DagPb.code() || codec == Codec::DagCbor.code()
}

/// The CIDs a block links to, in document order, duplicates kept.
pub(crate) fn links_of(codec: u64, data: &Bytes) -> Vec<Cid> {
    if codec == Codec::DagPb.code() {
        PbNode::decode(data)
            .map(|node| node.links.into_iter().map(|l| l.cid).collect())
            .unwrap_or_default()
    } else if codec == Codec::DagCbor.code() {
        // The decoder stops at 256 levels of nesting, so hostile input cannot exhaust the stack.
        let mut links = Vec::new();
        if let Ok(ipld) = serde_ipld_dagcbor::from_slice::<Ipld>(data) {
            ipld.references(&mut links);
        }
        links
    } else {
        Vec::new()
    }
}

/// Binary CIDs back to back; each is self-delimiting.
pub(crate) fn encode_links(links: &[Cid]) -> Vec<u8> {
    let mut out = Vec::with_capacity(links.len() * 40);
    for cid in links {
        out.extend_from_slice(&cid.to_bytes());
    }
    out
}

/// The inverse of [`encode_links`]; `None` if the bytes are not a list of CIDs.
pub(crate) fn decode_links(mut bytes: &[u8]) -> Option<Vec<Cid>> {
    let mut links = Vec::new();
    while !bytes.is_empty() {
        links.push(Cid::read_bytes(&mut bytes).ok()?);
    }
    Some(links)
}

/// The key under which a walk remembers a visited node: the same bytes read under another
/// codec may have other links, so the codec is part of it; CIDv0 and CIDv1 dag-pb are one node.
pub(crate) fn node_key(cid: &Cid) -> Cid {
    Cid::new_v1(cid.codec(), *cid.hash())
}

impl<I, D, L, T> Tables<I, D, L, T>
where
    I: ReadableTable<&'static [u8], (u32, u64)>,
    D: ReadableTable<&'static [u8], &'static [u8]>,
    L: ReadableTable<&'static [u8], &'static [u8]>,
{
    /// Whether the block a CID names is available (identity CIDs always are).
    pub(crate) fn contains(&self, cid: &Cid) -> Result<bool, StoreError> {
        if Block::from_identity(cid).is_some() {
            return Ok(true);
        }
        Ok(self.entry(&cid.hash().to_bytes())?.is_some())
    }

    /// The CIDs a block links to, or `None` if the block is not stored.
    fn children(&self, cid: &Cid) -> Result<Option<Vec<Cid>>, StoreError> {
        if let Some(block) = Block::from_identity(cid) {
            return Ok(Some(links_of(cid.codec(), block.data())));
        }
        let mh = cid.hash().to_bytes();
        let Some(entry) = self.entry(&mh)? else {
            return Ok(None);
        };
        if !may_link(cid.codec()) {
            return Ok(Some(Vec::new()));
        }
        if entry.codec == cid.codec() {
            return self.stored_links(&mh).map(Some);
        }
        // Stored under another codec (e.g. put as raw, pinned as dag-pb): decode the bytes.
        let data = self.data(&mh, entry)?;
        Ok(Some(links_of(cid.codec(), &data)))
    }

    /// Visits `root` and every block below it, depth first, each node once across all walks
    /// that share `visited`. `visit` gets each CID and whether its block is stored (the walk
    /// does not descend below a missing block) and may stop the walk.
    pub(crate) fn walk(
        &self,
        root: &Cid,
        visited: &mut HashSet<Cid>,
        mut visit: impl FnMut(&Cid, bool) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            if !visited.insert(node_key(&cid)) {
                continue;
            }
            let children = self.children(&cid)?;
            if visit(&cid, children.is_some()).is_break() {
                return Ok(());
            }
            if let Some(children) = children {
                stack.extend(children.into_iter().rev());
            }
        }
        Ok(())
    }

    /// The first block of the DAG below `root` that is not stored, if any.
    pub(crate) fn first_missing(&self, root: &Cid) -> Result<Option<Cid>, StoreError> {
        let mut missing = None;
        self.walk(root, &mut HashSet::new(), |cid, present| {
            if present {
                ControlFlow::Continue(())
            } else {
                missing = Some(*cid);
                ControlFlow::Break(())
            }
        })?;
        Ok(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stargate_protocol::{HashCode, PbLink, Version};

    fn raw(data: &[u8]) -> Block {
        Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, data.to_vec()).unwrap()
    }

    #[test]
    fn dag_pb_links_in_order() {
        let (a, b) = (raw(b"a"), raw(b"b"));
        let node = PbNode {
            links: [&a, &b]
                .iter()
                .map(|x| PbLink {
                    cid: *x.cid(),
                    name: None,
                    tsize: Some(1),
                })
                .collect(),
            data: None,
        };
        let bytes = Bytes::from(node.encode());
        assert_eq!(
            links_of(Codec::DagPb.code(), &bytes),
            vec![*a.cid(), *b.cid()]
        );
        // The same bytes as raw have no links.
        assert!(links_of(Codec::Raw.code(), &bytes).is_empty());
    }

    #[test]
    fn dag_cbor_links_anywhere_in_the_document() {
        let (a, b) = (raw(b"a"), raw(b"b"));
        let doc = Ipld::Map(
            [
                ("x".to_owned(), Ipld::Link(*a.cid())),
                (
                    "y".to_owned(),
                    Ipld::List(vec![Ipld::Integer(1), Ipld::Link(*b.cid())]),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let bytes = Bytes::from(serde_ipld_dagcbor::to_vec(&doc).unwrap());
        let mut links = links_of(Codec::DagCbor.code(), &bytes);
        links.sort();
        let mut want = vec![*a.cid(), *b.cid()];
        want.sort();
        assert_eq!(links, want);
    }

    #[test]
    fn undecodable_and_deeply_nested_blocks_have_no_links() {
        let garbage = Bytes::from_static(&[0xff, 0x00, 0x13]);
        assert!(links_of(Codec::DagPb.code(), &garbage).is_empty());
        assert!(links_of(Codec::DagCbor.code(), &garbage).is_empty());
        // 100k nested one-element arrays: beyond the decoder's depth limit, no stack overflow.
        let nested = Bytes::from(vec![0x81u8; 100_000]);
        assert!(links_of(Codec::DagCbor.code(), &nested).is_empty());
    }

    #[test]
    fn link_lists_round_trip() {
        let v0 = Block::encode(Version::V0, Codec::DagPb, HashCode::Sha2_256, vec![]).unwrap();
        let links = vec![*raw(b"a").cid(), *v0.cid(), *raw(b"a").cid()];
        assert_eq!(decode_links(&encode_links(&links)), Some(links));
        assert_eq!(decode_links(&[]), Some(vec![]));
        assert_eq!(decode_links(&[0x01, 0x55]), None);
    }
}
