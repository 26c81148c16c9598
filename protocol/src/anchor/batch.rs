//! The batch Merkle tree: many CIDs under one 32-byte root, and each member's O(log n) path to it.

use std::collections::HashSet;

use cid::Cid;
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{InclusionProof, RootHash};
use merkle_sha2::Sha256;

use super::{AnchorError, AnchorPayload, anchor_cid};

/// Most CIDs one batch may commit. Keeps every [`BatchPath`] at 20 hashes or fewer, and the
/// tree of a batch being built at a few tens of megabytes.
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// Longest path a valid batch can have (⌈log₂ MAX_BATCH_SIZE⌉).
const MAX_PATH_LEN: usize = 20;

/// CIDs committed together under one Merkle root.
///
/// The tree is RFC 6962's Merkle Tree Hash over SHA-256: a leaf is `SHA-256(0x00 || CIDv1
/// bytes)`, a node `SHA-256(0x01 || left || right)`, and an unbalanced tree splits at the
/// largest power of two below its size (no duplicated nodes). Members are in insertion order,
/// each CID once, as its CIDv1 ([`anchor_cid`]).
#[derive(Debug)]
pub struct Batch {
    cids: Vec<Cid>,
    tree: MemoryBackedTree<Sha256, Vec<u8>>,
}

impl Batch {
    /// Builds the tree over `cids`; a CID given twice (in v0 or v1 form) is kept once, at its
    /// first place.
    ///
    /// # Errors
    /// [`AnchorError::EmptyBatch`] for no CIDs, [`AnchorError::BatchTooLarge`] for more than
    /// [`MAX_BATCH_SIZE`].
    pub fn new(cids: impl IntoIterator<Item = Cid>) -> Result<Self, AnchorError> {
        let mut seen = HashSet::new();
        let mut members = Vec::new();
        let mut tree = MemoryBackedTree::new();
        for cid in cids {
            let cid = anchor_cid(&cid);
            if !seen.insert(cid) {
                continue;
            }
            if members.len() == MAX_BATCH_SIZE {
                return Err(AnchorError::BatchTooLarge {
                    size: MAX_BATCH_SIZE + 1,
                    max: MAX_BATCH_SIZE,
                });
            }
            tree.push(cid.to_bytes());
            members.push(cid);
        }
        if members.is_empty() {
            return Err(AnchorError::EmptyBatch);
        }
        Ok(Self {
            cids: members,
            tree,
        })
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.cids.len()
    }

    /// Always false: a batch has at least one member.
    pub fn is_empty(&self) -> bool {
        self.cids.is_empty()
    }

    /// The members, as CIDv1, in tree order.
    pub fn cids(&self) -> &[Cid] {
        &self.cids
    }

    /// The Merkle root.
    pub fn root(&self) -> [u8; 32] {
        self.tree.root().as_bytes().0
    }

    /// The payload that commits this batch.
    pub fn payload(&self) -> AnchorPayload {
        AnchorPayload::Batch {
            root: self.root(),
            // new() keeps the size at or below MAX_BATCH_SIZE, which fits a u32.
            size: u32::try_from(self.len()).unwrap_or(u32::MAX),
        }
    }

    /// Position of `cid` (in v0 or v1 form) in the batch.
    pub fn index_of(&self, cid: &Cid) -> Option<usize> {
        let cid = anchor_cid(cid);
        self.cids.iter().position(|c| *c == cid)
    }

    /// The inclusion path of the member at `index`.
    ///
    /// # Errors
    /// [`AnchorError::IndexOutOfRange`] when there is no such member.
    pub fn path(&self, index: usize) -> Result<BatchPath, AnchorError> {
        if index >= self.len() {
            return Err(AnchorError::IndexOutOfRange {
                index: index as u64,
                size: self.len() as u64,
            });
        }
        let proof = self.tree.prove_inclusion(index);
        Ok(BatchPath {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            siblings: proof
                .as_bytes()
                .chunks_exact(32)
                .map(|c| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(c);
                    h
                })
                .collect(),
        })
    }

    /// The inclusion path of `cid`.
    ///
    /// # Errors
    /// [`AnchorError::NotInBatch`] when `cid` is not a member.
    pub fn path_of(&self, cid: &Cid) -> Result<BatchPath, AnchorError> {
        let index = self.index_of(cid).ok_or_else(|| AnchorError::NotInBatch {
            cid: cid.to_string(),
        })?;
        self.path(index)
    }
}

/// Where a CID sits in a batch: its index and the sibling hashes from its leaf up to the root
/// (RFC 6962 / RFC 9162 audit path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPath {
    index: u32,
    siblings: Vec<[u8; 32]>,
}

impl BatchPath {
    /// A path from its parts, as read from a proof.
    ///
    /// # Errors
    /// [`AnchorError::InvalidField`] when `siblings` is not a whole number of 32-byte hashes or
    /// longer than any batch allows.
    pub fn from_parts(index: u32, siblings: &[u8]) -> Result<Self, AnchorError> {
        if !siblings.len().is_multiple_of(32) || siblings.len() / 32 > MAX_PATH_LEN {
            return Err(AnchorError::InvalidField {
                field: "batch.path",
                reason: format!(
                    "{} bytes is not a sequence of at most {MAX_PATH_LEN} 32-byte hashes",
                    siblings.len()
                ),
            });
        }
        Ok(Self {
            index,
            siblings: siblings
                .chunks_exact(32)
                .map(|c| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(c);
                    h
                })
                .collect(),
        })
    }

    /// The member's index in the batch.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The sibling hashes, leaf level first.
    pub fn siblings(&self) -> &[[u8; 32]] {
        &self.siblings
    }

    /// The sibling hashes concatenated, as a proof stores them.
    pub fn siblings_bytes(&self) -> Vec<u8> {
        self.siblings.concat()
    }

    /// Checks that this path leads from `cid` to `root` in a batch of `size` members.
    ///
    /// # Errors
    /// [`AnchorError::IndexOutOfRange`] when the index is outside the batch, and
    /// [`AnchorError::BatchPathMismatch`] when the path has the wrong length for that position or
    /// the hashes do not lead to `root`.
    pub fn verify(&self, cid: &Cid, root: &[u8; 32], size: u32) -> Result<(), AnchorError> {
        if self.index >= size {
            return Err(AnchorError::IndexOutOfRange {
                index: u64::from(self.index),
                size: u64::from(size),
            });
        }
        let root_hash = RootHash::<Sha256>::new((*root).into(), u64::from(size));
        let proof = InclusionProof::<Sha256>::from_bytes(self.siblings_bytes());
        root_hash
            .verify_inclusion(&anchor_cid(cid).to_bytes(), u64::from(self.index), &proof)
            .map_err(|e| AnchorError::BatchPathMismatch {
                cid: cid.to_string(),
                reason: match e {
                    ct_merkle::InclusionVerifError::MalformedProof => {
                        "the batch path has the wrong length for its index and the batch size"
                    }
                    _ => "the batch path does not lead to the committed Merkle root",
                },
            })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    use crate::anchor::test_cid as cid;

    #[test]
    fn one_member_batch_root_is_its_leaf_hash() {
        let batch = Batch::new([cid(1)]).unwrap();
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(&cid(1).to_bytes());
        let expected: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&leaf).into();
        assert_eq!(batch.root(), expected);
        assert!(batch.path(0).unwrap().siblings().is_empty());
    }

    #[test]
    fn duplicates_are_kept_once() {
        let v0 = Cid::new_v0(*cid(1).hash()).unwrap();
        let batch = Batch::new([cid(1), cid(2), Cid::new_v1(0x70, *cid(1).hash()), v0]).unwrap();
        // cid(1) and v0 differ in codec (raw vs dag-pb), so only the exact dag-pb twin is dropped.
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.index_of(&v0), Some(2));
    }

    #[test]
    fn empty_batches_are_rejected() {
        assert_eq!(Batch::new([]).unwrap_err(), AnchorError::EmptyBatch);
    }

    #[test]
    fn path_of_one_in_a_thousand_is_ten_hashes() {
        let batch = Batch::new((0..1000).map(cid)).unwrap();
        let path = batch.path_of(&cid(617)).unwrap();
        assert_eq!(path.siblings().len(), 10);
        path.verify(&cid(617), &batch.root(), 1000).unwrap();
    }

    #[test]
    fn wrong_size_or_index_is_rejected() {
        let batch = Batch::new((0..5).map(cid)).unwrap();
        let path = batch.path(4).unwrap();
        assert!(path.verify(&cid(4), &batch.root(), 5).is_ok());
        assert!(path.verify(&cid(4), &batch.root(), 6).is_err());
        assert!(path.verify(&cid(3), &batch.root(), 5).is_err());
        assert!(path.verify(&cid(4), &batch.root(), 4).is_err());
        let moved = BatchPath::from_parts(3, &path.siblings_bytes()).unwrap();
        assert!(moved.verify(&cid(4), &batch.root(), 5).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_member_verifies_and_every_flipped_bit_fails(
            size in 1u32..300,
            pick in any::<prop::sample::Index>(),
            bit in any::<prop::sample::Index>(),
        ) {
            let batch = Batch::new((0..size).map(cid)).unwrap();
            let index = pick.index(size as usize);
            let member = batch.cids()[index];
            let path = batch.path(index).unwrap();
            let root = batch.root();
            prop_assert!(path.verify(&member, &root, size).is_ok());
            let decoded = BatchPath::from_parts(path.index(), &path.siblings_bytes()).unwrap();
            prop_assert_eq!(&decoded, &path);

            let mut bytes = path.siblings_bytes();
            if !bytes.is_empty() {
                let b = bit.index(bytes.len() * 8);
                bytes[b / 8] ^= 1 << (b % 8);
                let tampered = BatchPath::from_parts(path.index(), &bytes).unwrap();
                prop_assert!(tampered.verify(&member, &root, size).is_err());
            }
            let mut bad_root = root;
            bad_root[bit.index(32)] ^= 1;
            prop_assert!(path.verify(&member, &bad_root, size).is_err());
        }

        #[test]
        fn path_bytes_decode_without_panic(index in any::<u32>(), bytes in prop::collection::vec(any::<u8>(), 0..700)) {
            if let Ok(path) = BatchPath::from_parts(index, &bytes) {
                prop_assert_eq!(path.siblings_bytes(), bytes);
            }
        }
    }
}
