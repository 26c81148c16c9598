//! What happens to a message on the stego topic: judged before gossipsub forwards it (decode,
//! allow/deny lists, per-publisher rate, as the mirror's intake judges its topic), then, when
//! this node mirrors stego uploads, recorded to fetch. A refused one is counted and nothing is
//! fetched for it.

use stargate_protocol::stego::StegoAnnouncement;
use stargate_storage::{StegoAdmission, StegoRecorded, StegoUpload};
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
        if !inner.settings.stego_sync {
            // Valid: forwarded for others, fetched by no one here.
            return Verdict::Accept;
        }
        let upload = StegoUpload::new(
            announcement.image,
            announcement.payload,
            message.from,
            serde_json::Value::Object(announcement.metadata).to_string(),
            now_ms(),
        );
        let how = StegoAdmission::Wait { at: now_ms() };
        match blocking(&inner.store, move |s| s.stego_record(&upload, how)).await {
            Ok(StegoRecorded::New) => {
                inner.work.notify_one();
                Verdict::Accept
            }
            Ok(StegoRecorded::Known(_)) => Verdict::Accept,
            Err(e) => {
                tracing::warn!(error = %e, "recording a stego announcement");
                Verdict::Ignore
            }
        }
    }
}
