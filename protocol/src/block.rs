//! A block: bytes that were checked against the CID that names them.

use bytes::Bytes;
use thiserror::Error;

use crate::cid::check_supported;
use crate::limits::MAX_BLOCK_SIZE;
use crate::{Cid, CidError, Codec, HashCode, Version, digest};

/// Why bytes could not become a [`Block`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockError {
    /// The bytes hash to something other than the CID's digest.
    #[error("block bytes do not match CID {cid}: they hash to {actual}")]
    HashMismatch {
        /// The CID the bytes were claimed to have.
        cid: String,
        /// The hex multihash of what was actually received.
        actual: String,
    },
    /// The block is larger than any block we store or exchange.
    #[error("block of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Size of the rejected block.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The CID cannot be verified (unsupported codec or hash).
    #[error(transparent)]
    Cid(#[from] CidError),
    /// CIDv0 exists only for dag-pb with sha2-256.
    #[error("CIDv0 can only name dag-pb blocks hashed with sha2-256")]
    InvalidV0,
}

/// Bytes together with the CID they hash to.
///
/// The only ways to make one are [`Block::new`], which verifies, and [`Block::encode`], which
/// computes the CID from the bytes; so a `Block` always matches its CID.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    data: Bytes,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("cid", &self.cid.to_string())
            .field("len", &self.data.len())
            .finish()
    }
}

impl Block {
    /// Verifies that `data` hashes to `cid` and wraps both.
    ///
    /// # Errors
    /// [`BlockError`] when the bytes do not match, are too large, or the CID cannot be verified.
    pub fn new(cid: Cid, data: impl Into<Bytes>) -> Result<Self, BlockError> {
        let data = data.into();
        check_size(data.len())?;
        let (_, code) = check_supported(&cid)?;
        let actual = digest(code, &data);
        if actual.digest() != cid.hash().digest() {
            return Err(BlockError::HashMismatch {
                cid: cid.to_string(),
                actual: hex::encode(actual.to_bytes()),
            });
        }
        Ok(Self { cid, data })
    }

    /// Hashes `data` and names it with a CID of the given version, codec and hash.
    ///
    /// # Errors
    /// [`BlockError::TooLarge`], or [`BlockError::InvalidV0`] for a CIDv0 of anything but
    /// sha2-256 dag-pb.
    pub fn encode(
        version: Version,
        codec: Codec,
        hash: HashCode,
        data: impl Into<Bytes>,
    ) -> Result<Self, BlockError> {
        let data = data.into();
        check_size(data.len())?;
        let mh = digest(hash, &data);
        let cid = match version {
            Version::V0 if codec == Codec::DagPb && hash == HashCode::Sha2_256 => {
                Cid::new_v0(mh).map_err(|_| BlockError::InvalidV0)?
            }
            Version::V0 => return Err(BlockError::InvalidV0),
            Version::V1 => Cid::new_v1(codec.code(), mh),
        };
        Ok(Self { cid, data })
    }

    /// Wraps bytes without hashing them, for a store that verified them against `cid`'s
    /// multihash when it wrote them and serves them back under that multihash. Hashing again on
    /// every read is what a store's `hash_on_read` option is for; everything that takes bytes
    /// from outside must use [`Block::new`].
    pub fn new_unchecked(cid: Cid, data: Bytes) -> Self {
        Self { cid, data }
    }

    /// The block an identity CID names: its digest is its content. `None` for other hashes.
    pub fn from_identity(cid: &Cid) -> Option<Self> {
        (cid.hash().code() == HashCode::Identity.code()).then(|| Self {
            cid: *cid,
            data: Bytes::copy_from_slice(cid.hash().digest()),
        })
    }

    /// The CID.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The codec named by the CID.
    pub fn codec(&self) -> Option<Codec> {
        Codec::from_code(self.cid.codec())
    }

    /// Gives up the parts.
    pub fn into_parts(self) -> (Cid, Bytes) {
        (self.cid, self.data)
    }
}

fn check_size(size: usize) -> Result<(), BlockError> {
    if size > MAX_BLOCK_SIZE {
        return Err(BlockError::TooLarge {
            size,
            max: MAX_BLOCK_SIZE,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_cid;

    #[test]
    fn encode_then_new_round_trips() {
        for (v, c) in [(Version::V0, Codec::DagPb), (Version::V1, Codec::Raw)] {
            let b = Block::encode(v, c, HashCode::Sha2_256, &b"hello"[..]).unwrap();
            let again = Block::new(*b.cid(), b.data().clone()).unwrap();
            assert_eq!(b, again);
        }
    }

    #[test]
    fn rejects_mismatch_and_oversize() {
        let b = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"a"[..]).unwrap();
        assert!(matches!(
            Block::new(*b.cid(), &b"b"[..]),
            Err(BlockError::HashMismatch { .. })
        ));
        let big = vec![0u8; MAX_BLOCK_SIZE + 1];
        assert!(matches!(
            Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, big),
            Err(BlockError::TooLarge { .. })
        ));
    }

    #[test]
    fn v0_only_for_sha256_dag_pb() {
        assert_eq!(
            Block::encode(Version::V0, Codec::Raw, HashCode::Sha2_256, &b""[..]),
            Err(BlockError::InvalidV0)
        );
    }

    #[test]
    fn identity_blocks() {
        let cid = parse_cid("bafkqaaa").unwrap();
        let b = Block::from_identity(&cid).unwrap();
        assert!(b.data().is_empty());
        assert!(Block::new(cid, Bytes::new()).is_ok());
        assert!(Block::new(cid, &b"x"[..]).is_err());
    }
}
