//! What happens to a message on the mirror topic, and to entries learned elsewhere (manifests,
//! the sync protocol): checked, recorded and queued, or refused and counted. Nothing is fetched
//! for a refused one; a refused message is not forwarded (rejected when it is malformed, which
//! penalises whoever forwarded it; ignored when it is only unwanted here).
//!
//! The verdict on an announcement needs only the checks that hold for everyone (decode, lists,
//! rate): gossipsub forwards on it at once, and recording waits in a bounded queue behind it,
//! committed in batches. Every hop of a message thus costs no disk write, and a burst of
//! announcements costs one commit, not one each.

use serde_json::{Map, Value};
use stargate_http_gateway::MirrorError;
use stargate_protocol::Cid;
use stargate_protocol::mirror::{Announcement, Entry};
use stargate_storage::{Admission, PinMode, Recorded, Store, StoreError};
use tokio::sync::mpsc;

use super::blocking::blocking;
use super::running::Mirror;
use crate::clock::{now_ms, now_s};
use crate::p2p::{GossipMessage, Verdict};

/// Accepted announcements waiting to be recorded; past this, more are not forwarded.
const ADMIT_QUEUE: usize = 4096;
/// Entries recorded in one transaction at most.
const ADMIT_BATCH: usize = 512;

impl Mirror {
    /// Judges every message on the mirror topic until shutdown.
    pub(super) async fn intake(self, mut messages: mpsc::Receiver<GossipMessage>) {
        let (admitting, to_admit) = mpsc::channel(ADMIT_QUEUE);
        tokio::spawn(self.clone().admit_heard(to_admit));
        loop {
            let message = tokio::select! {
                () = self.inner.shutdown.cancelled() => return,
                message = messages.recv() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            let verdict = self.judge(&message, &admitting).await;
            self.inner.network.gossip_report(&message, verdict);
        }
    }

    /// Records accepted announcements in batches, until the intake stops.
    async fn admit_heard(self, mut heard: mpsc::Receiver<Entry>) {
        let mut batch = Vec::with_capacity(ADMIT_BATCH);
        while heard.recv_many(&mut batch, ADMIT_BATCH).await > 0 {
            if let Err(e) = self.admit(std::mem::take(&mut batch)).await {
                tracing::warn!(error = %e, "recording announcements");
            }
        }
    }

    async fn judge(&self, message: &GossipMessage, admitting: &mpsc::Sender<Entry>) -> Verdict {
        let inner = &self.inner;
        inner.metrics.received();
        let announcement = match Announcement::decode(&message.data) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(from = %message.from, error = %e, "refused an announcement");
                inner.metrics.rejected(e.reason());
                return Verdict::Reject;
            }
        };
        if message.from == inner.local {
            // Published here: by `add --announce`, or by the backend through `pubsub/pub`.
            if let Err(e) = self.own_upload(&announcement).await {
                tracing::warn!(cid = %announcement.cid, error = %e, "recording an own upload");
            }
            return Verdict::Accept;
        }
        if let Some(reason) = inner.settings.refuses_message(&inner.rate, message.from) {
            inner.metrics.rejected(reason);
            return Verdict::Ignore;
        }
        if announcement.is_manifest() {
            let (from, cid) = (message.from, announcement.cid);
            return match blocking(&inner.store, move |s| {
                s.mirror_manifest_heard(&from, &cid, now_s())
            })
            .await
            {
                Ok(_) => {
                    inner.metrics.accepted();
                    Verdict::Accept
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recording a manifest announcement");
                    Verdict::Ignore
                }
            };
        }
        if !inner.settings.download {
            // Valid: forwarded for others, fetched by no one here.
            inner.metrics.accepted();
            return Verdict::Accept;
        }
        let entry = match Entry::new(&announcement, message.from, now_s()) {
            Ok(entry) => entry,
            Err(e) => {
                inner.metrics.rejected("bad_entry");
                tracing::debug!(error = %e, "refused an announcement");
                return Verdict::Reject;
            }
        };
        if !inner.set.contains(&entry.id()) && admitting.try_send(entry).is_err() {
            inner.metrics.rejected("queue_full");
            return Verdict::Ignore;
        }
        inner.metrics.accepted();
        Verdict::Accept
    }

    /// Records and queues entries a peer told of (an announcement, a manifest, a
    /// reconciliation); those of publishers this node does not mirror are left out, and a full
    /// queue refuses the rest. Both are counted.
    ///
    /// # Errors
    /// The store failed; nothing was recorded.
    pub(super) async fn admit(&self, entries: Vec<Entry>) -> Result<Vec<Recorded>, StoreError> {
        let inner = &self.inner;
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| match inner.settings.refuses(&e.publisher) {
                Some(reason) => {
                    inner.metrics.rejected(reason);
                    false
                }
                None => true,
            })
            .collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let how = Admission::Queue {
            at: now_ms(),
            bound: inner.settings.queue_max,
        };
        let ids: Vec<_> = entries.iter().map(Entry::id).collect();
        let recorded = blocking(&inner.store, move |s| s.mirror_record(&entries, how)).await?;
        for (id, r) in ids.iter().zip(&recorded) {
            if *r == Recorded::New {
                inner.set.insert(*id);
            }
        }
        let full = recorded
            .iter()
            .filter(|r| **r == Recorded::QueueFull)
            .count();
        for _ in 0..full {
            inner.metrics.rejected("queue_full");
        }
        if recorded.contains(&Recorded::New) {
            inner.work.notify_one();
            self.refresh_gauges().await;
        }
        Ok(recorded)
    }

    /// An upload of this node: pinned (it was added here), provided, recorded as stored. One
    /// announced here without its content held is queued like anyone else's.
    async fn own_upload(&self, announcement: &Announcement) -> Result<(), StoreError> {
        let inner = &self.inner;
        if announcement.is_manifest() || !inner.settings.upload {
            return Ok(());
        }
        let Ok(entry) = Entry::new(announcement, inner.local, now_s()) else {
            return Ok(());
        };
        let (cid, id) = (entry.cid, entry.id());
        let held = blocking(&inner.store, move |s| {
            match s.pin(&cid, PinMode::Recursive) {
                Ok(()) => Ok(true),
                Err(StoreError::MissingBlock { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await?;
        if !held {
            self.admit(vec![entry]).await?;
            return Ok(());
        }
        let recorded = blocking(&inner.store, move |s: &Store| {
            s.mirror_record(&[entry], Admission::Stored)
        })
        .await?;
        if recorded.contains(&Recorded::New) {
            inner.set.insert(id);
            stargate_http_gateway::Network::content_added(&inner.network, cid, true);
            self.refresh_gauges().await;
        }
        Ok(())
    }

    /// `add --announce`: records `cid` as this node's upload and announces it on the topic.
    pub(super) async fn announce_upload(
        &self,
        cid: Cid,
        kind: String,
        metadata: Map<String, Value>,
    ) -> Result<(), MirrorError> {
        if !self.inner.settings.upload {
            return Err(MirrorError::Disabled(
                "announcing uploads is off ([ipfs] mirror_upload_enabled = false)".to_owned(),
            ));
        }
        let announcement = Announcement {
            cid,
            kind,
            metadata,
        };
        // The checks a receiver makes, made before anything is recorded or sent.
        let data = announcement.encode();
        Announcement::decode(&data).map_err(|e| MirrorError::Invalid(e.to_string()))?;
        self.own_upload(&announcement)
            .await
            .map_err(|e| MirrorError::Failed(e.to_string()))?;
        self.inner
            .network
            .gossip_publish(&self.inner.settings.topic, data)
            .await
            .map_err(|e| MirrorError::Failed(format!("publishing the announcement: {e}")))
    }
}
