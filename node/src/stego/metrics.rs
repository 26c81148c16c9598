//! The stego part's Prometheus metrics. Fetch failures go to the mirror's
//! `ipfs_mirror_errors_total`, as the guide's metric counts every mirrored download. The
//! figures by state are read from the store at each scrape, so that a change made anywhere (an
//! ack through the pull API, say) shows at once.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use stargate_storage::Store;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// The stego part's metrics; clones share them.
#[derive(Debug, Clone)]
pub(crate) struct StegoMetrics {
    received: Counter,
    rejected: Family<ReasonLabels, Counter>,
    announced: Counter,
    records_made: Counter,
}

impl StegoMetrics {
    /// Creates the metrics and registers them in `registry`, with the figures by state of
    /// `store`.
    pub(crate) fn register(registry: &mut Registry, store: Store) -> Self {
        registry.register_collector(Box::new(CountsCollector(store)));
        let m = Self {
            received: Counter::default(),
            rejected: Family::default(),
            announced: Counter::default(),
            records_made: Counter::default(),
        };
        registry.register(
            "stego_announcements_received",
            "Messages received on the stego topic",
            m.received.clone(),
        );
        registry.register(
            "stego_announcements_rejected",
            "Stego announcements refused, by reason; nothing is fetched for them",
            m.rejected.clone(),
        );
        registry.register(
            "stego_announced",
            "Approved stego results this node announced",
            m.announced.clone(),
        );
        registry.register(
            "ingest_records_made",
            "Ingestion records made from stored stego uploads",
            m.records_made.clone(),
        );
        m
    }

    pub(crate) fn received(&self) {
        self.received.inc();
    }

    pub(crate) fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn announced(&self) {
        self.announced.inc();
    }

    /// Approved results announced since start.
    pub(crate) fn announced_count(&self) -> u64 {
        self.announced.get()
    }

    pub(crate) fn record_made(&self) {
        self.records_made.inc();
    }
}

#[derive(Debug)]
struct CountsCollector(Store);

impl Collector for CountsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = match self.0.stego_counts() {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "reading the stego counts for metrics");
                return Ok(());
            }
        };
        for (name, help, value) in [
            (
                "stego_uploads_waiting",
                "Stego uploads waiting for their content",
                counts.waiting,
            ),
            (
                "stego_uploads_stored",
                "Stego uploads with image and payload pinned",
                counts.stored,
            ),
            (
                "stego_uploads_rejected",
                "Stego results the platform rejected",
                counts.rejected,
            ),
            (
                "stego_uploads_failed",
                "Stego uploads given up after their attempts",
                counts.failed,
            ),
            ("ingest_records", "Ingestion records made", counts.records),
            (
                "ingest_records_pending",
                "Ingestion records the platform has not acknowledged",
                counts.pending,
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
