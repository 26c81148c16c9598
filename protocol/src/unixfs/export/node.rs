//! A block seen through UnixFS: what it is and what it holds.

use bytes::Bytes;

use super::ExportError;
use super::hamt::Shard;
use crate::unixfs::{DataType, UnixFsData};
use crate::{Block, Codec, PbNode};

/// What a CID names, as far as export is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A UnixFS file (dag-pb) of `size` bytes.
    File {
        /// Content size in bytes.
        size: u64,
    },
    /// A raw block (codec `raw`): its bytes are the content.
    Raw {
        /// Size in bytes.
        size: u64,
    },
    /// A basic UnixFS directory.
    Directory,
    /// A HAMT-sharded UnixFS directory.
    ShardedDirectory,
    /// A UnixFS symlink.
    Symlink {
        /// The link target, as stored (not necessarily UTF-8).
        target: Bytes,
    },
    /// Anything else: another codec, or dag-pb that is not UnixFS.
    Other {
        /// The codec of the block.
        codec: Codec,
    },
}

impl EntryKind {
    /// A short name for messages and listings.
    pub fn name(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::Raw { .. } => "raw block",
            Self::Directory | Self::ShardedDirectory => "directory",
            Self::Symlink { .. } => "symlink",
            Self::Other { .. } => "non-UnixFS block",
        }
    }

    /// The content size of files and raw blocks.
    pub fn file_size(&self) -> Option<u64> {
        match self {
            Self::File { size } | Self::Raw { size } => Some(*size),
            _ => None,
        }
    }

    /// True for both kinds of directory.
    pub fn is_directory(&self) -> bool {
        matches!(self, Self::Directory | Self::ShardedDirectory)
    }
}

/// A decoded block.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A raw block.
    Raw(Bytes),
    /// A dag-pb node and its UnixFS data, if it has any that decodes.
    Pb {
        node: PbNode,
        unixfs: Option<UnixFsData>,
    },
    /// Another codec, not interpreted.
    Other(Codec),
}

impl Decoded {
    pub(crate) fn new(block: &Block) -> Result<Self, ExportError> {
        let codec = block
            .codec()
            .ok_or_else(|| ExportError::malformed(block.cid(), "unsupported codec"))?;
        Ok(match codec {
            Codec::Raw => Self::Raw(block.data().clone()),
            Codec::DagPb => {
                let node = PbNode::decode(block.data())
                    .map_err(|e| ExportError::malformed(block.cid(), e.to_string()))?;
                let unixfs = UnixFsData::from_node_data(node.data.as_ref()).ok();
                Self::Pb { node, unixfs }
            }
            other => Self::Other(other),
        })
    }

    /// What the block is. Checks the invariants readers rely on (sizes, shard parameters).
    pub(crate) fn kind(&self, block: &Block) -> Result<EntryKind, ExportError> {
        Ok(match self {
            Self::Raw(data) => EntryKind::Raw {
                size: data.len() as u64,
            },
            Self::Other(codec) => EntryKind::Other { codec: *codec },
            Self::Pb { unixfs: None, .. } => EntryKind::Other {
                codec: Codec::DagPb,
            },
            Self::Pb {
                node,
                unixfs: Some(fs),
            } => match fs.kind {
                DataType::File | DataType::Raw => EntryKind::File {
                    size: file_size(block, node, fs)?,
                },
                DataType::Directory => EntryKind::Directory,
                DataType::HamtShard => {
                    Shard::from_data(block.cid(), fs)?;
                    EntryKind::ShardedDirectory
                }
                DataType::Symlink => EntryKind::Symlink {
                    target: fs.data.clone().unwrap_or_default(),
                },
                DataType::Metadata => EntryKind::Other {
                    codec: Codec::DagPb,
                },
            },
        })
    }
}

/// What a block is.
///
/// # Errors
/// [`ExportError::Malformed`] for dag-pb that does not decode or a UnixFS node whose sizes do not
/// add up.
pub fn kind_of(block: &Block) -> Result<EntryKind, ExportError> {
    Decoded::new(block)?.kind(block)
}

/// The size of a UnixFS file node's content: its inline data plus the sizes of its children.
/// `filesize`, when present, must agree (it is what Kubo reports; the rest is what we read).
pub(crate) fn file_size(block: &Block, node: &PbNode, fs: &UnixFsData) -> Result<u64, ExportError> {
    if fs.blocksizes.len() != node.links.len() {
        return Err(ExportError::malformed(
            block.cid(),
            format!(
                "{} links but {} blocksizes",
                node.links.len(),
                fs.blocksizes.len()
            ),
        ));
    }
    let inline = fs.data.as_ref().map_or(0, |d| d.len() as u64);
    let total = fs
        .blocksizes
        .iter()
        .try_fold(inline, |acc, &s| acc.checked_add(s))
        .ok_or_else(|| ExportError::malformed(block.cid(), "blocksizes overflow"))?;
    if let Some(declared) = fs.filesize
        && declared != total
    {
        return Err(ExportError::malformed(
            block.cid(),
            format!("filesize {declared} but data and blocksizes add up to {total}"),
        ));
    }
    Ok(total)
}
