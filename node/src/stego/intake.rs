//! What happens to a message on the stego topic: judged before gossipsub forwards it (decode,
//! allow/deny lists, per-publisher rate, as the mirror's intake judges its topic), then, when
//! this node mirrors stego uploads, recorded to fetch. A refused one is counted and nothing is
//! fetched for it. Stego entries from manifests and reconciliations (handed over by the mirror)
//! take the same path from the lists on: [`Stego::admit`].

use stargate_protocol::mirror::Entry;
use stargate_protocol::stego::StegoAnnouncement;
use stargate_storage::{StegoAdmission, StegoRecorded, StegoUpload, StoreError};
use tokio::sync::mpsc;

use super::running::Stego;
use crate::clock::now_ms;
use crate::mirror::blocking;
use crate::p2p::{GossipMessage, Verdict};

impl Stego {
    /// Judges every message on the stego topic until shutdown.
    pub(super) async fn intake(self, mut messages: mpsc::Receiver<GossipMessage>) {
        loop {
            let message = tokio::select! {
                () = self.inner.shutdown.cancelled() => return,
                message = messages.recv() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            let verdict = self.judge(&message).await;
            self.inner.network.gossip_report(&message, verdict);
        }
    }

    async fn judge(&self, message: &GossipMessage) -> Verdict {
        let inner = &self.inner;
        inner.metrics.received();
        let announcement = match StegoAnnouncement::decode(&message.data) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(from = %message.from, error = %e, "refused a stego announcement");
                inner.metrics.rejected(e.reason());
                return Verdict::Reject;
            }
        };
        if message.from == inner.local {
            // Published here: by an approval (recorded already), or by the backend through
            // `pubsub/pub`, as an unchanged Starlight backend does.
            if let Err(e) = self.own_announcement(announcement).await {
                tracing::warn!(error = %e, "recording an own stego announcement");
            }
            return Verdict::Accept;
        }
        if let Some(reason) = inner.settings.refuses_message(&inner.rate, message.from) {
            inner.metrics.rejected(reason);
            return Verdict::Ignore;
        }
        let upload = StegoUpload::new(
            announcement.image,
            announcement.payload,
            message.from,
            serde_json::Value::Object(announcement.metadata).to_string(),
            now_ms(),
        );
        match self.admit(vec![upload]).await {
            Ok(()) => Verdict::Accept,
            Err(e) => {
                tracing::warn!(error = %e, "recording a stego announcement");
                Verdict::Ignore
            }
        }
    }

    /// Takes the stego entries the mirror learned from manifests and reconciliations through
    /// [`Stego::admit`], until shutdown.
    pub(super) async fn learn(self, mut entries: mpsc::Receiver<Vec<Entry>>) {
        loop {
            let batch = tokio::select! {
                () = self.inner.shutdown.cancelled() => return,
                batch = entries.recv() => match batch {
                    Some(batch) => batch,
                    None => return,
                },
            };
            let uploads = batch
                .into_iter()
                .filter_map(|entry| {
                    let a = StegoAnnouncement::of_entry(&entry)?;
                    Some(StegoUpload::new(
                        a.image,
                        a.payload,
                        entry.publisher,
                        entry.metadata,
                        now_ms(),
                    ))
                })
                .collect();
            if let Err(e) = self.admit(uploads).await {
                tracing::warn!(error = %e, "recording stego entries learned from a peer");
            }
        }
    }

    /// Records uploads a peer told of (an announcement, a manifest, a reconciliation) to
    /// fetch, when this node mirrors stego uploads; those of publishers this node does not
    /// mirror are left out and counted. Each upload is recorded once, whoever told of it and
    /// however often, and its id joins the reconciled set.
    ///
    /// # Errors
    /// The store failed; nothing was recorded.
    pub(super) async fn admit(&self, uploads: Vec<StegoUpload>) -> Result<(), StoreError> {
        let inner = &self.inner;
        if !inner.settings.stego_sync {
            // Valid: forwarded for others, fetched by no one here.
            return Ok(());
        }
        let uploads: Vec<StegoUpload> = uploads
            .into_iter()
            .filter(|u| match inner.settings.refuses(&u.publisher) {
                Some(reason) => {
                    inner.metrics.rejected(reason);
                    false
                }
                None => true,
            })
            .collect();
        if uploads.is_empty() {
            return Ok(());
        }
        let ids: Vec<_> = uploads.iter().map(StegoUpload::id).collect();
        let how = StegoAdmission::Wait { at: now_ms() };
        let recorded = blocking(&inner.store, move |s| s.stego_record_many(&uploads, how)).await?;
        let set = inner.mirror.reconciled_set();
        for id in ids {
            set.insert(id);
        }
        if recorded.contains(&StegoRecorded::New) {
            inner.work.notify_one();
        }
        Ok(())
    }
}
