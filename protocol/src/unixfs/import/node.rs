//! Writing one dag-pb node of UnixFS metadata.

use bytes::Bytes;

use super::error::{ImportError, put};
use super::sink::BlockSink;
use crate::unixfs::UnixFsData;
use crate::{Block, Cid, Codec, HashCode, PbLink, PbNode, Version};

/// Encodes a dag-pb node holding `data` over `links`, hands it to `sink`, and returns its CID
/// and cumulative size (its own length plus its links' sizes), as its parent records them.
pub(super) fn write_node<S: BlockSink + ?Sized>(
    links: Vec<PbLink>,
    data: &UnixFsData,
    version: Version,
    sink: &mut S,
) -> Result<(Cid, u64), ImportError> {
    let links_tsize: u64 = links.iter().filter_map(|l| l.tsize).sum();
    let node = PbNode {
        links,
        data: Some(Bytes::from(data.encode())),
    };
    let block = Block::encode(version, Codec::DagPb, HashCode::Sha2_256, node.encode())?;
    let written = (*block.cid(), block.data().len() as u64 + links_tsize);
    put(sink, block)?;
    Ok(written)
}
