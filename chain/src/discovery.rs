//! Anchors that other instances put in blocks: found in the blocks the RPC backend downloads
//! and handed to the node on a bounded channel.

use bitcoin::{Block, Txid};
use stargate_protocol::anchor::AnchorPayload;
use tokio::sync::mpsc;

/// An anchor with Stargate's tag found in a block that this node did not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredAnchor {
    /// The transaction carrying it.
    pub txid: Txid,
    /// Height of its block.
    pub height: u32,
    /// The payload: a CID to mirror, or a batch root (whose members only its maker knows).
    pub payload: AnchorPayload,
}

/// Hands the anchors in `block` that are not ours to the channel; drops them (with a warning)
/// when the channel is full rather than stall the watcher.
pub(crate) fn scan_block(
    block: &Block,
    height: u32,
    own: &[Txid],
    channel: &mpsc::Sender<DiscoveredAnchor>,
) {
    for tx in &block.txdata {
        let txid = tx.compute_txid();
        if own.contains(&txid) {
            continue;
        }
        for out in &tx.output {
            if let Some(payload) = AnchorPayload::from_script(&out.script_pubkey) {
                let found = DiscoveredAnchor {
                    txid,
                    height,
                    payload,
                };
                if channel.try_send(found).is_err() {
                    tracing::warn!(%txid, height, "discovered-anchor channel full or closed; dropping");
                }
            }
        }
    }
}
