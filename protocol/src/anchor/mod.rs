//! Bitcoin anchors: the 40-byte OP_RETURN payload that commits CIDs, the batch Merkle tree that
//! lets one payload commit many CIDs, and the self-contained proof that a CID was committed,
//! checked offline.
//!
//! The formats are a decision record in `docs/anchor-format.md`, with test vectors that the unit
//! tests check. In short:
//!
//! - [`AnchorPayload`]: a 4-byte tag (`SGC\x01` for one CID, `SGB\x01` for a batch) followed by 36
//!   bytes — one CIDv1 in binary form, or a batch's Merkle root and its number of members.
//! - [`Batch`]: an RFC 6962 Merkle tree (SHA-256, `0x00` leaf and `0x01` node prefixes) over the
//!   members' CIDv1 bytes; each member has a [`BatchPath`] of at most ⌈log₂ n⌉ hashes.
//! - [`AnchorProof`]: a JSON document holding the CID, its batch path, the transaction, the block
//!   header, the transaction's Merkle branch, the height and the network. [`AnchorProof::verify`]
//!   checks it with no network; an optional [`HeaderChain`] also shows the block is in a chain.
//!
//! Nothing here touches the network or a database; the `chain` crate builds, broadcasts and
//! watches the transactions.

mod batch;
mod error;
mod network;
mod payload;
mod proof;

pub use batch::{Batch, BatchPath, MAX_BATCH_SIZE};
pub use error::AnchorError;
pub use network::Network;
pub use payload::{AnchorPayload, PAYLOAD_LEN, TAG_BATCH_V1, TAG_CID_V1, TAG_LEN, anchor_cid};
pub use proof::{AnchorProof, HeaderChain, MAX_PROOF_JSON_LEN, VerifiedAnchor, block_tx_branch};

/// A CIDv1 (raw, sha2-256) that differs for every `n`, for tests.
#[cfg(test)]
pub(crate) fn test_cid(n: u32) -> cid::Cid {
    use sha2::Digest as _;
    let digest: [u8; 32] = sha2::Sha256::digest(n.to_be_bytes()).into();
    cid::Cid::new_v1(
        0x55,
        cid::multihash::Multihash::wrap(0x12, &digest).unwrap_or_default(),
    )
}
