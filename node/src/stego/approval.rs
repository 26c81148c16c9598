//! The platform's verdict on a stego result, its callback already authenticated and decoded:
//! an approval is recorded as this node's upload and waits for the fetcher, which pins both
//! CIDs (fetching what is not here) and then announces it; a rejection is recorded only.

use serde_json::Value;
use stargate_http_gateway::StegoError;
use stargate_protocol::stego::{Callback, StegoAnnouncement};
use stargate_storage::{
    IngestMade, PinMode, StegoAdmission, StegoRecorded, StegoState, StegoUpload, StoreError,
};

use super::running::Stego;
use crate::clock::now_ms;
use crate::mirror::blocking;

impl Stego {
    pub(super) async fn approved(&self, callback: Callback) -> Result<(), StegoError> {
        if !self.inner.settings.stego_announce {
            return Err(StegoError::Disabled(
                "announcing stego results is off ([ipfs] stego_announce_enabled = false)"
                    .to_owned(),
            ));
        }
        let recorded = self
            .record(&callback, StegoAdmission::Wait { at: now_ms() })
            .await?;
        match recorded {
            // Held and pinned already (heard of from another instance first): announced again
            // so that the approval reaches everyone.
            StegoRecorded::Known(StegoState::Stored) => {
                self.announce(&callback.announcement()).await;
            }
            _ => self.inner.work.notify_one(),
        }
        Ok(())
    }

    pub(super) async fn rejected(&self, callback: Callback) -> Result<(), StegoError> {
        self.record(&callback, StegoAdmission::Rejected).await?;
        Ok(())
    }

    async fn record(
        &self,
        callback: &Callback,
        how: StegoAdmission,
    ) -> Result<StegoRecorded, StegoError> {
        let upload = StegoUpload::new(
            callback.image,
            callback.payload,
            self.inner.local,
            Value::Object(callback.metadata.clone()).to_string(),
            now_ms(),
        );
        let id = upload.id();
        let recorded = blocking(&self.inner.store, move |s| s.stego_record(&upload, how))
            .await
            .map_err(|e| StegoError::Failed(format!("recording the stego result: {e}")))?;
        if how != StegoAdmission::Rejected {
            self.inner.mirror.reconciled_set().insert(id);
        }
        Ok(recorded)
    }

    /// A stego announcement this node published without an approval here (the backend's,
    /// through `pubsub/pub`): recorded as its own upload, stored with its record at once when
    /// both CIDs are held here (pinned now), else waiting for the fetcher like anyone's.
    pub(super) async fn own_announcement(
        &self,
        announcement: StegoAnnouncement,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let upload = StegoUpload::new(
            announcement.image,
            announcement.payload,
            inner.local,
            Value::Object(announcement.metadata).to_string(),
            now_ms(),
        );
        let ingest = inner.settings.ingest;
        inner.mirror.reconciled_set().insert(upload.id());
        let (waiting, made) = blocking(&inner.store, move |s| {
            if s.stego_get(&upload.id())?.is_some() {
                return Ok((false, false));
            }
            let mut held = true;
            for cid in [upload.image, upload.payload] {
                match s.pin(&cid, PinMode::Recursive) {
                    Ok(()) => {}
                    Err(StoreError::MissingBlock { .. }) => held = false,
                    Err(e) => return Err(e),
                }
            }
            if !held {
                s.stego_record(&upload, StegoAdmission::Wait { at: now_ms() })?;
                return Ok((true, false));
            }
            s.stego_record(&upload, StegoAdmission::Stored)?;
            let made =
                ingest && matches!(s.ingest_make(&upload.id(), now_ms())?, IngestMade::New(_));
            Ok((false, made))
        })
        .await?;
        if waiting {
            inner.work.notify_one();
        }
        if made {
            inner.metrics.record_made();
        }
        Ok(())
    }
}
