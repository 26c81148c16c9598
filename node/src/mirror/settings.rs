//! `[ipfs]` checked and turned into what the mirror runs with.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use libp2p::PeerId;
use stargate_protocol::limits::MAX_MANIFEST_ENTRIES;

use super::rate::PublisherRate;
use crate::config::IpfsSection;

/// The mirror's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Announce this node's uploads.
    pub(crate) upload: bool,
    /// Fetch what others announce.
    pub(crate) download: bool,
    pub(crate) topic: String,
    pub(crate) stego_topic: String,
    pub(crate) poll_interval: Duration,
    pub(crate) publish_interval: Duration,
    pub(crate) max_files: usize,
    /// Longest one DAG (or manifest) may take to fetch.
    pub(crate) fetch_timeout: Duration,
    pub(crate) max_bytes: u64,
    /// Only these publishers, when not empty.
    pub(crate) allow: HashSet<PeerId>,
    pub(crate) deny: HashSet<PeerId>,
    pub(crate) rate_per_min: u32,
    pub(crate) queue_max: u64,
    pub(crate) concurrency: usize,
    pub(crate) max_attempts: u32,
    pub(crate) retry_base: Duration,
    /// Reconcile with Stargate peers over the sync protocol.
    pub(crate) sync: bool,
    /// Pin and announce approved stego results.
    pub(crate) stego_announce: bool,
    /// Fetch and pin what other instances announce on the stego topic.
    pub(crate) stego_sync: bool,
    /// The first wait before a stego upload's content is tried again.
    pub(crate) stego_sync_interval: Duration,
    /// Make ingestion records from stored stego uploads.
    pub(crate) ingest: bool,
    /// The longest a stored stego upload waits for its ingestion record.
    pub(crate) ingest_interval: Duration,
    /// Most ingestion records one sweep makes.
    pub(crate) ingest_max_entries: usize,
}

/// Most ingestion records one sweep may be set to make.
const MAX_INGEST_SWEEP: usize = 100_000;

impl Settings {
    /// The settings of `[ipfs]`, or `None` when mirroring is off.
    ///
    /// # Errors
    /// A value out of range or a peer id that does not parse, named.
    pub(crate) fn new(section: &IpfsSection) -> Result<Option<Self>> {
        if !section.mirror_enabled {
            return Ok(None);
        }
        let s = section;
        if !s.api_url.is_empty() {
            tracing::info!(
                api_url = %s.api_url,
                "[ipfs] api_url is ignored: this node is its own IPFS node"
            );
        }
        for (name, value) in [
            ("mirror_poll_interval_sec", s.mirror_poll_interval_sec),
            ("mirror_publish_interval_sec", s.mirror_publish_interval_sec),
            ("http_timeout_sec", s.http_timeout_sec),
            ("mirror_retry_base_sec", s.mirror_retry_base_sec),
            ("mirror_queue_max", s.mirror_queue_max),
            ("mirror_max_bytes", s.mirror_max_bytes),
            ("mirror_rate_per_min", u64::from(s.mirror_rate_per_min)),
            ("mirror_max_attempts", u64::from(s.mirror_max_attempts)),
            ("stego_sync_interval_sec", s.stego_sync_interval_sec),
            ("ingest_sync_interval_sec", s.ingest_sync_interval_sec),
        ] {
            if value == 0 {
                bail!("[ipfs] {name} must be at least 1");
            }
        }
        if s.mirror_max_files == 0 || s.mirror_max_files > MAX_MANIFEST_ENTRIES {
            bail!("[ipfs] mirror_max_files must be 1 to {MAX_MANIFEST_ENTRIES}");
        }
        if s.mirror_concurrency == 0 || s.mirror_concurrency > 1024 {
            bail!("[ipfs] mirror_concurrency must be 1 to 1024");
        }
        if s.ingest_sync_max_entries == 0 || s.ingest_sync_max_entries > MAX_INGEST_SWEEP {
            bail!("[ipfs] ingest_sync_max_entries must be 1 to {MAX_INGEST_SWEEP}");
        }
        if s.mirror_topic.is_empty() || s.mirror_topic == s.stego_topic {
            bail!("[ipfs] mirror_topic must be set and differ from stego_topic");
        }
        Ok(Some(Self {
            upload: s.mirror_upload_enabled,
            download: s.mirror_download_enabled,
            topic: s.mirror_topic.clone(),
            stego_topic: s.stego_topic.clone(),
            poll_interval: Duration::from_secs(s.mirror_poll_interval_sec),
            publish_interval: Duration::from_secs(s.mirror_publish_interval_sec),
            max_files: s.mirror_max_files,
            fetch_timeout: Duration::from_secs(s.http_timeout_sec),
            max_bytes: s.mirror_max_bytes,
            allow: peers("mirror_peers", &s.mirror_peers)?,
            deny: peers("mirror_deny_peers", &s.mirror_deny_peers)?,
            rate_per_min: s.mirror_rate_per_min,
            queue_max: s.mirror_queue_max,
            concurrency: s.mirror_concurrency,
            max_attempts: s.mirror_max_attempts,
            retry_base: Duration::from_secs(s.mirror_retry_base_sec),
            sync: s.sync_enabled,
            stego_announce: s.stego_announce_enabled,
            stego_sync: s.stego_sync_enabled,
            stego_sync_interval: Duration::from_secs(s.stego_sync_interval_sec),
            ingest: s.ingest_sync_enabled,
            ingest_interval: Duration::from_secs(s.ingest_sync_interval_sec),
            ingest_max_entries: s.ingest_sync_max_entries,
        }))
    }

    /// Why `publisher` is not mirrored (a metric label), if it is not.
    pub(crate) fn refuses(&self, publisher: &PeerId) -> Option<&'static str> {
        if self.deny.contains(publisher) {
            Some("denied_peer")
        } else if !self.allow.is_empty() && !self.allow.contains(publisher) {
            Some("not_allowed_peer")
        } else {
            None
        }
    }

    /// Why a message `publisher` just sent on a topic is not taken here (a metric label): the
    /// lists, then its rate, which counts the message.
    pub(crate) fn refuses_message(
        &self,
        rate: &PublisherRate,
        publisher: PeerId,
    ) -> Option<&'static str> {
        self.refuses(&publisher)
            .or_else(|| (!rate.allow(publisher, Instant::now())).then_some("rate_limited"))
    }
}

fn peers(key: &str, list: &[String]) -> Result<HashSet<PeerId>> {
    list.iter()
        .map(|p| {
            p.parse::<PeerId>()
                .with_context(|| format!("[ipfs] {key}: {p:?} is not a peer id"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_and_lists() {
        let mut section = Config::default().ipfs;
        let settings = Settings::new(&section).unwrap().unwrap();
        assert_eq!(settings.topic, "stargate-uploads");
        assert_eq!(settings.fetch_timeout, Duration::from_secs(30));
        let peer = PeerId::random();
        assert_eq!(settings.refuses(&peer), None);

        section.mirror_deny_peers = vec![peer.to_string()];
        assert_eq!(
            Settings::new(&section).unwrap().unwrap().refuses(&peer),
            Some("denied_peer")
        );
        section.mirror_deny_peers.clear();
        section.mirror_peers = vec![PeerId::random().to_string()];
        assert_eq!(
            Settings::new(&section).unwrap().unwrap().refuses(&peer),
            Some("not_allowed_peer")
        );
        section.mirror_peers = vec!["nonsense".to_owned()];
        assert!(Settings::new(&section).is_err());
        section.mirror_peers.clear();
        section.mirror_max_files = MAX_MANIFEST_ENTRIES + 1;
        assert!(Settings::new(&section).is_err());
        section.mirror_max_files = 2000;
        let stego = Settings::new(&section).unwrap().unwrap();
        assert!(stego.stego_announce && stego.stego_sync && stego.ingest);
        assert_eq!(stego.ingest_interval, Duration::from_secs(60));
        section.ingest_sync_max_entries = 0;
        assert!(Settings::new(&section).is_err());
        section.ingest_sync_max_entries = 5000;
        section.stego_sync_interval_sec = 0;
        assert!(Settings::new(&section).is_err());
        section.mirror_enabled = false;
        assert!(Settings::new(&section).unwrap().is_none());
    }
}
