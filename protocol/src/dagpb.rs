//! dag-pb nodes, encoded canonically (links before data, links stably sorted by name) exactly as
//! Kubo's go-codec-dagpb writes them, so that the same node gets the same CID on both.

use bytes::Bytes;
use thiserror::Error;

use crate::Cid;

/// A dag-pb block that does not decode.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DagPbError {
    /// The bytes are not a dag-pb protobuf (truncated, unknown fields, bad link CID, ...).
    #[error("invalid dag-pb node: {0}")]
    Invalid(String),
}

/// A link of a dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink {
    /// The linked block.
    pub cid: Cid,
    /// The name (file name in a directory, `XX`-prefixed in a HAMT shard; absent in file DAGs).
    pub name: Option<String>,
    /// Cumulative size of the linked DAG (encoded blocks), as Kubo records it.
    pub tsize: Option<u64>,
}

/// A dag-pb node: links and an optional opaque payload (UnixFS metadata for UnixFS nodes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PbNode {
    /// Links, in encoding order.
    pub links: Vec<PbLink>,
    /// The `Data` field.
    pub data: Option<Bytes>,
}

impl PbNode {
    /// Decodes a dag-pb block. `data` of the result shares `bytes`' allocation.
    ///
    /// # Errors
    /// [`DagPbError::Invalid`] for anything that is not a well-formed dag-pb node.
    pub fn decode(bytes: &Bytes) -> Result<Self, DagPbError> {
        let node = ipld_dagpb::PbNode::from_bytes(bytes.clone())
            .map_err(|e| DagPbError::Invalid(e.to_string()))?;
        Ok(Self {
            links: node
                .links
                .into_iter()
                .map(|l| PbLink {
                    cid: l.cid,
                    name: l.name,
                    tsize: l.size,
                })
                .collect(),
            data: node.data,
        })
    }

    /// Encodes the node canonically. Links are stably sorted by name first, as the dag-pb spec
    /// requires (file DAGs have unnamed links, whose order is kept).
    pub fn encode(self) -> Vec<u8> {
        ipld_dagpb::PbNode {
            links: self
                .links
                .into_iter()
                .map(|l| ipld_dagpb::PbLink {
                    cid: l.cid,
                    name: l.name,
                    size: l.tsize,
                })
                .collect(),
            data: self.data,
        }
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, HashCode, digest};
    use proptest::prelude::*;

    fn any_cid() -> impl Strategy<Value = Cid> {
        (any::<bool>(), any::<[u8; 8]>()).prop_map(|(v0, seed)| {
            let mh = digest(HashCode::Sha2_256, &seed);
            if v0 {
                Cid::new_v0(mh).expect("sha2-256 multihash")
            } else {
                Cid::new_v1(Codec::Raw.code(), mh)
            }
        })
    }

    fn any_node() -> impl Strategy<Value = PbNode> {
        let link = (
            any_cid(),
            proptest::option::of("[a-z]{0,8}"),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(cid, name, tsize)| PbLink { cid, name, tsize });
        (
            proptest::collection::vec(link, 0..8),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        )
            .prop_map(|(mut links, data)| {
                links.sort_by(|a, b| {
                    a.name
                        .as_deref()
                        .unwrap_or("")
                        .cmp(b.name.as_deref().unwrap_or(""))
                });
                PbNode {
                    links,
                    data: data.map(Bytes::from),
                }
            })
    }

    proptest! {
        #[test]
        fn round_trips(node in any_node()) {
            let bytes = Bytes::from(node.clone().encode());
            prop_assert_eq!(PbNode::decode(&bytes).unwrap(), node);
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = PbNode::decode(&Bytes::from(bytes));
        }
    }

    #[test]
    fn empty_unixfs_file_is_kubos() {
        // Kubo: `ipfs add` of an empty file is QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH,
        // a node whose Data is UnixFS {Type: File, filesize: 0}.
        let node = PbNode {
            links: vec![],
            data: Some(Bytes::from_static(&[0x08, 0x02, 0x18, 0x00])),
        };
        let block = crate::Block::encode(
            crate::Version::V0,
            Codec::DagPb,
            HashCode::Sha2_256,
            node.encode(),
        )
        .unwrap();
        assert_eq!(
            block.cid().to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
    }
}
