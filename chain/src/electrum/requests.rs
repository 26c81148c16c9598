//! The Electrum requests a sync makes, their decoded answers, and the [`Pacer`] that sends
//! them in pipelined batches sized to the server's pace.
//!
//! electrum-client's calls run on one thread: its reader hand-over between threads can leave a
//! batch waiting forever, so requests that do not depend on each other share a batch instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::consensus::encode::{deserialize, deserialize_hex};
use bitcoin::hashes::Hash as _;
use bitcoin::{ScriptBuf, Transaction, TxMerkleNode, Txid};
use electrum_client::{
    Batch, Client, ElectrumApi, Error, GetHistoryRes, GetMerkleRes, HeaderNotification, Param,
    RawHeaderNotification,
};
use serde_json::Value;

use crate::backend::{ProofParts, Tip};

/// Requests per pipelined batch, at most and at least. A server counts its per-request timeout
/// (e-x: 30 s) from when a request arrives, and past its soft cost limit it delays each one (up
/// to 2.5 s) with fewer at once; so the size halves after a slow batch and doubles back after
/// a quick one. A fresh session's first thousand requests (about what 500 transactions with
/// their proofs cost) stay near e-x's soft limit.
const MAX_BATCH: usize = 1200;
const MIN_BATCH: usize = 25;
/// A batch slower than this halves the next one; one quicker than [`QUICK_BATCH`] doubles it.
const SLOW_BATCH: Duration = Duration::from_secs(8);
const QUICK_BATCH: Duration = Duration::from_secs(3);

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// `blockchain.headers.subscribe`: the tip, and a notification at each new one.
    Tip,
    History(ScriptBuf),
    Tx(Txid),
    Proof(Txid, u32),
    /// `blockchain.block.headers` from a height, for a count.
    Headers(u32, u32),
}

/// A request's decoded answer.
#[derive(Debug)]
pub(crate) enum Answer {
    Tip(Tip),
    History(Vec<GetHistoryRes>),
    Tx(Arc<Transaction>),
    Proof(GetMerkleRes),
    /// Headers from a height on.
    Headers(u32, Vec<Header>),
}

impl Request {
    fn add_to(&self, batch: &mut Batch) {
        match self {
            Self::Tip => batch.raw("blockchain.headers.subscribe".to_owned(), Vec::new()),
            Self::History(spk) => batch.script_get_history(spk),
            Self::Tx(txid) => batch.transaction_get(txid),
            Self::Proof(txid, height) => batch.transaction_get_merkle(&(*txid, *height as usize)),
            Self::Headers(start, count) => batch.raw(
                "blockchain.block.headers".to_owned(),
                vec![Param::U32(*start), Param::U32(*count)],
            ),
        }
    }

    fn decode(&self, answer: Value) -> Result<Answer, Error> {
        Ok(match self {
            Self::Tip => {
                let raw: RawHeaderNotification = serde_json::from_value(answer)?;
                Answer::Tip(tip_of(&raw.try_into()?))
            }
            Self::History(_) => Answer::History(serde_json::from_value(answer)?),
            Self::Tx(txid) => Answer::Tx(transaction(*txid, answer)?),
            Self::Proof(..) => Answer::Proof(serde_json::from_value(answer)?),
            Self::Headers(start, _) => Answer::Headers(*start, header_range(answer)?),
        })
    }
}

/// The tip a header notification announces.
pub(crate) fn tip_of(notification: &HeaderNotification) -> Tip {
    Tip {
        height: u32::try_from(notification.height).unwrap_or(u32::MAX),
        hash: notification.header.block_hash(),
    }
}

/// A transaction's place in its block, from its Merkle proof and the block's header.
pub(crate) fn proof_parts(proof: GetMerkleRes, header: Header) -> ProofParts {
    ProofParts {
        header,
        tx_index: u32::try_from(proof.pos).unwrap_or(u32::MAX),
        // Electrum sends hashes in display (reversed) byte order.
        branch: proof
            .merkle
            .into_iter()
            .map(|mut h| {
                h.reverse();
                TxMerkleNode::from_byte_array(h)
            })
            .collect(),
    }
}

/// Sizes the pipelined batches to the server's pace.
#[derive(Debug)]
pub(crate) struct Pacer {
    size: usize,
}

impl Default for Pacer {
    fn default() -> Self {
        Self { size: MAX_BATCH }
    }
}

impl Pacer {
    /// Sends `requests` in successive batches and returns their answers in order; `progress`
    /// hears how many are in after each batch.
    ///
    /// # Errors
    /// When the connection fails, the server answers one request with an error, or an answer
    /// does not decode.
    pub(crate) fn call(
        &mut self,
        client: &Client,
        requests: &[Request],
        mut progress: impl FnMut(u64),
    ) -> Result<Vec<Answer>, Error> {
        let mut answers = Vec::with_capacity(requests.len());
        let mut rest = requests;
        while !rest.is_empty() {
            let (chunk, later) = rest.split_at(self.size.min(rest.len()));
            let mut batch = Batch::default();
            for request in chunk {
                request.add_to(&mut batch);
            }
            let started = Instant::now();
            let got = client.batch_call(&batch)?;
            self.paced(started.elapsed());
            if got.len() != chunk.len() {
                return Err(Error::Message(format!(
                    "{} answers to a batch of {} requests",
                    got.len(),
                    chunk.len()
                )));
            }
            for (request, answer) in chunk.iter().zip(got) {
                answers.push(request.decode(answer)?);
            }
            progress(answers.len() as u64);
            rest = later;
        }
        Ok(answers)
    }

    fn paced(&mut self, took: Duration) {
        if took > SLOW_BATCH {
            self.size = (self.size / 2).max(MIN_BATCH);
            tracing::info!(
                took_ms = took.as_millis() as u64,
                next = self.size,
                "the Electrum server is slowing this session down; asking less at once"
            );
        } else if took < QUICK_BATCH {
            self.size = (self.size * 2).min(MAX_BATCH);
        }
    }
}

/// A transaction answer, which must hash to the id asked.
fn transaction(txid: Txid, answer: Value) -> Result<Arc<Transaction>, Error> {
    let hex = answer
        .as_str()
        .ok_or_else(|| Error::InvalidResponse(answer.clone()))?;
    let tx: Transaction = deserialize_hex(hex).map_err(|e| Error::Message(e.to_string()))?;
    if tx.compute_txid() != txid {
        return Err(Error::Message(format!(
            "the server answered {} when asked for transaction {txid}",
            tx.compute_txid()
        )));
    }
    Ok(Arc::new(tx))
}

/// The headers of a `blockchain.block.headers` answer: concatenated in `hex` (protocol 1.4)
/// or listed in `headers` (1.6).
fn header_range(answer: Value) -> Result<Vec<Header>, Error> {
    let bad = |e: hex::FromHexError| Error::Message(e.to_string());
    let bytes: Vec<u8> = match (answer.get("hex"), answer.get("headers")) {
        (Some(Value::String(hex)), _) => hex::decode(hex).map_err(bad)?,
        (_, Some(Value::Array(list))) => {
            let mut bytes = Vec::with_capacity(list.len() * 80);
            for item in list {
                let hex = item
                    .as_str()
                    .ok_or_else(|| Error::InvalidResponse(answer.clone()))?;
                bytes.extend(hex::decode(hex).map_err(bad)?);
            }
            bytes
        }
        _ => return Err(Error::InvalidResponse(answer)),
    };
    bytes
        .chunks(80)
        .map(|raw| deserialize(raw).map_err(|e| Error::Message(e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_ranges_read_both_protocol_shapes() {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        let hex = bitcoin::consensus::encode::serialize_hex(&genesis);
        let legacy = serde_json::json!({"hex": format!("{hex}{hex}"), "count": 2, "max": 2016});
        assert_eq!(header_range(legacy).unwrap(), vec![genesis, genesis]);
        let listed = serde_json::json!({"headers": [hex], "count": 1, "max": 2016});
        assert_eq!(header_range(listed).unwrap(), vec![genesis]);
        assert!(header_range(serde_json::json!({"count": 1})).is_err());
    }

    #[test]
    fn a_transaction_must_hash_to_the_id_asked() {
        let coinbase =
            bitcoin::constants::genesis_block(bitcoin::Network::Regtest).txdata[0].clone();
        let hex = Value::String(bitcoin::consensus::encode::serialize_hex(&coinbase));
        assert!(transaction(coinbase.compute_txid(), hex.clone()).is_ok());
        let other = Txid::from_byte_array([7; 32]);
        assert!(transaction(other, hex).is_err());
    }

    #[test]
    fn batches_shrink_when_slow_and_grow_back_when_quick() {
        let mut pacer = Pacer::default();
        pacer.paced(Duration::from_secs(20));
        assert_eq!(pacer.size, MAX_BATCH / 2);
        for _ in 0..20 {
            pacer.paced(Duration::from_secs(20));
        }
        assert_eq!(pacer.size, MIN_BATCH);
        pacer.paced(Duration::from_secs(5));
        assert_eq!(pacer.size, MIN_BATCH);
        for _ in 0..20 {
            pacer.paced(Duration::from_millis(500));
        }
        assert_eq!(pacer.size, MAX_BATCH);
    }
}
