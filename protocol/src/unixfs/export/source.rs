//! Where exported blocks come from: the store today, a network fetcher in step 2.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use thiserror::Error;

use crate::{Block, Cid, check_supported};

/// Why a [`BlockSource`] could not produce a block.
///
/// Callers map these to answers: `NotFound` → 404, `TimedOut` → 504, `Invalid` → the peer or disk
/// is lying (502/500 and a log line), `Unavailable` → 500.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceError {
    /// The source does not have the block and cannot get it.
    #[error("block {cid} not found")]
    NotFound {
        /// The block asked for.
        cid: String,
    },
    /// Fetching the block took longer than the source allows.
    #[error("timed out after {after:?} waiting for block {cid}")]
    TimedOut {
        /// The block asked for.
        cid: String,
        /// How long the source waited.
        after: Duration,
    },
    /// The CID cannot name a block we can verify, or what arrived does not match it.
    #[error("block {cid} is invalid: {reason}")]
    Invalid {
        /// The block asked for.
        cid: String,
        /// What was wrong.
        reason: String,
    },
    /// The source itself failed (disk error, shut down); retrying later may work.
    #[error("block {cid} is unavailable: {reason}")]
    Unavailable {
        /// The block asked for.
        cid: String,
        /// What failed.
        reason: String,
    },
}

impl SourceError {
    /// The CID the failed request was for.
    pub fn cid(&self) -> &str {
        match self {
            Self::NotFound { cid }
            | Self::TimedOut { cid, .. }
            | Self::Invalid { cid, .. }
            | Self::Unavailable { cid, .. } => cid,
        }
    }
}

/// Anything that hands out verified blocks by CID.
///
/// Implementations must only return blocks whose bytes match the CID (a [`Block`] guarantees
/// that). They are shared between concurrent exports, hence `Send + Sync`, and boxed so that the
/// store and the network fetcher can stand behind one `Arc<dyn BlockSource>`.
pub trait BlockSource: Send + Sync {
    /// Gets the block named `cid`.
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>>;
}

/// Fetches `cid` from `source`, answering identity CIDs from the CID itself and refusing CIDs we
/// cannot verify before anyone is asked. Prefer this to calling [`BlockSource::get`] directly,
/// which knows nothing of identity CIDs.
///
/// # Errors
/// [`SourceError`] from the source, or `Invalid` for a CID we cannot verify or a source that
/// answers with another block.
pub async fn fetch(source: &dyn BlockSource, cid: Cid) -> Result<Block, SourceError> {
    check_supported(&cid).map_err(|e| SourceError::Invalid {
        cid: cid.to_string(),
        reason: e.to_string(),
    })?;
    if let Some(block) = Block::from_identity(&cid) {
        return Ok(block);
    }
    let block = source.get(cid).await?;
    if block.cid() != &cid {
        // Same multihash under another codec or version would still be the wrong block.
        return Err(SourceError::Invalid {
            cid: cid.to_string(),
            reason: format!("source returned block {}", block.cid()),
        });
    }
    Ok(block)
}

/// A [`BlockSource`] holding blocks in memory: for tests, and for small DAGs assembled before
/// they are stored (a CAR being checked, an import in progress).
#[derive(Debug, Default, Clone)]
pub struct MemoryBlocks {
    blocks: Arc<RwLock<HashMap<Cid, Block>>>,
}

impl MemoryBlocks {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a block (replacing nothing: a CID names one content).
    pub fn insert(&self, block: Block) {
        let mut map = self
            .blocks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(*block.cid(), block);
    }

    /// Removes a block; true when it was there.
    pub fn remove(&self, cid: &Cid) -> bool {
        let mut map = self
            .blocks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(cid).is_some()
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.blocks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// True when no block is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, cid: &Cid) -> Option<Block> {
        self.blocks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(cid)
            .cloned()
    }
}

impl BlockSource for MemoryBlocks {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        let found = self.lookup(&cid).ok_or_else(|| SourceError::NotFound {
            cid: cid.to_string(),
        });
        Box::pin(std::future::ready(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, HashCode, Version, parse_cid};

    #[tokio::test]
    async fn identity_cids_never_reach_the_source() {
        let empty = MemoryBlocks::new();
        let cid = parse_cid("bafkqaaa").unwrap();
        let block = fetch(&empty, cid).await.unwrap();
        assert!(block.data().is_empty());
    }

    #[tokio::test]
    async fn missing_and_present_blocks() {
        let blocks = MemoryBlocks::new();
        let b = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"x"[..]).unwrap();
        assert_eq!(
            fetch(&blocks, *b.cid()).await,
            Err(SourceError::NotFound {
                cid: b.cid().to_string()
            })
        );
        blocks.insert(b.clone());
        assert_eq!(fetch(&blocks, *b.cid()).await.unwrap(), b);
    }

    #[tokio::test]
    async fn a_source_answering_with_another_block_is_caught() {
        struct Liar(Block);
        impl BlockSource for Liar {
            fn get(&self, _: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
                Box::pin(std::future::ready(Ok(self.0.clone())))
            }
        }
        let b = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"x"[..]).unwrap();
        let other = Cid::new_v1(Codec::DagPb.code(), *b.cid().hash());
        assert!(matches!(
            fetch(&Liar(b), other).await,
            Err(SourceError::Invalid { .. })
        ));
    }
}
