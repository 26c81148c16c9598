//! Parsing CIDs from text and deciding which ones we can verify.

use ::cid::{Cid, Version};
use thiserror::Error;

use crate::limits::{MAX_CID_STRING_LEN, MAX_IDENTITY_DIGEST};

/// Why a CID was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidError {
    /// The text is not a CID at all.
    #[error("invalid CID {input:?}: {reason}")]
    Malformed {
        /// The rejected text (truncated to a printable length).
        input: String,
        /// What the decoder said.
        reason: String,
    },
    /// The CID names a codec this node does not know how to handle.
    #[error(
        "unsupported codec 0x{code:x} in CID {cid}: supported are dag-pb, raw, dag-cbor, dag-json and libp2p-key"
    )]
    UnsupportedCodec {
        /// The CID as text.
        cid: String,
        /// The multicodec code.
        code: u64,
    },
    /// The CID uses a hash function this node cannot verify.
    #[error(
        "unsupported hash function 0x{code:x} in CID {cid}: supported are sha2-256, sha2-512, blake3 and identity"
    )]
    UnsupportedHash {
        /// The CID as text.
        cid: String,
        /// The multihash code.
        code: u64,
    },
    /// The digest length does not match what the hash function produces.
    #[error("CID {cid} has a {len}-byte digest, which its hash function cannot produce")]
    BadDigestLength {
        /// The CID as text.
        cid: String,
        /// The digest length found.
        len: usize,
    },
}

/// The IPLD codecs whose blocks we store and serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// `dag-pb` (0x70): UnixFS files and directories.
    DagPb,
    /// `raw` (0x55): raw leaves and opaque bytes.
    Raw,
    /// `dag-cbor` (0x71).
    DagCbor,
    /// `dag-json` (0x0129).
    DagJson,
    /// `libp2p-key` (0x72): IPNS names; stored opaquely.
    Libp2pKey,
}

impl Codec {
    /// The multicodec code.
    pub const fn code(self) -> u64 {
        match self {
            Self::DagPb => 0x70,
            Self::Raw => 0x55,
            Self::DagCbor => 0x71,
            Self::DagJson => 0x0129,
            Self::Libp2pKey => 0x72,
        }
    }

    /// The codec for a multicodec code, if we support it.
    pub const fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0x70 => Self::DagPb,
            0x55 => Self::Raw,
            0x71 => Self::DagCbor,
            0x0129 => Self::DagJson,
            0x72 => Self::Libp2pKey,
            _ => return None,
        })
    }

    /// The multicodec name, as Kubo prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DagPb => "dag-pb",
            Self::Raw => "raw",
            Self::DagCbor => "dag-cbor",
            Self::DagJson => "dag-json",
            Self::Libp2pKey => "libp2p-key",
        }
    }

    /// The codec for a multicodec name (`raw`, `dag-pb`, ...), as `block put --cid-codec` takes it.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::DagPb,
            Self::Raw,
            Self::DagCbor,
            Self::DagJson,
            Self::Libp2pKey,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

/// The multihash functions whose digests we can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashCode {
    /// The bytes themselves are the digest (inlined CIDs such as `bafkqaaa`).
    Identity,
    /// sha2-256, the IPFS default.
    Sha2_256,
    /// sha2-512.
    Sha2_512,
    /// blake3 with a 32-byte digest.
    Blake3,
}

impl HashCode {
    /// The multihash code.
    pub const fn code(self) -> u64 {
        match self {
            Self::Identity => 0x00,
            Self::Sha2_256 => 0x12,
            Self::Sha2_512 => 0x13,
            Self::Blake3 => 0x1e,
        }
    }

    /// The hash function for a multihash code, if we support it.
    pub const fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0x00 => Self::Identity,
            0x12 => Self::Sha2_256,
            0x13 => Self::Sha2_512,
            0x1e => Self::Blake3,
            _ => return None,
        })
    }

    /// The multihash name, as Kubo prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Sha2_256 => "sha2-256",
            Self::Sha2_512 => "sha2-512",
            Self::Blake3 => "blake3",
        }
    }

    /// The hash function for a multihash name (`sha2-256`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Identity, Self::Sha2_256, Self::Sha2_512, Self::Blake3]
            .into_iter()
            .find(|h| h.name() == name)
    }

    /// Whether `len` is a digest length this function produces.
    const fn accepts_len(self, len: usize) -> bool {
        match self {
            Self::Identity => len <= MAX_IDENTITY_DIGEST,
            Self::Sha2_256 | Self::Blake3 => len == 32,
            Self::Sha2_512 => len == 64,
        }
    }
}

/// Parses a CID from text: CIDv0 (`Qm...`) or CIDv1 in any multibase. Surrounding whitespace is
/// ignored; `/ipfs/` prefixes and `ipfs://` URLs are not CIDs and are rejected.
///
/// # Errors
/// [`CidError`] when the text is not a CID or names a codec or hash we cannot handle.
pub fn parse_cid(text: &str) -> Result<Cid, CidError> {
    let text = text.trim();
    if text.len() > MAX_CID_STRING_LEN {
        return Err(malformed(text, "longer than any CID"));
    }
    if text.is_empty() {
        return Err(malformed(text, "empty"));
    }
    if text.starts_with('/') {
        // The cid crate would strip an `/ipfs/` prefix; a content path is not a CID.
        return Err(malformed(text, "a path, not a CID"));
    }
    let cid = Cid::try_from(text).map_err(|e| malformed(text, &e.to_string()))?;
    check_supported(&cid)?;
    Ok(cid)
}

/// Checks that we can verify and interpret blocks named by `cid`.
///
/// # Errors
/// [`CidError`] naming the unsupported codec or hash, or a digest of the wrong length.
pub fn check_supported(cid: &Cid) -> Result<(Codec, HashCode), CidError> {
    let codec = Codec::from_code(cid.codec()).ok_or_else(|| CidError::UnsupportedCodec {
        cid: cid.to_string(),
        code: cid.codec(),
    })?;
    let hash = cid.hash();
    let code = HashCode::from_code(hash.code()).ok_or_else(|| CidError::UnsupportedHash {
        cid: cid.to_string(),
        code: hash.code(),
    })?;
    if !code.accepts_len(hash.digest().len()) {
        return Err(CidError::BadDigestLength {
            cid: cid.to_string(),
            len: hash.digest().len(),
        });
    }
    if cid.version() == Version::V0 && codec != Codec::DagPb {
        // The cid crate enforces this already; kept so the invariant is local.
        return Err(malformed(&cid.to_string(), "CIDv0 must be dag-pb"));
    }
    Ok((codec, code))
}

fn malformed(input: &str, reason: &str) -> CidError {
    CidError::Malformed {
        input: input.chars().take(100).collect(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v0_and_v1() {
        let v0 = parse_cid("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH").unwrap();
        assert_eq!(v0.version(), Version::V0);
        let v1 = parse_cid(" bafkqaaa\n").unwrap();
        assert_eq!(v1.codec(), Codec::Raw.code());
        assert_eq!(v1.hash().code(), HashCode::Identity.code());
    }

    #[test]
    fn rejects_garbage_and_prefixes() {
        for bad in [
            "",
            "Qm",
            "ipfs://bafkqaaa",
            "/ipfs/bafkqaaa",
            "bafy!!",
            "zzzz",
        ] {
            assert!(
                matches!(parse_cid(bad), Err(CidError::Malformed { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(parse_cid(&"b".repeat(MAX_CID_STRING_LEN + 1)).is_err());
    }

    #[test]
    fn rejects_unsupported_codec_and_hash() {
        // git-raw codec (0x78) with sha2-256
        let mh = crate::digest(HashCode::Sha2_256, b"x");
        let cid = Cid::new_v1(0x78, mh);
        assert!(matches!(
            parse_cid(&cid.to_string()),
            Err(CidError::UnsupportedCodec { code: 0x78, .. })
        ));
        // md5 (0xd5) is not something we verify
        let mh = crate::Multihash::wrap(0xd5, &[0u8; 16]).unwrap();
        let cid = Cid::new_v1(0x55, mh);
        assert!(matches!(
            parse_cid(&cid.to_string()),
            Err(CidError::UnsupportedHash { code: 0xd5, .. })
        ));
        // sha2-256 with a truncated digest
        let mh = crate::Multihash::wrap(0x12, &[0u8; 20]).unwrap();
        let cid = Cid::new_v1(0x55, mh);
        assert!(matches!(
            parse_cid(&cid.to_string()),
            Err(CidError::BadDigestLength { len: 20, .. })
        ));
    }

    #[test]
    fn codec_names_round_trip() {
        for c in [
            Codec::DagPb,
            Codec::Raw,
            Codec::DagCbor,
            Codec::DagJson,
            Codec::Libp2pKey,
        ] {
            assert_eq!(Codec::from_name(c.name()), Some(c));
            assert_eq!(Codec::from_code(c.code()), Some(c));
        }
    }
}
