//! CID prefixes: everything of a CID but the digest, as Bitswap 1.1.0+ sends with each block.

use bytes::Bytes;

use super::error::BitswapError;
use crate::limits::MAX_IDENTITY_DIGEST;
use crate::{Block, BlockError, Cid, Codec, HashCode, Version};

/// The prefix of a CID: version, codec, hash function and digest length, encoded as four
/// unsigned varints (`0x00 0x70 0x12 0x20` for CIDv0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CidPrefix {
    /// CID version.
    pub version: Version,
    /// Multicodec code of the content.
    pub codec: u64,
    /// Multihash code of the hash function.
    pub hash: u64,
    /// Digest length in bytes.
    pub digest_len: u64,
}

impl CidPrefix {
    /// The prefix of a CIDv0 (dag-pb, sha2-256, 32 bytes), which Bitswap 1.0.0 implies for
    /// every block.
    pub const V0: Self = Self {
        version: Version::V0,
        codec: Codec::DagPb.code(),
        hash: HashCode::Sha2_256.code(),
        digest_len: 32,
    };

    /// The prefix of `cid`.
    pub fn of(cid: &Cid) -> Self {
        Self {
            version: cid.version(),
            codec: cid.codec(),
            hash: cid.hash().code(),
            digest_len: u64::from(cid.hash().size()),
        }
    }

    /// The four varints.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        let mut buf = unsigned_varint::encode::u64_buffer();
        let version: u64 = self.version.into();
        for v in [version, self.codec, self.hash, self.digest_len] {
            out.extend_from_slice(unsigned_varint::encode::u64(v, &mut buf));
        }
        out
    }

    /// Decodes exactly four minimally encoded varints naming a valid CID version (a CIDv0 prefix
    /// must be dag-pb, sha2-256, 32 bytes).
    ///
    /// # Errors
    /// [`BitswapError::BadPrefix`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BitswapError> {
        let bad = |reason: &str| BitswapError::BadPrefix {
            hex: hex::encode(bytes.get(..32).unwrap_or(bytes)),
            reason: reason.to_owned(),
        };
        let mut rest = bytes;
        let mut fields = [0u64; 4];
        for field in &mut fields {
            let (v, tail) =
                unsigned_varint::decode::u64(rest).map_err(|e| bad(&format!("varint: {e}")))?;
            *field = v;
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the four varints"));
        }
        let [version, codec, hash, digest_len] = fields;
        let version = Version::try_from(version).map_err(|_| bad("unknown CID version"))?;
        let prefix = Self {
            version,
            codec,
            hash,
            digest_len,
        };
        if version == Version::V0 && prefix != Self::V0 {
            return Err(bad("a CIDv0 prefix must be dag-pb, sha2-256, 32 bytes"));
        }
        Ok(prefix)
    }

    /// Hashes `data` under this prefix and wraps it as the [`Block`] the resulting CID names.
    /// This is the only hashing a received block needs: the caller then compares the CID with
    /// the ones it asked for.
    ///
    /// # Errors
    /// [`BitswapError::BadPrefix`] when the digest length is not what the hash function makes
    /// (or an identity digest does not hold exactly `data`); [`BitswapError::Block`] for an
    /// unsupported codec or hash, or a block over the size limit.
    pub fn to_block(&self, data: Bytes) -> Result<Block, BitswapError> {
        let bad = |reason: String| BitswapError::BadPrefix {
            hex: hex::encode(self.to_bytes()),
            reason,
        };
        let codec = Codec::from_code(self.codec).ok_or_else(|| {
            BlockError::Cid(crate::CidError::UnsupportedCodec {
                cid: format!("prefix {}", hex::encode(self.to_bytes())),
                code: self.codec,
            })
        })?;
        let hash = HashCode::from_code(self.hash).ok_or_else(|| {
            BlockError::Cid(crate::CidError::UnsupportedHash {
                cid: format!("prefix {}", hex::encode(self.to_bytes())),
                code: self.hash,
            })
        })?;
        let expected = match hash {
            HashCode::Identity => {
                if data.len() > MAX_IDENTITY_DIGEST {
                    return Err(bad(format!(
                        "an identity digest holds at most {MAX_IDENTITY_DIGEST} bytes, the \
                         block has {}",
                        data.len()
                    )));
                }
                data.len() as u64
            }
            HashCode::Sha2_256 | HashCode::Blake3 => 32,
            HashCode::Sha2_512 => 64,
        };
        if self.digest_len != expected {
            return Err(bad(format!(
                "digest length {} where {} makes {expected} bytes",
                self.digest_len,
                hash.name()
            )));
        }
        Ok(Block::encode(self.version, codec, hash, data)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_cid;

    #[test]
    fn kubo_prefix_bytes() {
        let v0 = parse_cid("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH").unwrap();
        assert_eq!(CidPrefix::of(&v0), CidPrefix::V0);
        assert_eq!(CidPrefix::V0.to_bytes(), [0x00, 0x70, 0x12, 0x20]);
        let raw = parse_cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").unwrap();
        assert_eq!(CidPrefix::of(&raw).to_bytes(), [0x01, 0x55, 0x12, 0x20]);
        // dag-json's code needs two varint bytes.
        let p = CidPrefix {
            version: Version::V1,
            codec: Codec::DagJson.code(),
            hash: HashCode::Sha2_256.code(),
            digest_len: 32,
        };
        assert_eq!(p.to_bytes(), [0x01, 0xa9, 0x02, 0x12, 0x20]);
        assert_eq!(CidPrefix::from_bytes(&p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn rejects_bad_prefixes() {
        for bad in [
            &[][..],
            &[0x01, 0x55, 0x12],             // three varints
            &[0x01, 0x55, 0x12, 0x20, 0x00], // trailing byte
            &[0x02, 0x55, 0x12, 0x20],       // version 2
            &[0x00, 0x55, 0x12, 0x20],       // CIDv0 of raw
            &[0x01, 0xd5, 0x00, 0x12, 0x20], // non-minimal varint
            &[
                0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ] {
            assert!(CidPrefix::from_bytes(bad).is_err(), "{bad:02x?} accepted");
        }
    }

    #[test]
    fn to_block_hashes_under_the_prefix() {
        let data = Bytes::from_static(b"hello bitswap");
        let want =
            Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, data.clone()).unwrap();
        let got = CidPrefix::of(want.cid()).to_block(data.clone()).unwrap();
        assert_eq!(got, want);
        let v0 = CidPrefix::V0.to_block(data.clone()).unwrap();
        assert_eq!(v0.cid().version(), Version::V0);
        assert_eq!(v0.cid().hash(), want.cid().hash());
        // Identity: the digest is the data itself.
        let id = CidPrefix {
            version: Version::V1,
            codec: Codec::Raw.code(),
            hash: HashCode::Identity.code(),
            digest_len: data.len() as u64,
        };
        assert_eq!(
            id.to_block(data.clone()).unwrap().cid().hash().digest(),
            &data[..]
        );
    }

    #[test]
    fn to_block_refuses_what_cannot_be_a_cid() {
        let data = Bytes::from_static(b"x");
        let mut p = CidPrefix::of(
            Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, data.clone())
                .unwrap()
                .cid(),
        );
        p.digest_len = 20;
        assert!(matches!(
            p.to_block(data.clone()),
            Err(BitswapError::BadPrefix { .. })
        ));
        p.digest_len = 32;
        p.codec = 0x1234;
        assert!(matches!(
            p.to_block(data.clone()),
            Err(BitswapError::Block(_))
        ));
        p.codec = Codec::Raw.code();
        p.hash = 0xb220; // blake2b-256: not ours
        assert!(matches!(
            p.to_block(data.clone()),
            Err(BitswapError::Block(_))
        ));
        let id = CidPrefix {
            version: Version::V1,
            codec: Codec::Raw.code(),
            hash: HashCode::Identity.code(),
            digest_len: 2,
        };
        assert!(id.to_block(data).is_err());
        let big = Bytes::from(vec![0u8; crate::limits::MAX_BLOCK_SIZE + 1]);
        assert!(matches!(
            CidPrefix::V0.to_block(big),
            Err(BitswapError::Block(BlockError::TooLarge { .. }))
        ));
    }
}
