//! The download workers: due records come off the persisted queue, at most
//! `mirror_concurrency` at a time; each DAG is fetched, checked against `mirror_max_bytes`,
//! pinned and recorded, or retried with exponential backoff until `mirror_max_attempts`.
//!
//! Where from: the publisher first when it is a Stargate node (it just announced it), then the
//! other connected Stargate nodes, over the CAR transfer; else Bitswap from the connected peers
//! and DHT providers (a Kubo-based publisher). The root comes first: a DAG whose root declares
//! more than the cap is refused as soon as the root is here, before its content is fetched
//! (over Bitswap, where each block is asked for) or anything of it is pinned (over the CAR
//! transfer, one stream per DAG, where the root leads and the stream is cut at once); the bytes
//! that do arrive are counted too, so a root that lies is caught as soon as it is exceeded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use libp2p::PeerId;
use stargate_protocol::transfer::TransferRequest;
use stargate_protocol::unixfs::UnixFsData;
use stargate_protocol::unixfs::export::{DEFAULT_WINDOW, walk_dag};
use stargate_protocol::{Block, Cid, Codec, PbNode};
use stargate_storage::{MirrorRecord, Outcome, PinMode, StoreError};
use tokio::sync::Semaphore;

use super::blocking::blocking;
use super::running::Mirror;
use crate::clock::now_ms;

/// How long connected peers may take to say whether they are Stargate nodes.
const IDENTIFY_WAIT: Duration = Duration::from_secs(1);
/// Blocks stored per transaction on the Bitswap path.
const PUT_BATCH: usize = 256;
/// The scheduler looks at the queue at least this often.
const IDLE_WAKE: Duration = Duration::from_secs(60);

/// Why one download failed: a metric label, whether trying again can help, and the detail.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) reason: &'static str,
    pub(crate) permanent: bool,
    detail: String,
}

impl Failure {
    fn retry(reason: &'static str, detail: impl ToString) -> Self {
        Self {
            reason,
            permanent: false,
            detail: detail.to_string(),
        }
    }

    fn too_large(declared: u64, max: u64) -> Self {
        Self {
            reason: "too_large",
            permanent: true,
            detail: format!(
                "the DAG holds {declared} bytes or more, over mirror_max_bytes ({max})"
            ),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::retry("store", e)
    }
}

impl Mirror {
    /// Starts due downloads as slots free up, until shutdown.
    pub(super) async fn schedule_downloads(self) {
        let inner = &self.inner;
        let slots = Arc::new(Semaphore::new(inner.settings.concurrency));
        loop {
            let free = slots.available_permits();
            if free > 0 {
                match blocking(&inner.store, move |s| s.mirror_take_due(now_ms(), free)).await {
                    Ok(due) => {
                        if !due.is_empty() {
                            self.refresh_gauges().await;
                        }
                        for record in due {
                            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                                return;
                            };
                            let mirror = self.clone();
                            tokio::spawn(async move {
                                mirror.download(record).await;
                                drop(slot);
                                mirror.inner.work.notify_one();
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the mirror queue"),
                }
            }
            let wait = match blocking(&inner.store, |s| s.mirror_next_due()).await {
                Ok(Some(at)) if slots.available_permits() > 0 => {
                    Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_WAKE)
                }
                _ => IDLE_WAKE,
            };
            tokio::select! {
                () = inner.shutdown.cancelled() => return,
                () = inner.work.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One download, to its recorded end. Cut short by shutdown, it stays `fetching` and is
    /// resumed at the next start.
    async fn download(&self, record: MirrorRecord) {
        let inner = &self.inner;
        let entry = &record.entry;
        let started = Instant::now();
        let fetched = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            fetched = tokio::time::timeout(inner.settings.fetch_timeout, self.fetch(entry.cid, entry.publisher)) => fetched,
        };
        let outcome = match fetched.unwrap_or_else(|_| {
            Err(Failure::retry(
                "timeout",
                format!("not fetched within {:?}", inner.settings.fetch_timeout),
            ))
        }) {
            Ok(()) => {
                inner.metrics.fetched(started.elapsed().as_secs_f64());
                inner.network.provide_soon(entry.cid);
                tracing::debug!(cid = %entry.cid, publisher = %entry.publisher, "mirrored");
                Outcome::Stored
            }
            Err(failure) => {
                inner.metrics.error(failure.reason);
                let attempts = record.attempts.saturating_add(1);
                tracing::info!(
                    cid = %entry.cid,
                    reason = failure.reason,
                    attempts,
                    detail = %failure.detail,
                    "mirror download failed"
                );
                if failure.permanent || attempts >= inner.settings.max_attempts {
                    Outcome::Failed {
                        reason: failure.reason.to_owned(),
                    }
                } else {
                    let backoff = inner
                        .settings
                        .retry_base
                        .saturating_mul(1 << record.attempts.min(16));
                    Outcome::Retry {
                        at: now_ms()
                            .saturating_add(u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX)),
                    }
                }
            }
        };
        let id = entry.id();
        if let Err(e) = blocking(&inner.store, move |s| s.mirror_finish(&id, outcome)).await {
            tracing::warn!(error = %e, "recording a mirror download");
        }
        self.refresh_gauges().await;
    }

    /// Fetches, checks and pins the DAG of `cid` for another part of the node (the stego
    /// part's image and payload): the same sources, size cap and timeout as a mirror download,
    /// a failure counted in `ipfs_mirror_errors_total`.
    pub(crate) async fn fetch_pinned(&self, cid: Cid, publisher: PeerId) -> Result<(), Failure> {
        let inner = &self.inner;
        let timeout = inner.settings.fetch_timeout;
        let fetched = tokio::time::timeout(timeout, self.fetch(cid, publisher))
            .await
            .unwrap_or_else(|_| {
                Err(Failure::retry(
                    "timeout",
                    format!("not fetched within {timeout:?}"),
                ))
            });
        match fetched {
            Ok(()) => {
                stargate_http_gateway::Network::content_added(&inner.network, cid, true);
                Ok(())
            }
            Err(failure) => {
                inner.metrics.error(failure.reason);
                tracing::debug!(%cid, detail = %failure.detail, "fetch failed");
                Err(failure)
            }
        }
    }

    /// Fetches, checks and pins the DAG of `cid`.
    async fn fetch(&self, cid: Cid, publisher: PeerId) -> Result<(), Failure> {
        let inner = &self.inner;
        // Held already (added here, or fetched for someone else): only the pin is missing. The
        // root is looked up first, so a DAG not here costs a read, not a write transaction.
        let pinned = blocking(&inner.store, move |s| {
            if !s.has(&cid)? {
                return Ok(false);
            }
            match s.pin(&cid, PinMode::Recursive) {
                Ok(()) => Ok(true),
                Err(StoreError::MissingBlock { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await?;
        if pinned {
            return Ok(());
        }
        // The publisher holds the DAG for sure; unless it is known to be another kind of node it
        // is asked first, even when not connected (it is dialled at the addresses the DHT
        // knows): the neighbours that forwarded its announcement may not have the DAG yet. The
        // other Stargate peers are listed only when it fails, since listing them may wait for
        // the identification of a fresh connection.
        let network = &inner.network;
        let mut last = None;
        if !matches!(network.is_stargate(publisher).await, Ok(Some(false))) {
            match self.fetch_from_stargate(publisher, cid).await {
                Ok(()) => return Ok(()),
                Err(f) if f.permanent => return Err(f),
                Err(f) => last = Some(f),
            }
        }
        let others = network
            .stargate_peers(IDENTIFY_WAIT)
            .await
            .unwrap_or_default();
        for peer in others.into_iter().filter(|p| *p != publisher) {
            match self.fetch_from_stargate(peer, cid).await {
                Ok(()) => return Ok(()),
                Err(f) if f.permanent => return Err(f),
                Err(f) => {
                    tracing::debug!(%cid, %peer, detail = %f.detail, "transfer failed; trying the next source");
                    last = Some(f);
                }
            }
        }
        match self.fetch_over_bitswap(cid).await {
            Err(f) if !f.permanent => Err(last.unwrap_or(f)),
            other => other,
        }
    }

    async fn fetch_from_stargate(&self, peer: PeerId, cid: Cid) -> Result<(), Failure> {
        let inner = &self.inner;
        // Dropping the stream on a refusal cuts the transfer.
        let mut blocks = inner
            .network
            .fetch_dag(peer, TransferRequest::dag(cid), true);
        let (mut bytes, mut root) = (0u64, true);
        while let Some(block) = blocks.next().await {
            let block = block.map_err(|e| Failure::retry("transfer", e))?;
            if std::mem::take(&mut root) {
                self.check_declared(&block)?;
            }
            bytes = bytes.saturating_add(block.data().len() as u64);
            if bytes > inner.settings.max_bytes {
                return Err(Failure::too_large(bytes, inner.settings.max_bytes));
            }
        }
        Ok(())
    }

    async fn fetch_over_bitswap(&self, cid: Cid) -> Result<(), Failure> {
        let inner = &self.inner;
        let root = inner
            .blocks
            .get(cid)
            .await
            .map_err(|e| Failure::retry("not_found", e))?;
        self.check_declared(&root)?;
        let mut walk = walk_dag(Arc::clone(&inner.blocks), cid, DEFAULT_WINDOW);
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        while let Some(block) = walk
            .try_next()
            .await
            .map_err(|e| Failure::retry("not_found", e))?
        {
            bytes = bytes.saturating_add(block.data().len() as u64);
            if bytes > inner.settings.max_bytes {
                return Err(Failure::too_large(bytes, inner.settings.max_bytes));
            }
            batch.push(block);
            if batch.len() >= PUT_BATCH {
                let full = std::mem::take(&mut batch);
                blocking(&inner.store, move |s| s.put_many(full)).await?;
            }
        }
        blocking(&inner.store, move |s| {
            s.put_many(batch)?;
            s.pin(&cid, PinMode::Recursive)
        })
        .await?;
        Ok(())
    }

    fn check_declared(&self, root: &Block) -> Result<(), Failure> {
        let max = self.inner.settings.max_bytes;
        let declared = declared_size(root);
        if declared > max {
            return Err(Failure::too_large(declared, max));
        }
        Ok(())
    }
}

/// The size a DAG's root says the DAG has: its own bytes plus its links' cumulative sizes, or
/// the UnixFS file size if that is larger. A root of another codec says only its own size.
fn declared_size(root: &Block) -> u64 {
    let own = root.data().len() as u64;
    if root.codec() != Some(Codec::DagPb) {
        return own;
    }
    let Ok(node) = PbNode::decode(root.data()) else {
        return own;
    };
    let links = node
        .links
        .iter()
        .filter_map(|l| l.tsize)
        .fold(own, u64::saturating_add);
    let file = UnixFsData::from_node_data(node.data.as_ref())
        .ok()
        .and_then(|d| d.filesize)
        .unwrap_or(0);
    links.max(file)
}

#[cfg(test)]
mod tests {
    use stargate_protocol::unixfs::{DataType, UnixFsData};
    use stargate_protocol::{Bytes, HashCode, PbLink, Version};

    use super::*;

    #[test]
    fn declared_size_of_a_root() {
        let leaf = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"abc"[..]).unwrap();
        assert_eq!(declared_size(&leaf), 3);
        let mut data = UnixFsData::new(DataType::File);
        data.filesize = Some(5_000_000);
        let node = PbNode {
            links: vec![PbLink {
                cid: *leaf.cid(),
                name: None,
                tsize: Some(1_000),
            }],
            data: Some(Bytes::from(data.encode())),
        };
        let root =
            Block::encode(Version::V0, Codec::DagPb, HashCode::Sha2_256, node.encode()).unwrap();
        assert_eq!(declared_size(&root), 5_000_000);
    }
}
