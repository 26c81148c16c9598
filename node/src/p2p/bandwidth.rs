//! Bytes over all peer connections (TCP, QUIC and relayed), as libp2p's bandwidth transport
//! counts them: what the protocols' streams carry, without noise and yamux framing. Exported as
//! `stargate_transport_bytes_total{direction}` and answered by `stats/bw`.
//!
//! libp2p keeps its counters private behind the registry it is given, so the swarm gets a
//! registry of its own, read back at scrape time and by a sampler that keeps the rates.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// How often the rates are brought up to date (Kubo's meters tick each second).
const RATE_INTERVAL: Duration = Duration::from_secs(1);
/// The name libp2p gives its samples in the registry it is handed.
const LIBP2P_SAMPLE: &str = "libp2p_bandwidth_bytes_total{";

/// Bytes since start and per second, in and out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Traffic {
    pub(crate) total_in: u64,
    pub(crate) total_out: u64,
    /// Bytes per second over the last [`RATE_INTERVAL`].
    pub(crate) rate_in: f64,
    pub(crate) rate_out: f64,
}

/// The transport's byte counts; clones share them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bandwidth {
    /// Handed to the swarm builder, which registers libp2p's counters in it.
    registry: Arc<Mutex<Registry>>,
    rates: Arc<Mutex<(f64, f64)>>,
}

impl Bandwidth {
    /// The registry the swarm's bandwidth transport registers its counters in.
    pub(super) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes received and sent since start, summed over every transport.
    fn totals(&self) -> (u64, u64) {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry()).is_err() {
            return (0, 0);
        }
        sum_by_direction(&text)
    }

    /// Totals and rates now.
    pub(crate) fn traffic(&self) -> Traffic {
        let (total_in, total_out) = self.totals();
        let (rate_in, rate_out) = *self.rates.lock().unwrap_or_else(PoisonError::into_inner);
        Traffic {
            total_in,
            total_out,
            rate_in,
            rate_out,
        }
    }

    /// Keeps the rates up to date until `shutdown`.
    pub(super) fn spawn_sampler(&self, shutdown: CancellationToken) {
        let bandwidth = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(RATE_INTERVAL);
            let (mut at, mut last) = (Instant::now(), bandwidth.totals());
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let (now, totals) = (Instant::now(), bandwidth.totals());
                let seconds = now.duration_since(at).as_secs_f64();
                if seconds > 0.0 {
                    let rate =
                        |after: u64, before: u64| after.saturating_sub(before) as f64 / seconds;
                    *bandwidth
                        .rates
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) =
                        (rate(totals.0, last.0), rate(totals.1, last.1));
                }
                (at, last) = (now, totals);
            }
        });
    }
}

/// Sums libp2p's samples (one per transport protocol stack and direction) into (in, out).
fn sum_by_direction(text: &str) -> (u64, u64) {
    let (mut inbound, mut outbound) = (0u64, 0u64);
    for line in text.lines().filter(|l| l.starts_with(LIBP2P_SAMPLE)) {
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        if line.contains("direction=\"Inbound\"") {
            inbound = inbound.saturating_add(value);
        } else if line.contains("direction=\"Outbound\"") {
            outbound = outbound.saturating_add(value);
        }
    }
    (inbound, outbound)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// Exports the totals at each scrape.
#[derive(Debug)]
pub(super) struct BandwidthCollector(pub(super) Bandwidth);

impl Collector for BandwidthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (inbound, outbound) = self.0.totals();
        let mut family = encoder.encode_descriptor(
            "stargate_transport_bytes",
            "Bytes carried by the streams of all peer connections (TCP, QUIC, relayed), by \
             direction (in, out); noise and yamux framing are not counted",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (direction, value) in [("in", inbound), ("out", outbound)] {
            ConstCounter::new(value)
                .encode(family.encode_family(&DirectionLabels { direction })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libp2p_samples_sum_by_direction() {
        let text = "# HELP libp2p_bandwidth_bytes Bandwidth usage.\n\
                    # TYPE libp2p_bandwidth_bytes counter\n\
                    # UNIT libp2p_bandwidth_bytes bytes\n\
                    libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Inbound\"} 10\n\
                    libp2p_bandwidth_bytes_total{protocols=\"/ip4/udp/quic-v1\",direction=\"Inbound\"} 5\n\
                    libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Outbound\"} 7\n\
                    # EOF\n";
        assert_eq!(sum_by_direction(text), (15, 7));
    }

    #[test]
    fn exports_totals_in_and_out() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(BandwidthCollector(Bandwidth::default())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("stargate_transport_bytes_total{direction=\"in\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("stargate_transport_bytes_total{direction=\"out\"} 0\n"),
            "{text}"
        );
    }
}
