//! What operators see: `GET /api/v1/mirror/status` and `ls`, and the CLI's `mirror` commands.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use stargate_http_gateway::{MirrorError, MirrorQuery};
use stargate_storage::{MirrorFilter, MirrorRecord, MirrorState};

use super::blocking::blocking;
use super::running::Mirror;

/// Records `ls` lists when no limit is given.
const DEFAULT_LS_LIMIT: usize = 100;

fn failed(e: impl std::fmt::Display) -> MirrorError {
    MirrorError::Failed(e.to_string())
}

impl Mirror {
    pub(super) async fn status_json(&self) -> Result<Value, MirrorError> {
        let inner = &self.inner;
        let counts = blocking(&inner.store, |s| s.mirror_counts())
            .await
            .map_err(failed)?;
        let manifests = blocking(&inner.store, |s| s.mirror_manifests())
            .await
            .map_err(failed)?;
        let mut topics = Vec::new();
        for topic in [&inner.settings.topic, &inner.settings.stego_topic] {
            let peers = inner
                .network
                .gossip_peers(Some(topic))
                .await
                .map_err(failed)?;
            let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
            topics.push(json!({ "topic": topic, "peers": peers }));
        }
        let (own, others): (Vec<_>, Vec<_>) = manifests
            .into_iter()
            .partition(|m| m.publisher == inner.local);
        let published = own.first().and_then(|m| {
            m.processed
                .map(|cid| json!({ "cid": cid.to_string(), "seq": m.seq, "time": m.time }))
        });
        let received: Vec<Value> = others
            .iter()
            .map(|m| {
                json!({
                    "publisher": m.publisher.to_string(),
                    "latest": m.latest.to_string(),
                    "heard_at": m.heard_at,
                    "read": m.processed.map(|c| c.to_string()),
                    "seq": m.seq,
                    "time": m.time,
                    "pending": m.pending(),
                })
            })
            .collect();
        Ok(json!({
            "peer_id": inner.local.to_string(),
            "upload_enabled": inner.settings.upload,
            "download_enabled": inner.settings.download,
            "topics": topics,
            "queue": counts.queued,
            "in_flight": counts.fetching,
            "stored": counts.stored,
            "failed": counts.failed,
            "failed_by_reason": counts.failed_by_reason,
            "last_manifest_published": published,
            "manifests_received": received,
            "reconciliation": {
                "enabled": inner.settings.sync,
                "set_size": inner.set.len(),
                "learned_entries": inner.learned.load(Ordering::Relaxed),
            },
        }))
    }

    pub(super) async fn list_json(&self, query: MirrorQuery) -> Result<Value, MirrorError> {
        let publisher = query
            .from
            .map(|p| {
                p.parse()
                    .map_err(|e| MirrorError::Invalid(format!("from={p:?} is not a peer id: {e}")))
            })
            .transpose()?;
        let filter = MirrorFilter {
            kind: query.kind,
            publisher,
            state: None,
            limit: query.limit.unwrap_or(DEFAULT_LS_LIMIT),
        };
        let records = blocking(&self.inner.store, move |s| s.mirror_list(&filter))
            .await
            .map_err(failed)?;
        let records: Vec<Value> = records.iter().map(record_json).collect();
        Ok(json!({ "records": records }))
    }
}

fn record_json(r: &MirrorRecord) -> Value {
    let metadata: Value = serde_json::from_str(&r.entry.metadata).unwrap_or(Value::Null);
    let reason = match &r.state {
        MirrorState::Failed { reason } => Some(reason.as_str()),
        _ => None,
    };
    json!({
        "cid": r.entry.cid.to_string(),
        "type": r.entry.kind,
        "metadata": metadata,
        "publisher": r.entry.publisher.to_string(),
        "time": r.entry.time,
        "state": r.state.name(),
        "reason": reason,
        "attempts": r.attempts,
        "changed_ms": r.changed,
    })
}
