//! The compact digest of a set of entry ids: how many, and a fingerprint of them all.

use sha2::{Digest as _, Sha256};

use crate::mirror::EntryId;

/// Bytes of a fingerprint (Negentropy's).
pub const FINGERPRINT_SIZE: usize = negentropy::FINGERPRINT_SIZE;

/// What a node tells its peers of its set: equal digests mean equal sets (up to a 128-bit
/// fingerprint collision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    /// Ids in the set.
    pub count: u64,
    /// Negentropy's fingerprint of the whole set.
    pub fingerprint: [u8; FINGERPRINT_SIZE],
}

/// A set's digest kept up to date as ids are added: the sum of the ids as 256-bit
/// little-endian integers (modulo 2^256) and their count, which is what Negentropy fingerprints.
/// Adding an id costs O(1); the caller adds each id once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestAccumulator {
    /// Four 64-bit lanes, least significant first.
    sum: [u64; 4],
    count: u64,
}

impl DigestAccumulator {
    /// Adds `id` (which must not be in the set already).
    pub fn add(&mut self, id: &EntryId) {
        let mut carry = false;
        for (lane, chunk) in self.sum.iter_mut().zip(id.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            let (s, c1) = lane.overflowing_add(u64::from_le_bytes(bytes));
            let (s, c2) = s.overflowing_add(u64::from(carry));
            *lane = s;
            carry = c1 || c2;
        }
        self.count += 1;
    }

    /// Ids added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of the ids added: SHA-256 of the sum and the count (as Negentropy's varint),
    /// cut to [`FINGERPRINT_SIZE`] bytes.
    pub fn digest(&self) -> Digest {
        let mut hasher = Sha256::new();
        for lane in self.sum {
            hasher.update(lane.to_le_bytes());
        }
        hasher.update(negentropy_varint(self.count));
        let hash = hasher.finalize();
        let mut fingerprint = [0u8; FINGERPRINT_SIZE];
        fingerprint.copy_from_slice(&hash[..FINGERPRINT_SIZE]);
        Digest {
            count: self.count,
            fingerprint,
        }
    }
}

/// Negentropy's varint: 7-bit groups, most significant first, the high bit set on all but the
/// last.
fn negentropy_varint(mut n: u64) -> Vec<u8> {
    let mut out = vec![(n & 0x7f) as u8];
    n >>= 7;
    while n > 0 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use negentropy::NegentropyStorageBase;
    use proptest::prelude::*;

    use super::*;
    use crate::reconcile::Snapshot;

    #[test]
    fn varint_matches_negentropy_boundaries() {
        assert_eq!(negentropy_varint(0), vec![0]);
        assert_eq!(negentropy_varint(127), vec![0x7f]);
        assert_eq!(negentropy_varint(128), vec![0x81, 0x00]);
        assert_eq!(negentropy_varint(300), vec![0x82, 0x2c]);
    }

    #[test]
    fn carries_cross_lanes_and_wrap() {
        let mut a = DigestAccumulator::default();
        a.add(&[0xff; 32]);
        let mut one = [0u8; 32];
        one[0] = 1;
        a.add(&one);
        assert_eq!(a.sum, [0; 4]);
        assert_eq!(a.count(), 2);
    }

    proptest! {
        /// The incremental digest is Negentropy's fingerprint of the whole set, whatever the
        /// order the ids came in.
        #[test]
        fn digest_is_negentropys_fingerprint(ids in prop::collection::btree_set(any::<[u8; 32]>(), 0..200)) {
            let mut forward = DigestAccumulator::default();
            ids.iter().for_each(|id| forward.add(id));
            let mut backward = DigestAccumulator::default();
            ids.iter().rev().for_each(|id| backward.add(id));
            prop_assert_eq!(forward.digest(), backward.digest());

            let snapshot = Snapshot::new(ids.iter().copied().collect());
            let theirs = snapshot.fingerprint(0, ids.len()).unwrap();
            prop_assert_eq!(forward.digest().fingerprint, *theirs);
            prop_assert_eq!(forward.digest().count, ids.len() as u64);
        }
    }
}
