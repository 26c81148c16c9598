//! A manifest: the list of uploads an instance mirrors, newest first, signed by the instance's
//! key and stored as one dag-cbor block, so that any IPFS tool reads it with `dag get` and any
//! node can check who wrote it. It travels by CID (announced with type
//! [`super::MANIFEST_TYPE`]), never as a pubsub message.
//!
//! The block is a map `{"v": 1, "publisher": <peer id bytes>, "seq": n, "time": unix seconds,
//! "entries": [...], "key": <protobuf public key>, "sig": <signature>}`. The signature covers
//! [`SIGNING_DOMAIN`] followed by the dag-cbor encoding of the same map without `key` and `sig`;
//! the key must hash to the publisher's peer id. Entries name their original publisher, which
//! may be another instance: the manifest's signer vouches that it mirrors them.
//!
//! Stego uploads are entries too, with their payload beside the image (see `entry.rs`); they
//! count against the same entry limit. A manifest without them is byte for byte what nodes
//! before them wrote; one with them is refused by those nodes' signature check (they re-encode
//! the entries without the payload), so they read nothing from it rather than something wrong.

use libp2p_identity::{Keypair, PeerId, PublicKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::entry::Entry;
use crate::limits::{MAX_MANIFEST_ENTRIES, MAX_MANIFEST_SIZE};
use crate::{Block, Codec, HashCode, Version};

/// Prefixed to what is signed, so a manifest signature cannot be taken for any other.
pub const SIGNING_DOMAIN: &[u8] = b"stargate-manifest:";

/// The format version this code writes and reads.
const FORMAT_VERSION: u64 = 1;

/// What an instance mirrors, as it says itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The instance that wrote and signed it.
    pub publisher: PeerId,
    /// Grows with every manifest the publisher writes: a newer one replaces an older one.
    pub seq: u64,
    /// When it was written (Unix seconds).
    pub time: u64,
    /// The uploads, newest first.
    pub entries: Vec<Entry>,
}

/// Why a manifest was refused. [`ManifestError::reason`] is its metric label.
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("manifest of {0} bytes is over the limit of {MAX_MANIFEST_SIZE}")]
    TooLarge(usize),
    #[error("manifest is not a valid manifest block: {0}")]
    Malformed(String),
    #[error("manifest format version {0} is not one this node reads")]
    UnknownVersion(u64),
    #[error("manifest lists {count} entries, over the limit of {limit}")]
    TooManyEntries { count: usize, limit: usize },
    #[error("manifest is not signed")]
    Unsigned,
    #[error("manifest key is not a public key this node can check")]
    BadKey,
    #[error("manifest key belongs to {key_owner}, not to the publisher {publisher} it names")]
    WrongPublisher {
        key_owner: PeerId,
        publisher: String,
    },
    #[error("manifest signature does not verify")]
    BadSignature,
    #[error("the node's key could not sign the manifest: {0}")]
    Signing(String),
}

impl ManifestError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Malformed(_) => "malformed",
            Self::UnknownVersion(_) => "unknown_version",
            Self::TooManyEntries { .. } => "too_many_entries",
            Self::Unsigned => "unsigned",
            Self::BadKey => "bad_key",
            Self::WrongPublisher { .. } => "wrong_publisher",
            Self::BadSignature => "bad_signature",
            Self::Signing(_) => "signing",
        }
    }
}

/// What the signature covers.
#[derive(Serialize)]
struct Unsigned<'a> {
    v: u64,
    #[serde(with = "serde_bytes")]
    publisher: &'a [u8],
    seq: u64,
    time: u64,
    entries: &'a [Entry],
}

/// The block as written.
#[derive(Serialize)]
struct Signed<'a> {
    v: u64,
    #[serde(with = "serde_bytes")]
    publisher: &'a [u8],
    seq: u64,
    time: u64,
    entries: &'a [Entry],
    #[serde(with = "serde_bytes")]
    key: &'a [u8],
    #[serde(with = "serde_bytes")]
    sig: &'a [u8],
}

/// The block as read. Entries are decoded (and each checked) only once the count is known to be
/// within the limit.
#[derive(Deserialize)]
struct Received {
    v: u64,
    #[serde(with = "serde_bytes")]
    publisher: Vec<u8>,
    seq: u64,
    time: u64,
    entries: Vec<ipld_core::ipld::Ipld>,
    #[serde(default, with = "serde_bytes")]
    key: Option<Vec<u8>>,
    #[serde(default, with = "serde_bytes")]
    sig: Option<Vec<u8>>,
}

impl Manifest {
    /// The signed block (CIDv1, dag-cbor, sha2-256) that holds this manifest.
    pub fn sign(&self, key: &Keypair) -> Result<Block, ManifestError> {
        let publisher = self.publisher.to_bytes();
        let signed_bytes = self.signed_bytes(&publisher)?;
        let sig = key
            .sign(&signed_bytes)
            .map_err(|e| ManifestError::Signing(e.to_string()))?;
        let key = key.public().encode_protobuf();
        let block = serde_ipld_dagcbor::to_vec(&Signed {
            v: FORMAT_VERSION,
            publisher: &publisher,
            seq: self.seq,
            time: self.time,
            entries: &self.entries,
            key: &key,
            sig: &sig,
        })
        .map_err(|e| ManifestError::Signing(e.to_string()))?;
        if block.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge(block.len()));
        }
        Block::encode(Version::V1, Codec::DagCbor, HashCode::Sha2_256, block)
            .map_err(|e| ManifestError::Signing(e.to_string()))
    }

    /// Reads a manifest block from another instance and checks it: size, shape, at most
    /// `max_entries` entries (and never more than [`MAX_MANIFEST_ENTRIES`]), every entry, the
    /// key against the publisher and the signature.
    pub fn decode_verified(block: &[u8], max_entries: usize) -> Result<Self, ManifestError> {
        if block.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge(block.len()));
        }
        let received: Received = serde_ipld_dagcbor::from_slice(block)
            .map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if received.v != FORMAT_VERSION {
            return Err(ManifestError::UnknownVersion(received.v));
        }
        let limit = max_entries.min(MAX_MANIFEST_ENTRIES);
        if received.entries.len() > limit {
            return Err(ManifestError::TooManyEntries {
                count: received.entries.len(),
                limit,
            });
        }
        let (Some(key), Some(sig)) = (received.key, received.sig) else {
            return Err(ManifestError::Unsigned);
        };
        let key = PublicKey::try_decode_protobuf(&key).map_err(|_| ManifestError::BadKey)?;
        let key_owner = key.to_peer_id();
        if key_owner.to_bytes() != received.publisher {
            return Err(ManifestError::WrongPublisher {
                key_owner,
                publisher: PeerId::from_bytes(&received.publisher)
                    .map_or_else(|_| hex::encode(&received.publisher), |p| p.to_string()),
            });
        }
        let entries = received
            .entries
            .into_iter()
            .map(|entry| {
                ipld_core::serde::from_ipld::<Entry>(entry)
                    .map_err(|e| ManifestError::Malformed(format!("entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let manifest = Self {
            publisher: key_owner,
            seq: received.seq,
            time: received.time,
            entries,
        };
        if !key.verify(&manifest.signed_bytes(&received.publisher)?, &sig) {
            return Err(ManifestError::BadSignature);
        }
        Ok(manifest)
    }

    fn signed_bytes(&self, publisher: &[u8]) -> Result<Vec<u8>, ManifestError> {
        let mut bytes = SIGNING_DOMAIN.to_vec();
        serde_ipld_dagcbor::to_writer(
            &mut bytes,
            &Unsigned {
                v: FORMAT_VERSION,
                publisher,
                seq: self.seq,
                time: self.time,
                entries: &self.entries,
            },
        )
        .map_err(|e| ManifestError::Malformed(e.to_string()))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::tests::{entry, peer};
    use super::*;

    fn key(seed: u8) -> Keypair {
        Keypair::ed25519_from_bytes([seed; 32]).unwrap()
    }

    fn manifest(key: &Keypair, entries: u32) -> Manifest {
        Manifest {
            publisher: key.public().to_peer_id(),
            seq: 3,
            time: 1_700_000_100,
            entries: (0..entries).rev().map(|n| entry(n, peer(9))).collect(),
        }
    }

    #[test]
    fn a_signed_manifest_reads_back_whole() {
        let key = key(1);
        let m = manifest(&key, 20);
        let block = m.sign(&key).unwrap();
        assert_eq!(block.codec(), Some(Codec::DagCbor));
        assert_eq!(Manifest::decode_verified(block.data(), 2000).unwrap(), m);
    }

    #[test]
    fn signs_with_rsa_keys_too() {
        // Kubo's default identity is RSA; a node may carry one over.
        let der = include_bytes!("../../tests/data/rsa-2048.pk8");
        let mut der = der.to_vec();
        let key = Keypair::rsa_from_pkcs8(&mut der).unwrap();
        let m = manifest(&key, 3);
        let block = m.sign(&key).unwrap();
        assert_eq!(Manifest::decode_verified(block.data(), 2000).unwrap(), m);
    }

    #[test]
    fn stego_entries_are_listed_signed_and_counted_with_the_others() {
        use super::super::entry::tests::stego_entry;
        let key = key(1);
        let mut m = manifest(&key, 3);
        m.entries.insert(0, stego_entry(9, peer(4)));
        let block = m.sign(&key).unwrap();
        let read = Manifest::decode_verified(block.data(), 2000).unwrap();
        assert_eq!(read, m);
        assert!(read.entries[0].payload.is_some());
        let err = Manifest::decode_verified(block.data(), 3).unwrap_err();
        assert_eq!(err.reason(), "too_many_entries");
    }

    #[test]
    fn a_full_manifest_of_the_guides_size_fits_in_a_block() {
        let key = key(1);
        let block = manifest(&key, 2000).sign(&key).unwrap();
        assert!(
            block.data().len() < MAX_MANIFEST_SIZE / 2,
            "{}",
            block.data().len()
        );
    }

    #[test]
    fn refuses_too_many_entries_before_reading_them() {
        let key = key(1);
        let block = manifest(&key, 11).sign(&key).unwrap();
        let err = Manifest::decode_verified(block.data(), 10).unwrap_err();
        assert_eq!(err.reason(), "too_many_entries");
    }

    #[test]
    fn refuses_a_changed_manifest_another_publishers_name_and_no_signature() {
        let key1 = key(1);
        let m = manifest(&key1, 2);

        let mut changed = m.clone();
        changed.seq = 4;
        let publisher = m.publisher.to_bytes();
        let forged = serde_ipld_dagcbor::to_vec(&Signed {
            v: FORMAT_VERSION,
            publisher: &publisher,
            seq: changed.seq,
            time: m.time,
            entries: &m.entries,
            key: &key1.public().encode_protobuf(),
            sig: &key1.sign(&m.signed_bytes(&publisher).unwrap()).unwrap(),
        })
        .unwrap();
        assert_eq!(
            Manifest::decode_verified(&forged, 10).unwrap_err().reason(),
            "bad_signature"
        );

        // Signed by key 2 while naming key 1's peer as publisher.
        let key2 = key(2);
        let claimed = serde_ipld_dagcbor::to_vec(&Signed {
            v: FORMAT_VERSION,
            publisher: &publisher,
            seq: m.seq,
            time: m.time,
            entries: &m.entries,
            key: &key2.public().encode_protobuf(),
            sig: &key2.sign(&m.signed_bytes(&publisher).unwrap()).unwrap(),
        })
        .unwrap();
        assert_eq!(
            Manifest::decode_verified(&claimed, 10)
                .unwrap_err()
                .reason(),
            "wrong_publisher"
        );

        let unsigned = serde_ipld_dagcbor::to_vec(&Unsigned {
            v: FORMAT_VERSION,
            publisher: &publisher,
            seq: m.seq,
            time: m.time,
            entries: &m.entries,
        })
        .unwrap();
        assert_eq!(
            Manifest::decode_verified(&unsigned, 10)
                .unwrap_err()
                .reason(),
            "unsigned"
        );

        assert_eq!(
            Manifest::decode_verified(b"\xa1", 10).unwrap_err().reason(),
            "malformed"
        );
    }
}
