//! Manifests, the guide's catch-up path: this node's signed list of what it holds (newest
//! first, at most `mirror_max_files`, its stored stego uploads among them), published when that
//! changed, stored, provided and announced by CID as type `manifest`; and the latest manifests
//! heard of from others, read every poll interval, whose missing entries are queued (stego
//! entries through the stego part's intake).
//!
//! A node that was away hears no old announcement again, so the current manifest is announced
//! again when a peer this node did not see on the topic before joins it: one small message per
//! newcomer, nothing while the network is quiet. The manifests of peers the sync protocol
//! reconciles with are not read: what they list reaches this node through reconciliation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use libp2p::PeerId;
use serde_json::json;
use stargate_protocol::mirror::{Announcement, Entry, MANIFEST_TYPE, Manifest};
use stargate_protocol::transfer::TransferRequest;
use stargate_protocol::unixfs::export::DagScope;
use stargate_protocol::{Block, Cid};
use stargate_storage::{ManifestRecord, MirrorFilter, PinMode, StoreError};

use super::blocking::blocking;
use super::running::Mirror;
use crate::clock::now_s;

/// Manifests found bad that are not read again, at most.
const MAX_BAD: usize = 1024;
/// Manifests read at once.
const MAX_READS: usize = 16;

/// The manifests being read, and those found bad.
#[derive(Default)]
struct Reads {
    reading: HashSet<Cid>,
    bad: HashSet<Cid>,
}

impl Mirror {
    /// Publishes this node's manifest when what it holds changed, and announces it again to
    /// newcomers on the topic, every `mirror_publish_interval_sec` until shutdown.
    pub(super) async fn publish_manifests(self) {
        let inner = &self.inner;
        let mut published_at = None;
        let mut known_peers = HashSet::new();
        // Instances started together (a deployment, a test network) would otherwise all
        // publish in the same instant, every interval, and read each other's at once.
        let interval = inner.settings.publish_interval;
        let offset = interval.mul_f64(rand::random::<f64>());
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
        loop {
            tokio::select! {
                () = inner.shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let peers: HashSet<PeerId> = inner
                .network
                .gossip_peers(Some(&inner.settings.topic))
                .await
                .unwrap_or_default()
                .into_iter()
                .collect();
            let newcomers = peers.difference(&known_peers).next().is_some();
            known_peers = peers;
            let counts = blocking(&inner.store, |s| {
                Ok((s.mirror_counts()?, s.stego_counts()?))
            });
            let changes = match counts.await {
                Ok((m, s)) if m.stored + s.stored > 0 => (m.changes, s.changes),
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the mirror counts");
                    continue;
                }
            };
            if !inner.settings.upload {
                continue;
            }
            let result = if published_at == Some(changes) {
                if newcomers {
                    self.announce_manifest_again().await
                } else {
                    continue;
                }
            } else {
                self.publish_manifest().await
            };
            match result {
                Ok(()) => published_at = Some(changes),
                Err(e) => tracing::warn!(error = %e, "publishing the manifest"),
            }
        }
    }

    async fn own_manifest(&self) -> Result<Option<ManifestRecord>, StoreError> {
        let local = self.inner.local;
        let all = blocking(&self.inner.store, |s| s.mirror_manifests()).await?;
        Ok(all.into_iter().find(|r| r.publisher == local))
    }

    async fn publish_manifest(&self) -> anyhow::Result<()> {
        let inner = &self.inner;
        let filter = MirrorFilter {
            state: Some("stored"),
            limit: inner.settings.max_files,
            ..MirrorFilter::default()
        };
        let max = inner.settings.max_files;
        let (records, stego) = blocking(&inner.store, move |s| {
            Ok((s.mirror_list(&filter)?, s.stego_stored_entries(max)?))
        })
        .await?;
        // Both newest first; together, the newest `mirror_max_files`.
        let mut entries: Vec<Entry> = records.into_iter().map(|r| r.entry).chain(stego).collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.time));
        entries.truncate(max);
        let previous = self.own_manifest().await?;
        let time = now_s();
        // Above the last one even if the clock stepped back, and above any a wiped data dir
        // published before (receivers refuse a sequence number not above the last).
        let seq = previous
            .as_ref()
            .map_or(0, |r| r.seq)
            .saturating_add(1)
            .max(time);
        let manifest = Manifest {
            publisher: inner.local,
            seq,
            time,
            entries,
        };
        let count = manifest.entries.len();
        let block = manifest.sign(&inner.keypair)?;
        let cid = *block.cid();
        let local = inner.local;
        blocking(&inner.store, move |s| {
            s.put(block)?;
            s.pin(&cid, PinMode::Direct)?;
            if let Some(old) = previous.and_then(|r| r.processed).filter(|old| *old != cid) {
                // Only the latest manifest is kept; an old one may be gone already.
                let _ = s.unpin(&old);
            }
            s.mirror_manifest_heard(&local, &cid, time)?;
            s.mirror_manifest_processed(&local, &cid, seq, time, time)?;
            Ok(())
        })
        .await?;
        inner.network.provide_soon(cid);
        self.publish_manifest_cid(cid, seq, count).await?;
        inner.metrics.manifest_published();
        tracing::debug!(%cid, seq, entries = count, "manifest published");
        Ok(())
    }

    async fn announce_manifest_again(&self) -> anyhow::Result<()> {
        if let Some(own) = self.own_manifest().await?
            && let Some(cid) = own.processed
        {
            self.publish_manifest_cid(cid, own.seq, 0).await?;
        }
        Ok(())
    }

    async fn publish_manifest_cid(&self, cid: Cid, seq: u64, entries: usize) -> anyhow::Result<()> {
        let mut metadata = serde_json::Map::new();
        metadata.insert("seq".to_owned(), json!(seq));
        if entries > 0 {
            metadata.insert("entries".to_owned(), json!(entries));
        }
        let announcement = Announcement {
            cid,
            kind: MANIFEST_TYPE.to_owned(),
            metadata,
        };
        self.inner
            .network
            .gossip_publish(&self.inner.settings.topic, announcement.encode())
            .await?;
        Ok(())
    }

    /// Reads the latest manifest heard of from each publisher, every
    /// `mirror_poll_interval_sec` until shutdown. Reads run side by side (at most
    /// [`MAX_READS`]), so a manifest that cannot be had holds up no other.
    pub(super) async fn poll_manifests(self) {
        let inner = &self.inner;
        let reads = Arc::new(Mutex::new(Reads::default()));
        let mut ticks = tokio::time::interval(inner.settings.poll_interval);
        loop {
            tokio::select! {
                () = inner.shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let pending = match blocking(&inner.store, |s| s.mirror_manifests()).await {
                Ok(all) => all,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the manifests");
                    continue;
                }
            };
            for record in pending {
                if record.publisher == inner.local
                    || !record.pending()
                    || inner.reconciling.contains(&record.publisher)
                {
                    continue;
                }
                {
                    let mut reads = reads.lock().unwrap_or_else(PoisonError::into_inner);
                    if reads.reading.len() >= MAX_READS
                        || reads.bad.contains(&record.latest)
                        || !reads.reading.insert(record.latest)
                    {
                        continue;
                    }
                }
                let (mirror, reads) = (self.clone(), Arc::clone(&reads));
                tokio::spawn(async move {
                    let result = mirror.read_manifest(&record).await;
                    let mut reads = reads.lock().unwrap_or_else(PoisonError::into_inner);
                    reads.reading.remove(&record.latest);
                    match result {
                        Ok(()) => {}
                        // Tried again at the next poll.
                        Err("unavailable") => mirror.inner.metrics.error("manifest_unavailable"),
                        Err(reason) => {
                            mirror.inner.metrics.rejected(reason);
                            if reads.bad.len() >= MAX_BAD {
                                reads.bad.clear();
                            }
                            reads.bad.insert(record.latest);
                        }
                    }
                });
            }
        }
    }

    /// Fetches, checks and queues from one manifest; the error is a metric label.
    async fn read_manifest(&self, record: &ManifestRecord) -> Result<(), &'static str> {
        let inner = &self.inner;
        let cid = record.latest;
        let block = tokio::time::timeout(
            inner.settings.fetch_timeout,
            self.fetch_block(record.publisher, cid),
        )
        .await
        .ok()
        .flatten()
        .ok_or("unavailable")?;
        let manifest = Manifest::decode_verified(block.data(), inner.settings.max_files)
            .map_err(|e| {
                tracing::info!(%cid, publisher = %record.publisher, error = %e, "refused a manifest");
                e.reason()
            })?;
        if manifest.publisher != record.publisher {
            tracing::info!(%cid, announced_by = %record.publisher, names = %manifest.publisher, "refused a manifest of another publisher");
            return Err("manifest_wrong_publisher");
        }
        let (publisher, seq, time) = (manifest.publisher, manifest.seq, manifest.time);
        let newer = blocking(&inner.store, move |s| {
            s.mirror_manifest_processed(&publisher, &cid, seq, time, now_s())
        })
        .await
        .map_err(|_| "store")?;
        if !newer {
            return Err("manifest_replayed");
        }
        inner.metrics.manifest_read();
        let entries = self.pass_on_stego(manifest.entries).await;
        if inner.settings.download {
            self.admit(entries).await.map_err(|_| "store")?;
        }
        Ok(())
    }

    /// One block: from the publisher over the transfer when it is a Stargate node, else
    /// through retrieval (Bitswap, the DHT). `None` when it cannot be had.
    async fn fetch_block(&self, publisher: PeerId, cid: Cid) -> Option<Block> {
        let inner = &self.inner;
        if matches!(inner.network.is_stargate(publisher).await, Ok(Some(true))) {
            let mut request = TransferRequest::dag(cid);
            request.scope = DagScope::Block;
            if inner
                .network
                .fetch_dag_all(publisher, request, false)
                .await
                .is_ok()
                && let Ok(Some(block)) = blocking(&inner.store, move |s| s.get(&cid)).await
            {
                return Some(block);
            }
        }
        inner.blocks.get(cid).await.ok()
    }
}
