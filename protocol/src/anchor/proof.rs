//! The self-contained anchor proof (transaction, header, Merkle branches) and its offline check.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bitcoin::block::Header;
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::{Hash as _, HashEngine as _};
use bitcoin::{Block, BlockHash, Transaction, TxMerkleNode, Txid};
use cid::Cid;
use serde::{Deserialize, Serialize};

use super::{AnchorError, AnchorPayload, BatchPath, Network, anchor_cid};

/// Largest proof document accepted. A proof of a typical anchor takes about 1 KB; the limit leaves
/// room for anchor transactions that spend many inputs.
pub const MAX_PROOF_JSON_LEN: usize = 256 * 1024;

/// The only proof format version this code writes and reads.
const PROOF_VERSION: u32 = 1;
/// Deeper branches would need a block of more than 2³² transactions.
const MAX_BRANCH_LEN: usize = 32;
/// Most headers a header chain may hold (about 80 MB of headers, well past mainnet's height).
const MAX_CHAIN_HEADERS: usize = 1_000_000;

/// A self-contained proof that a CID was committed to Bitcoin, checked offline by
/// [`AnchorProof::verify`]. Its JSON form is specified in `docs/anchor-format.md`.
///
/// A value of this type is only data: nothing is known about it until it has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorProof {
    /// Network whose chain holds the block.
    pub network: Network,
    /// The CID proven, in the form the caller asked for (v0 or v1).
    pub cid: Cid,
    /// The CID's path in its batch; `None` when the payload holds the CID itself.
    pub batch: Option<BatchPath>,
    /// The anchor transaction. Its witness is not part of the proof (the txid does not cover it).
    pub tx: Transaction,
    /// The transaction's position in its block.
    pub tx_index: u32,
    /// Sibling hashes from the txid up to the block's Merkle root, leaf level first.
    pub tx_branch: Vec<TxMerkleNode>,
    /// Header of the block holding the transaction.
    pub header: Header,
    /// Height of that block. Verified only against a [`HeaderChain`].
    pub height: u32,
}

/// What a successful [`AnchorProof::verify`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAnchor {
    /// The CID committed.
    pub cid: Cid,
    /// Network of the block.
    pub network: Network,
    /// The anchor transaction.
    pub txid: Txid,
    /// The block holding it.
    pub block_hash: BlockHash,
    /// The block's height as the proof states it.
    pub height: u32,
    /// The block's timestamp (seconds since the Unix epoch).
    pub block_time: u32,
    /// Index and size of the batch, for batch anchors.
    pub batch: Option<(u32, u32)>,
    /// Whether the block was also found at `height` in a given header chain.
    pub in_header_chain: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofJson {
    version: u32,
    network: Network,
    cid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch: Option<BatchJson>,
    tx: String,
    tx_index: u32,
    tx_branch: String,
    header: String,
    height: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchJson {
    index: u32,
    path: String,
}

impl AnchorProof {
    /// Builds the proof for `cid` from the whole block holding its anchor transaction: finds the
    /// transaction and computes its Merkle branch.
    ///
    /// # Errors
    /// [`AnchorError::NoPayload`] when no transaction with `txid` is in `block`.
    pub fn from_block(
        network: Network,
        cid: Cid,
        batch: Option<BatchPath>,
        block: &Block,
        txid: Txid,
        height: u32,
    ) -> Result<Self, AnchorError> {
        let (tx_index, tx_branch) =
            block_tx_branch(block, txid).ok_or_else(|| AnchorError::NoPayload {
                txid: txid.to_string(),
            })?;
        Ok(Self {
            network,
            cid,
            batch,
            tx: block.txdata[tx_index as usize].clone(),
            tx_index,
            tx_branch,
            header: block.header,
            height,
        })
    }

    /// The proof as compact JSON.
    pub fn to_json(&self) -> String {
        let mut tx = self.tx.clone();
        for input in &mut tx.input {
            input.witness.clear();
        }
        let json = ProofJson {
            version: PROOF_VERSION,
            network: self.network,
            cid: self.cid.to_string(),
            batch: self.batch.as_ref().map(|path| BatchJson {
                index: path.index(),
                path: BASE64.encode(path.siblings_bytes()),
            }),
            tx: BASE64.encode(serialize(&tx)),
            tx_index: self.tx_index,
            tx_branch: BASE64.encode(
                self.tx_branch
                    .iter()
                    .flat_map(|h| h.to_byte_array())
                    .collect::<Vec<u8>>(),
            ),
            header: BASE64.encode(serialize(&self.header)),
            height: self.height,
        };
        // Serialising plain strings and integers cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Reads a proof from its JSON form, checking that every field decodes (not that the proof
    /// holds: see [`AnchorProof::verify`]).
    ///
    /// # Errors
    /// When the document is too large, is not proof JSON, has an unknown version, or a field
    /// does not decode.
    pub fn from_json(json: &[u8]) -> Result<Self, AnchorError> {
        if json.len() > MAX_PROOF_JSON_LEN {
            return Err(AnchorError::ProofTooLarge {
                len: json.len(),
                max: MAX_PROOF_JSON_LEN,
            });
        }
        // The version is read first so that a newer document gets a clear message rather than
        // an unknown-field error.
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let version: Version =
            serde_json::from_slice(json).map_err(|e| AnchorError::ProofJson {
                reason: e.to_string(),
            })?;
        if version.version != PROOF_VERSION {
            return Err(AnchorError::UnsupportedProofVersion {
                version: version.version,
            });
        }
        let wire: ProofJson = serde_json::from_slice(json).map_err(|e| AnchorError::ProofJson {
            reason: e.to_string(),
        })?;
        let cid = Cid::try_from(wire.cid.as_str()).map_err(|e| AnchorError::InvalidField {
            field: "cid",
            reason: e.to_string(),
        })?;
        let batch = match wire.batch {
            Some(b) => Some(BatchPath::from_parts(
                b.index,
                &decode_base64("batch.path", &b.path)?,
            )?),
            None => None,
        };
        let tx: Transaction = decode_consensus("tx", &wire.tx)?;
        let header: Header = decode_consensus("header", &wire.header)?;
        let branch = decode_base64("tx_branch", &wire.tx_branch)?;
        if !branch.len().is_multiple_of(32) || branch.len() / 32 > MAX_BRANCH_LEN {
            return Err(AnchorError::InvalidField {
                field: "tx_branch",
                reason: format!(
                    "{} bytes is not a sequence of at most {MAX_BRANCH_LEN} 32-byte hashes",
                    branch.len()
                ),
            });
        }
        let tx_branch = branch
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                TxMerkleNode::from_byte_array(h)
            })
            .collect();
        Ok(Self {
            network: wire.network,
            cid,
            batch,
            tx,
            tx_index: wire.tx_index,
            tx_branch,
            header,
            height: wire.height,
        })
    }

    /// Checks the proof with no network: the transaction's anchor payload commits the CID
    /// (directly, or through the batch path to the committed root), the Merkle branch links the
    /// txid to the header's Merkle root, and the header meets its own proof-of-work target,
    /// which must be no easier than the network allows. Given a `chain` of the same network,
    /// also checks that the block is in it at the stated height.
    ///
    /// # Errors
    /// The first check that fails, as [`AnchorError::NoPayload`], [`AnchorError::NotCommitted`],
    /// [`AnchorError::BranchMismatch`], [`AnchorError::InsufficientWork`] or
    /// [`AnchorError::NotInHeaderChain`].
    pub fn verify(&self, chain: Option<&HeaderChain>) -> Result<VerifiedAnchor, AnchorError> {
        let txid = self.tx.compute_txid();
        let not_committed = |reason| AnchorError::NotCommitted {
            cid: self.cid.to_string(),
            txid: txid.to_string(),
            reason,
        };
        // A 64-byte transaction could pass for an inner Merkle node (CVE-2017-12842).
        if self.tx.base_size() == 64 {
            return Err(not_committed(
                "a 64-byte transaction cannot be told from a Merkle node",
            ));
        }
        let payload = self
            .tx
            .output
            .iter()
            .find_map(|out| AnchorPayload::from_script(&out.script_pubkey))
            .ok_or_else(|| AnchorError::NoPayload {
                txid: txid.to_string(),
            })?;
        let batch = match (&payload, &self.batch) {
            (AnchorPayload::Cid(committed), None) => {
                if *committed != anchor_cid(&self.cid) {
                    return Err(not_committed("the payload holds a different CID"));
                }
                None
            }
            (AnchorPayload::Batch { root, size }, Some(path)) => {
                path.verify(&self.cid, root, *size).map_err(|e| match e {
                    AnchorError::BatchPathMismatch { reason, .. } => not_committed(reason),
                    _ => not_committed("the batch index is outside the committed batch"),
                })?;
                Some((path.index(), *size))
            }
            (AnchorPayload::Cid(_), Some(_)) => {
                return Err(not_committed(
                    "the proof has a batch path but the payload holds a single CID",
                ));
            }
            (AnchorPayload::Batch { .. }, None) => {
                return Err(not_committed(
                    "the payload commits a batch but the proof has no batch path",
                ));
            }
        };

        let block_hash = self.header.block_hash();
        if branch_root(txid, self.tx_index, &self.tx_branch) != Some(self.header.merkle_root) {
            return Err(AnchorError::BranchMismatch {
                txid: txid.to_string(),
                block_hash: block_hash.to_string(),
            });
        }
        check_pow(&self.header, self.network)?;

        let in_header_chain = match chain {
            None => false,
            Some(chain) => {
                if chain.network != self.network
                    || chain.block_hash_at(self.height) != Some(block_hash)
                {
                    return Err(AnchorError::NotInHeaderChain {
                        block_hash: block_hash.to_string(),
                        height: u64::from(self.height),
                    });
                }
                true
            }
        };
        Ok(VerifiedAnchor {
            cid: self.cid,
            network: self.network,
            txid,
            block_hash,
            height: self.height,
            block_time: self.header.time,
            batch,
            in_header_chain,
        })
    }
}

/// Consecutive block headers, each linked to the one before and meeting its own proof-of-work
/// target, against which [`AnchorProof::verify`] can place a proof's block.
#[derive(Debug, Clone)]
pub struct HeaderChain {
    network: Network,
    start_height: u32,
    hashes: Vec<BlockHash>,
}

impl HeaderChain {
    /// Reads headers given as hex (whitespace ignored), the first at `start_height` — the form
    /// Electrum's `blockchain.block.headers` and Bitcoin Core's `getblockheader HASH false`
    /// return.
    ///
    /// # Errors
    /// When the text is not hex of whole 80-byte headers, holds none or too many, or a header
    /// does not link to the one before or fails its proof of work.
    pub fn from_hex(network: Network, start_height: u32, text: &str) -> Result<Self, AnchorError> {
        let hex: String = text.split_whitespace().collect();
        let bytes = hex::decode(&hex).map_err(|e| AnchorError::BrokenHeaderChain {
            height: u64::from(start_height),
            reason: format!("not hex: {e}"),
        })?;
        if bytes.is_empty()
            || !bytes.len().is_multiple_of(80)
            || bytes.len() / 80 > MAX_CHAIN_HEADERS
        {
            return Err(AnchorError::BrokenHeaderChain {
                height: u64::from(start_height),
                reason: format!(
                    "{} bytes is not between 1 and {MAX_CHAIN_HEADERS} 80-byte headers",
                    bytes.len()
                ),
            });
        }
        let mut hashes: Vec<BlockHash> = Vec::with_capacity(bytes.len() / 80);
        for (i, raw) in bytes.chunks_exact(80).enumerate() {
            let height = u64::from(start_height) + i as u64;
            let header: Header = deserialize(raw).map_err(|e| AnchorError::BrokenHeaderChain {
                height,
                reason: e.to_string(),
            })?;
            if let Some(prev) = hashes.last()
                && header.prev_blockhash != *prev
            {
                return Err(AnchorError::BrokenHeaderChain {
                    height,
                    reason: format!(
                        "its previous block is {}, not {prev}",
                        header.prev_blockhash
                    ),
                });
            }
            check_pow(&header, network).map_err(|e| AnchorError::BrokenHeaderChain {
                height,
                reason: e.to_string(),
            })?;
            hashes.push(header.block_hash());
        }
        Ok(Self {
            network,
            start_height,
            hashes,
        })
    }

    /// Hash of the chain's block at `height`, if the chain covers it.
    pub fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        let offset = height.checked_sub(self.start_height)?;
        self.hashes.get(usize::try_from(offset).ok()?).copied()
    }
}

/// Position and Merkle branch of transaction `txid` in `block`, if the block holds it.
pub fn block_tx_branch(block: &Block, txid: Txid) -> Option<(u32, Vec<TxMerkleNode>)> {
    let txids: Vec<Txid> = block.txdata.iter().map(Transaction::compute_txid).collect();
    let index = txids.iter().position(|t| *t == txid)?;
    Some((u32::try_from(index).ok()?, merkle_branch(&txids, index)))
}

/// The sibling hashes from `txids[index]` up to the Merkle root of a block with these txids,
/// as Bitcoin builds the tree (an odd node is paired with itself).
fn merkle_branch(txids: &[Txid], index: usize) -> Vec<TxMerkleNode> {
    let mut level: Vec<TxMerkleNode> = txids
        .iter()
        .map(|t| TxMerkleNode::from_raw_hash(t.to_raw_hash()))
        .collect();
    let mut index = index;
    let mut branch = Vec::new();
    while level.len() > 1 {
        let sibling = (index ^ 1).min(level.len() - 1);
        branch.push(level[sibling]);
        level = level
            .chunks(2)
            .map(|pair| parent(pair[0], *pair.last().unwrap_or(&pair[0])))
            .collect();
        index /= 2;
    }
    branch
}

/// The Merkle root that `branch` leads to from `txid` at `index`; `None` when the index has
/// bits above the branch's depth (no such position).
fn branch_root(txid: Txid, index: u32, branch: &[TxMerkleNode]) -> Option<TxMerkleNode> {
    let mut node = TxMerkleNode::from_raw_hash(txid.to_raw_hash());
    let mut index = u64::from(index);
    for sibling in branch {
        node = if index & 1 == 0 {
            parent(node, *sibling)
        } else {
            parent(*sibling, node)
        };
        index >>= 1;
    }
    (index == 0).then_some(node)
}

fn parent(left: TxMerkleNode, right: TxMerkleNode) -> TxMerkleNode {
    let mut engine = TxMerkleNode::engine();
    engine.input(left.as_byte_array());
    engine.input(right.as_byte_array());
    TxMerkleNode::from_engine(engine)
}

fn check_pow(header: &Header, network: Network) -> Result<(), AnchorError> {
    let fail = |reason| AnchorError::InsufficientWork {
        block_hash: header.block_hash().to_string(),
        network: network.to_string(),
        reason,
    };
    let params = bitcoin::params::Params::new(network.to_bitcoin());
    if header.target() > params.max_attainable_target {
        return Err(fail(
            "its target is easier than the network's proof-of-work limit",
        ));
    }
    header
        .validate_pow(header.target())
        .map(|_| ())
        .map_err(|_| fail("its hash does not meet its own target"))
}

fn decode_base64(field: &'static str, text: &str) -> Result<Vec<u8>, AnchorError> {
    BASE64.decode(text).map_err(|e| AnchorError::InvalidField {
        field,
        reason: e.to_string(),
    })
}

fn decode_consensus<T: bitcoin::consensus::Decodable>(
    field: &'static str,
    text: &str,
) -> Result<T, AnchorError> {
    deserialize(&decode_base64(field, text)?).map_err(|e| AnchorError::InvalidField {
        field,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use bitcoin::absolute::LockTime;
    use bitcoin::block::Version;
    use bitcoin::transaction::{self, OutPoint, TxIn, TxOut};
    use bitcoin::{Amount, CompactTarget, ScriptBuf, Sequence, Witness};
    use proptest::prelude::*;

    use super::*;
    use crate::anchor::Batch;

    use crate::anchor::test_cid as cid;

    fn tx_with(script: ScriptBuf, salt: u32) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([salt as u8; 32]), salt),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::from_slice(&[[1u8; 72].as_slice(), [2u8; 33].as_slice()]),
            }],
            output: vec![
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: script,
                },
                TxOut {
                    value: Amount::from_sat(50_000),
                    script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(
                        [salt as u8; 20],
                    )),
                },
            ],
        }
    }

    /// A regtest block holding `others` filler transactions around the anchor transaction,
    /// mined to meet regtest's target.
    fn block_with(anchor: Transaction, others: u32) -> Block {
        let mut txdata: Vec<Transaction> = (0..others)
            .map(|i| tx_with(ScriptBuf::new_op_return([i as u8; 8]), i + 1))
            .collect();
        txdata.insert((others / 2) as usize, anchor);
        let mut block = Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: BlockHash::all_zeros(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: 1_700_000_000,
                bits: CompactTarget::from_consensus(0x207f_ffff),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().unwrap();
        while block.header.validate_pow(block.header.target()).is_err() {
            block.header.nonce += 1;
        }
        block
    }

    fn single_proof() -> AnchorProof {
        let payload = AnchorPayload::for_cid(&cid(7)).unwrap();
        let tx = tx_with(payload.script_pubkey(), 200);
        let txid = tx.compute_txid();
        let block = block_with(tx, 6);
        AnchorProof::from_block(Network::Regtest, cid(7), None, &block, txid, 101).unwrap()
    }

    fn batch_proof(size: u32, member: u32, others: u32) -> AnchorProof {
        let batch = Batch::new((0..size).map(cid)).unwrap();
        let tx = tx_with(batch.payload().script_pubkey(), 201);
        let txid = tx.compute_txid();
        let block = block_with(tx, others);
        let path = batch.path_of(&cid(member)).unwrap();
        AnchorProof::from_block(Network::Regtest, cid(member), Some(path), &block, txid, 102)
            .unwrap()
    }

    #[test]
    fn single_and_batch_proofs_verify_and_round_trip() {
        for proof in [
            single_proof(),
            batch_proof(1000, 617, 6),
            batch_proof(1, 0, 0),
        ] {
            let verified = proof.verify(None).unwrap();
            assert_eq!(verified.cid, proof.cid);
            assert!(!verified.in_header_chain);
            let json = proof.to_json();
            let back = AnchorProof::from_json(json.as_bytes()).unwrap();
            assert_eq!(back.verify(None).unwrap(), verified);
            assert_eq!(back.to_json(), json);
        }
    }

    #[test]
    fn the_branch_matches_rust_bitcoins_merkle_root() {
        for others in [0u32, 1, 2, 3, 4, 7, 12] {
            let block = block_with(tx_with(ScriptBuf::new(), 99), others);
            let txids: Vec<Txid> = block.txdata.iter().map(Transaction::compute_txid).collect();
            for (i, txid) in txids.iter().enumerate() {
                let branch = merkle_branch(&txids, i);
                assert_eq!(
                    branch_root(*txid, i as u32, &branch),
                    Some(block.header.merkle_root),
                    "{others} others, index {i}"
                );
            }
        }
    }

    #[test]
    fn one_of_a_thousand_stays_under_one_kilobyte() {
        // A block of 7 transactions; every doubling of the block adds one 32-byte hash
        // (about 43 characters) to the branch.
        let json = batch_proof(1000, 999, 6).to_json();
        assert!(json.len() < 1024, "{} bytes: {json}", json.len());
    }

    #[test]
    fn mismatches_are_rejected() {
        let proof = single_proof();
        let mut other_cid = proof.clone();
        other_cid.cid = cid(8);
        assert!(matches!(
            other_cid.verify(None),
            Err(AnchorError::NotCommitted { .. })
        ));

        let mut wrong_index = proof.clone();
        wrong_index.tx_index ^= 1;
        assert!(matches!(
            wrong_index.verify(None),
            Err(AnchorError::BranchMismatch { .. })
        ));

        let mut easy = proof.clone();
        easy.network = Network::Mainnet;
        assert!(matches!(
            easy.verify(None),
            Err(AnchorError::InsufficientWork { .. })
        ));

        // A header claiming mainnet's difficulty without the work behind it.
        let mut claimed = proof.clone();
        claimed.header.bits = CompactTarget::from_consensus(0x1703_4219);
        assert!(matches!(
            claimed.verify(None),
            Err(AnchorError::InsufficientWork { .. })
        ));

        let batch = batch_proof(10, 3, 2);
        let mut no_path = batch.clone();
        no_path.batch = None;
        assert!(matches!(
            no_path.verify(None),
            Err(AnchorError::NotCommitted { .. })
        ));
        let mut path_on_single = proof;
        path_on_single.batch = batch.batch.clone();
        assert!(matches!(
            path_on_single.verify(None),
            Err(AnchorError::NotCommitted { .. })
        ));
    }

    #[test]
    fn header_chain_places_the_block() {
        let proof = single_proof();
        let mut headers = Vec::new();
        let mut prev = BlockHash::all_zeros();
        // Heights 100..=102 with the proof's block at 101.
        for (i, time) in [1u32, 0, 2].into_iter().enumerate() {
            let mut header = if i == 1 {
                proof.header
            } else {
                let mut h = proof.header;
                h.time += time;
                h
            };
            header.prev_blockhash = prev;
            while header.validate_pow(header.target()).is_err() {
                header.nonce += 1;
            }
            prev = header.block_hash();
            headers.push(header);
        }
        // The proof's header changed (its prev hash), so prove against the chain's version.
        let mut placed = proof.clone();
        placed.header = headers[1];
        let hex: String = headers
            .iter()
            .map(|h| hex::encode(serialize(h)) + "\n")
            .collect();
        let chain = HeaderChain::from_hex(Network::Regtest, 100, &hex).unwrap();
        assert!(placed.verify(Some(&chain)).unwrap().in_header_chain);

        let mut elsewhere = placed.clone();
        elsewhere.height = 102;
        assert!(matches!(
            elsewhere.verify(Some(&chain)),
            Err(AnchorError::NotInHeaderChain { .. })
        ));
        // The proof's original header is not in the chain.
        assert!(proof.verify(Some(&chain)).is_err());

        let mut swapped = headers.clone();
        swapped.swap(0, 2);
        let hex: String = swapped.iter().map(|h| hex::encode(serialize(h))).collect();
        assert!(matches!(
            HeaderChain::from_hex(Network::Regtest, 100, &hex),
            Err(AnchorError::BrokenHeaderChain { height: 101, .. })
        ));
        assert!(HeaderChain::from_hex(Network::Mainnet, 100, &hex).is_err());
    }

    #[test]
    fn bad_documents_get_clear_errors() {
        assert!(matches!(
            AnchorProof::from_json(b"{}"),
            Err(AnchorError::ProofJson { .. })
        ));
        assert!(matches!(
            AnchorProof::from_json(br#"{"version":2}"#),
            Err(AnchorError::UnsupportedProofVersion { version: 2 })
        ));
        let json = single_proof().to_json();
        let bad_cid = json.replacen("\"cid\":\"b", "\"cid\":\"x", 1);
        assert!(matches!(
            AnchorProof::from_json(bad_cid.as_bytes()),
            Err(AnchorError::InvalidField { field: "cid", .. })
        ));
        let huge = vec![b' '; MAX_PROOF_JSON_LEN + 1];
        assert!(matches!(
            AnchorProof::from_json(&huge),
            Err(AnchorError::ProofTooLarge { .. })
        ));
    }

    /// Flips one bit in the bytes behind a base64 field of the proof's JSON.
    fn flip_field(json: &str, field: &str, bit: usize) -> Option<String> {
        let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
        let slot = match field {
            "batch.path" => value.get_mut("batch")?.get_mut("path")?,
            _ => value.get_mut(field)?,
        };
        let mut bytes = BASE64.decode(slot.as_str()?).ok()?;
        if bytes.is_empty() {
            return None;
        }
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        *slot = serde_json::Value::String(BASE64.encode(bytes));
        Some(value.to_string())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Regtest's target is met by about half of all hashes, so a header whose time or nonce
        /// was changed may still meet it; such tampering is caught by the header chain (and on
        /// mainnet by the proof of work itself). Every other field is checked on its own.
        #[test]
        fn any_flipped_bit_is_rejected(
            field in prop::sample::select(vec!["tx", "tx_branch", "header", "batch.path"]),
            bit in any::<usize>(),
        ) {
            let proof = batch_proof(100, 42, 5);
            let chain = HeaderChain::from_hex(
                Network::Regtest,
                proof.height,
                &hex::encode(serialize(&proof.header)),
            )
            .unwrap();
            prop_assert!(proof.verify(Some(&chain)).is_ok());
            let tampered = flip_field(&proof.to_json(), field, bit).unwrap();
            let result = AnchorProof::from_json(tampered.as_bytes()).and_then(|p| p.verify(Some(&chain)));
            prop_assert!(result.is_err(), "flipping bit {} of {} was accepted", bit, field);
            if field != "header" {
                let result = AnchorProof::from_json(tampered.as_bytes()).and_then(|p| p.verify(None));
                prop_assert!(result.is_err(), "flipping bit {} of {} was accepted without a chain", bit, field);
            }
        }

        #[test]
        fn a_flipped_merkle_root_bit_is_rejected_without_a_chain(bit in 0usize..256) {
            let mut proof = single_proof();
            let mut root = proof.header.merkle_root.to_byte_array();
            root[bit / 8] ^= 1 << (bit % 8);
            proof.header.merkle_root = TxMerkleNode::from_byte_array(root);
            prop_assert!(
                matches!(proof.verify(None), Err(AnchorError::BranchMismatch { .. })),
                "flipped merkle root bit {} was accepted", bit
            );
        }

        #[test]
        fn from_json_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = AnchorProof::from_json(&bytes);
        }
    }
}
