//! Hashing. sha2-256 dominates every add and every verified transfer, so it goes through ring's
//! assembly (the CPUs we target often lack SHA extensions; the portable code is markedly slower).

use multihash_codetable::MultihashDigest;

use crate::HashCode;

/// The multihash type used throughout (64-byte digest capacity covers sha2-512 and blake3).
pub type Multihash = multihash::Multihash<64>;

/// The sha2-256 digest of `data`.
pub fn sha2_256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The multihash of `data` under `code`. For [`HashCode::Identity`] the caller must keep `data`
/// within [`crate::limits::MAX_IDENTITY_DIGEST`]; longer input yields an empty identity digest
/// that no CID will match.
pub fn digest(code: HashCode, data: &[u8]) -> Multihash {
    let wrap = |digest: &[u8]| {
        Multihash::wrap(code.code(), digest).unwrap_or_else(|_| Multihash::default())
    };
    match code {
        HashCode::Identity => wrap(data),
        HashCode::Sha2_256 => wrap(&sha2_256(data)),
        HashCode::Sha2_512 => wrap(ring::digest::digest(&ring::digest::SHA512, data).as_ref()),
        HashCode::Blake3 => multihash_codetable::Code::Blake3_256.digest(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha2_256_matches_reference_vector() {
        assert_eq!(
            hex::encode(sha2_256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn digests_agree_with_codetable() {
        let data = b"stargate";
        for (code, table) in [
            (HashCode::Sha2_256, multihash_codetable::Code::Sha2_256),
            (HashCode::Sha2_512, multihash_codetable::Code::Sha2_512),
            (HashCode::Blake3, multihash_codetable::Code::Blake3_256),
        ] {
            assert_eq!(digest(code, data), table.digest(data));
        }
    }
}
