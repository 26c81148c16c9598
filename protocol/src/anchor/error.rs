//! Why an anchor payload, batch or proof was rejected.

use thiserror::Error;

/// Why an anchor payload, batch or proof was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnchorError {
    /// The CID's CIDv1 form does not fit a single-CID payload.
    #[error(
        "CID {cid} is {len} bytes as CIDv1 binary; a single-CID anchor holds exactly 36 (a sha2-256 CID with a one-byte codec), so anchor it in a batch"
    )]
    CidDoesNotFit {
        /// The CID, as text.
        cid: String,
        /// Its CIDv1 binary length.
        len: usize,
    },
    /// An OP_RETURN payload that is not 40 bytes.
    #[error("an anchor payload is exactly 40 bytes, this one is {len}")]
    PayloadLength {
        /// The length found.
        len: usize,
    },
    /// A payload whose 4-byte tag is not one this version knows.
    #[error("unknown anchor tag {tag:02x?}: not a Stargate anchor, or a newer format version")]
    UnknownTag {
        /// The tag found.
        tag: [u8; 4],
    },
    /// A single-CID payload whose 36 bytes are not a CIDv1.
    #[error("the payload's 36 bytes are not a CIDv1: {reason}")]
    InvalidPayloadCid {
        /// What is wrong with them.
        reason: String,
    },
    /// A batch with no members.
    #[error("a batch needs at least one CID")]
    EmptyBatch,
    /// A batch larger than the format allows.
    #[error("a batch holds at most {max} CIDs, this one has {size}")]
    BatchTooLarge {
        /// Its size.
        size: usize,
        /// The limit, [`crate::anchor::MAX_BATCH_SIZE`].
        max: usize,
    },
    /// A batch member index outside the batch.
    #[error("index {index} is outside a batch of {size} CIDs")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The batch size.
        size: u64,
    },
    /// A CID that is not among a batch's members.
    #[error("CID {cid} is not in this batch")]
    NotInBatch {
        /// The CID, as text.
        cid: String,
    },
    /// A batch path that does not lead from a CID to a batch root.
    #[error("CID {cid} is not committed by this batch root: {reason}")]
    BatchPathMismatch {
        /// The CID, as text.
        cid: String,
        /// Which check failed.
        reason: &'static str,
    },
    /// A proof document larger than any valid proof.
    #[error(
        "the proof is {len} bytes, more than the {max} a proof may take; this is not a Stargate anchor proof"
    )]
    ProofTooLarge {
        /// Its length.
        len: usize,
        /// The limit, [`crate::anchor::MAX_PROOF_JSON_LEN`].
        max: usize,
    },
    /// A proof document that is not the expected JSON.
    #[error("the proof is not valid anchor proof JSON: {reason}")]
    ProofJson {
        /// The parser's message.
        reason: String,
    },
    /// A proof written by a newer format version.
    #[error(
        "proof format version {version} is not supported (this verifier knows version 1); upgrade stargate"
    )]
    UnsupportedProofVersion {
        /// The version found.
        version: u32,
    },
    /// A proof field that does not decode.
    #[error("the proof's `{field}` is invalid: {reason}")]
    InvalidField {
        /// The JSON field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A transaction with no Stargate anchor output.
    #[error("transaction {txid} has no OP_RETURN output carrying a Stargate anchor payload")]
    NoPayload {
        /// The transaction id.
        txid: String,
    },
    /// A payload that does not commit the proof's CID.
    #[error("transaction {txid}'s anchor payload does not commit CID {cid}: {reason}")]
    NotCommitted {
        /// The CID, as text.
        cid: String,
        /// The transaction id.
        txid: String,
        /// Which check failed.
        reason: &'static str,
    },
    /// A Merkle branch that does not lead from the transaction to the header's Merkle root.
    #[error(
        "the Merkle branch does not link transaction {txid} to the Merkle root of block {block_hash}"
    )]
    BranchMismatch {
        /// The transaction id.
        txid: String,
        /// The block hash.
        block_hash: String,
    },
    /// A header whose hash does not meet its own proof-of-work target, or whose target is easier
    /// than the network allows.
    #[error("block header {block_hash} fails proof of work for {network}: {reason}")]
    InsufficientWork {
        /// The block hash.
        block_hash: String,
        /// The network it claims.
        network: String,
        /// Which check failed.
        reason: &'static str,
    },
    /// A header chain whose headers do not link up.
    #[error("the header chain breaks at height {height}: {reason}")]
    BrokenHeaderChain {
        /// The first height that does not follow on.
        height: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A block that is not in the given header chain.
    #[error("block {block_hash} at height {height} is not in the given header chain")]
    NotInHeaderChain {
        /// The block hash.
        block_hash: String,
        /// The height the proof claims.
        height: u64,
    },
    /// A network name that is not one of mainnet, testnet, testnet4, signet, regtest.
    #[error("unknown Bitcoin network {name:?}: use mainnet, testnet, testnet4, signet or regtest")]
    UnknownNetwork {
        /// The name given.
        name: String,
    },
}
