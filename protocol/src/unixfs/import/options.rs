//! What `ipfs add` lets a user choose, with Kubo v0.22's defaults and validation.

use std::str::FromStr;

use thiserror::Error;

use crate::Version;
use crate::limits::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE};

/// Kubo's `Internal.UnixFSShardingSizeThreshold` default (boxo's `HAMTShardingSize`): a directory
/// whose estimated size reaches this many bytes is written as a HAMT.
pub const DEFAULT_SHARD_THRESHOLD: usize = 256 * 1024;

/// Import options that are invalid.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    /// The chunker names an algorithm we do not implement.
    #[error("chunker {0:?} is not supported: use size-N (fixed-size chunks of N bytes) or default")]
    UnsupportedChunker(String),
    /// `size-N` where N is not a number.
    #[error("chunker {0:?} is invalid: N in size-N must be a number of bytes")]
    BadChunkSize(String),
    /// `size-0`.
    #[error("chunk size must be greater than zero")]
    ZeroChunkSize,
    /// A chunk size over Kubo's limit.
    #[error("chunk size {size} exceeds the maximum of {max} bytes")]
    ChunkSizeTooLarge {
        /// The requested size.
        size: usize,
        /// The limit ([`MAX_CHUNK_SIZE`]).
        max: usize,
    },
}

/// How files and directories are turned into blocks: Kubo v0.22 `ipfs add` options.
///
/// Fixed as in Kubo's defaults: sha2-256, balanced layout with at most
/// [`crate::limits::DEFAULT_MAX_LINKS`] links per node, HAMT fanout 256 with murmur3-x64-64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    cid_version: Version,
    raw_leaves: Option<bool>,
    chunk_size: usize,
    shard_threshold: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            cid_version: Version::V0,
            raw_leaves: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            shard_threshold: DEFAULT_SHARD_THRESHOLD,
        }
    }
}

impl ImportOptions {
    /// `--cid-version`. CIDv1 implies raw leaves unless [`Self::with_raw_leaves`] says otherwise.
    #[must_use]
    pub fn with_cid_version(mut self, version: Version) -> Self {
        self.cid_version = version;
        self
    }

    /// `--raw-leaves=<bool>` given explicitly; it overrides what the CID version implies.
    #[must_use]
    pub fn with_raw_leaves(mut self, raw_leaves: bool) -> Self {
        self.raw_leaves = Some(raw_leaves);
        self
    }

    /// `--chunker`: `default` (or empty) or `size-N`.
    ///
    /// # Errors
    /// [`OptionsError`] for another algorithm (rabin, buzhash), a malformed size, 0, or a size over
    /// [`MAX_CHUNK_SIZE`].
    pub fn with_chunker(self, chunker: &str) -> Result<Self, OptionsError> {
        let chunk_size = parse_chunker(chunker)?;
        Ok(Self { chunk_size, ..self })
    }

    /// Kubo's `Internal.UnixFSShardingSizeThreshold` in bytes; 0 disables sharding.
    #[must_use]
    pub fn with_shard_threshold(mut self, bytes: usize) -> Self {
        self.shard_threshold = bytes;
        self
    }

    /// The CID version of dag-pb nodes.
    pub fn cid_version(&self) -> Version {
        self.cid_version
    }

    /// Whether file leaves are raw blocks (explicit choice, else implied by CIDv1).
    pub fn raw_leaves(&self) -> bool {
        self.raw_leaves.unwrap_or(self.cid_version == Version::V1)
    }

    /// Bytes per chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Directory size estimate at which a directory becomes a HAMT; 0 means never.
    pub fn shard_threshold(&self) -> usize {
        self.shard_threshold
    }
}

/// Parses Kubo's chunker string into a chunk size.
fn parse_chunker(chunker: &str) -> Result<usize, OptionsError> {
    if chunker.is_empty() || chunker == "default" {
        return Ok(DEFAULT_CHUNK_SIZE);
    }
    let Some(size) = chunker.strip_prefix("size-") else {
        return Err(OptionsError::UnsupportedChunker(chunker.to_owned()));
    };
    let size = usize::from_str(size).map_err(|_| OptionsError::BadChunkSize(chunker.to_owned()))?;
    if size == 0 {
        return Err(OptionsError::ZeroChunkSize);
    }
    if size > MAX_CHUNK_SIZE {
        return Err(OptionsError::ChunkSizeTooLarge {
            size,
            max: MAX_CHUNK_SIZE,
        });
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kubos() {
        let o = ImportOptions::default();
        assert_eq!(o.cid_version(), Version::V0);
        assert!(!o.raw_leaves());
        assert_eq!(o.chunk_size(), 262_144);
        assert_eq!(o.shard_threshold(), 262_144);
    }

    #[test]
    fn cid_v1_implies_raw_leaves_unless_told() {
        let v1 = ImportOptions::default().with_cid_version(Version::V1);
        assert!(v1.raw_leaves());
        assert!(!v1.clone().with_raw_leaves(false).raw_leaves());
        assert!(ImportOptions::default().with_raw_leaves(true).raw_leaves());
    }

    #[test]
    fn parses_chunkers() {
        let size = |s: &str| {
            ImportOptions::default()
                .with_chunker(s)
                .map(|o| o.chunk_size())
        };
        assert_eq!(size(""), Ok(262_144));
        assert_eq!(size("default"), Ok(262_144));
        assert_eq!(size("size-1"), Ok(1));
        assert_eq!(size("size-1048576"), Ok(1_048_576));
        assert_eq!(size("size-0"), Err(OptionsError::ZeroChunkSize));
        assert_eq!(
            size("size-1048577"),
            Err(OptionsError::ChunkSizeTooLarge {
                size: 1_048_577,
                max: 1_048_576
            })
        );
        assert!(matches!(size("size-"), Err(OptionsError::BadChunkSize(_))));
        assert!(matches!(
            size("size-1k"),
            Err(OptionsError::BadChunkSize(_))
        ));
        assert!(matches!(
            size("size--5"),
            Err(OptionsError::BadChunkSize(_))
        ));
        assert!(matches!(
            size("rabin-1-2-3"),
            Err(OptionsError::UnsupportedChunker(_))
        ));
        assert!(matches!(
            size("buzhash"),
            Err(OptionsError::UnsupportedChunker(_))
        ));
    }
}
