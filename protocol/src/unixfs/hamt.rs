//! The hash both the importer and the exporter place HAMT entries by.

/// The multihash code UnixFS records for murmur3-x64-64, the only HAMT hash in use.
pub(crate) const MURMUR3_X64_64: u64 = 0x22;

/// The murmur3-x64-64 hash of a name as boxo and the JS importer use it: the first 64-bit word
/// of murmur3-x64-128 (seed 0), which Go's `murmur3.Sum64` returns. Buckets take its bits most
/// significant first.
pub(crate) fn hash_name(name: &[u8]) -> u64 {
    let mut reader = name;
    // Reading from a slice cannot fail; the crate's API is over `Read`.
    let h = murmur3::murmur3_x64_128(&mut reader, 0).unwrap_or_default();
    // The crate returns h2 in the high half and h1 in the low half.
    h as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_x64_64_reference_values() {
        // The first half of MurmurHash3_x64_128("hello", seed 0), as Python's mmh3.hash64, Go's
        // murmur3.Sum64 and the canonical C implementation (smhasher) give it; of "" it is 0.
        assert_eq!(hash_name(b"hello"), 0xcbd8_a7b3_41bd_9b02);
        assert_eq!(hash_name(b""), 0);
    }
}
