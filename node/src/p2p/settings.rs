//! `[swarm]`, `[routing]`, `[transfer]` and `[pubsub]` checked and parsed: every address is a multiaddr, every peer
//! address names its peer, the limits make sense. A bad value stops the daemon at start with
//! the key and the value in the message.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use super::transfer;
use crate::config::{
    Config, KadMode, ProvideStrategy, PubsubConfig, RoutingConfig, SwarmConfig, TransferConfig,
};

/// Everything the network needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) announce: Vec<Multiaddr>,
    /// Bootstrap peers with their addresses (one peer may have several).
    pub(crate) bootstrap: Vec<(PeerId, Vec<Multiaddr>)>,
    pub(crate) peering: Vec<(PeerId, Vec<Multiaddr>)>,
    pub(crate) mdns: bool,
    pub(crate) upnp: bool,
    pub(crate) autonat: bool,
    pub(crate) relay_client: bool,
    pub(crate) hole_punching: bool,
    pub(crate) kad_mode: KadMode,
    pub(crate) limits: Limits,
    pub(crate) providing: Providing,
    pub(crate) fetching: Fetching,
    /// Blocks served to one peer per second (`None`: no cap).
    pub(crate) bitswap_rate: Option<u32>,
    pub(crate) transfer: transfer::Config,
    pub(crate) pubsub: Pubsub,
}

/// `[pubsub]`: gossipsub and its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pubsub {
    pub(crate) enabled: bool,
    /// Topics this node subscribes to at once.
    pub(crate) max_topics: usize,
    /// `pubsub/sub` streams at once.
    pub(crate) max_subscribers: usize,
    /// Topics one remote peer may be known to be subscribed to.
    pub(crate) max_peer_topics: usize,
    /// Subscriptions one message from a peer may carry.
    pub(crate) max_subscriptions_per_request: usize,
}

impl Pubsub {
    fn new(c: &PubsubConfig) -> Result<Self> {
        ensure!(
            c.max_topics > 0
                && c.max_subscribers > 0
                && c.max_peer_topics > 0
                && c.max_subscriptions_per_request > 0,
            "[pubsub] max_topics, max_subscribers, max_peer_topics and \
             max_subscriptions_per_request must be at least 1"
        );
        Ok(Self {
            enabled: c.enabled,
            max_topics: c.max_topics,
            max_subscribers: c.max_subscribers,
            max_peer_topics: c.max_peer_topics,
            max_subscriptions_per_request: c.max_subscriptions_per_request,
        })
    }
}

/// Connection limits and the connection manager's water marks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) low_water: u32,
    pub(crate) high_water: u32,
    pub(crate) grace_period: Duration,
    pub(crate) max_pending: u32,
    pub(crate) max_per_peer: u32,
    /// `None`: no memory limit.
    pub(crate) max_memory_bytes: Option<usize>,
}

/// The retrieval side of `[routing]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fetching {
    /// Longest wait for one block.
    pub(crate) timeout: Duration,
    /// Blocks fetched at once.
    pub(crate) concurrency: usize,
}

/// The providing side of `[routing]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Providing {
    pub(crate) strategy: ProvideStrategy,
    pub(crate) interval: Duration,
    pub(crate) concurrency: usize,
    pub(crate) queue: usize,
}

impl Settings {
    /// Checks and parses the three sections.
    pub(crate) fn new(
        swarm: &SwarmConfig,
        routing: &RoutingConfig,
        transfer: &TransferConfig,
    ) -> Result<Self> {
        let addrs = |key: &str, list: &[String]| -> Result<Vec<Multiaddr>> {
            list.iter()
                .map(|a| parse_addr(a).with_context(|| format!("[swarm] {key}")))
                .collect()
        };
        let listen = addrs("listen", &swarm.listen)?;
        ensure!(
            !listen.is_empty(),
            "[swarm] listen is empty: the node needs at least one address to listen on"
        );
        let limits = Limits {
            low_water: swarm.low_water,
            high_water: swarm.high_water,
            grace_period: Duration::from_secs(swarm.grace_period_sec),
            max_pending: swarm.max_pending,
            max_per_peer: swarm.max_per_peer,
            max_memory_bytes: match swarm.max_memory_mib {
                0 => None,
                mib => Some(
                    usize::try_from(mib.saturating_mul(1 << 20))
                        .context("[swarm] max_memory_mib is too large")?,
                ),
            },
        };
        ensure!(
            limits.high_water > 0 && limits.low_water < limits.high_water,
            "[swarm] low_water ({}) must be below high_water ({}), and high_water above 0",
            limits.low_water,
            limits.high_water
        );
        ensure!(
            limits.max_pending > 0 && limits.max_per_peer > 0,
            "[swarm] max_pending and max_per_peer must be at least 1"
        );
        ensure!(
            routing.provide_concurrency > 0 && routing.provide_queue > 0,
            "[routing] provide_concurrency and provide_queue must be at least 1"
        );
        ensure!(
            routing.fetch_timeout_sec > 0 && routing.fetch_concurrency > 0,
            "[routing] fetch_timeout_sec and fetch_concurrency must be at least 1"
        );
        ensure!(
            routing.reprovide_interval_sec >= 60,
            "[routing] reprovide_interval_sec must be at least 60"
        );
        if swarm.hole_punching && !swarm.relay_client {
            bail!(
                "[swarm] hole_punching needs relay_client = true (it upgrades relayed connections)"
            );
        }
        Ok(Self {
            listen,
            announce: addrs("announce", &swarm.announce)?,
            bootstrap: peer_addrs("bootstrap", &swarm.bootstrap)?,
            peering: peer_addrs("peering", &swarm.peering)?,
            mdns: swarm.mdns,
            upnp: swarm.upnp,
            autonat: swarm.autonat,
            relay_client: swarm.relay_client,
            hole_punching: swarm.hole_punching,
            kad_mode: swarm.kad_mode,
            limits,
            providing: Providing {
                strategy: routing.provide_strategy,
                interval: Duration::from_secs(routing.reprovide_interval_sec),
                concurrency: routing.provide_concurrency,
                queue: routing.provide_queue,
            },
            fetching: Fetching {
                timeout: Duration::from_secs(routing.fetch_timeout_sec),
                concurrency: routing.fetch_concurrency,
            },
            bitswap_rate: (swarm.bitswap_blocks_per_sec_per_peer > 0)
                .then_some(swarm.bitswap_blocks_per_sec_per_peer),
            transfer: transfer_limits(transfer)?,
            pubsub: Pubsub::new(&Config::default().pubsub)?,
        })
    }

    /// The same settings with `[pubsub]` from the configuration (the defaults otherwise).
    pub(crate) fn with_pubsub(mut self, pubsub: &PubsubConfig) -> Result<Self> {
        self.pubsub = Pubsub::new(pubsub)?;
        Ok(self)
    }
}

fn transfer_limits(t: &TransferConfig) -> Result<transfer::Config> {
    ensure!(
        t.max_served_per_peer > 0 && t.max_served > 0 && t.max_fetches > 0,
        "[transfer] max_served_per_peer, max_served and max_fetches must be at least 1"
    );
    ensure!(
        t.stall_timeout_sec > 0,
        "[transfer] stall_timeout_sec must be at least 1"
    );
    // One block (with its CID) must fit; the semaphore counting the bytes holds u32::MAX / 2.
    ensure!(
        (1..=1024).contains(&t.max_in_flight_mib),
        "[transfer] max_in_flight_mib ({}) must be between 1 and 1024",
        t.max_in_flight_mib
    );
    Ok(transfer::Config {
        max_served_per_peer: t.max_served_per_peer,
        max_served: t.max_served,
        max_fetches: t.max_fetches,
        max_in_flight_bytes: t.max_in_flight_mib << 20,
        stall_timeout: Duration::from_secs(t.stall_timeout_sec),
        max_resumes: t.max_resumes,
        serve_bytes_per_sec: std::num::NonZeroU64::new(t.serve_bytes_per_sec),
    })
}

fn parse_addr(text: &str) -> Result<Multiaddr> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("{text:?} is not a multiaddr: {e}"))
}

/// The peer ID at the end of `addr` (`.../p2p/<id>`), and the address without it.
pub(crate) fn split_peer(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut addr = addr.clone();
    match addr.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, addr)),
        _ => None,
    }
}

/// Addresses that must name their peer, grouped by peer in first-seen order.
fn peer_addrs(key: &str, list: &[String]) -> Result<Vec<(PeerId, Vec<Multiaddr>)>> {
    let mut order = Vec::new();
    let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
    for text in list {
        let addr = parse_addr(text).with_context(|| format!("[swarm] {key}"))?;
        let Some((peer, transport)) = split_peer(&addr) else {
            bail!("[swarm] {key}: {text:?} does not end in /p2p/<peer id>");
        };
        let entry = by_peer.entry(peer).or_insert_with(|| {
            order.push(peer);
            Vec::new()
        });
        if !transport.is_empty() {
            entry.push(transport);
        }
    }
    Ok(order
        .into_iter()
        .map(|p| {
            let addrs = by_peer.remove(&p).unwrap_or_default();
            (p, addrs)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_parse() {
        let c = Config::default();
        let s = Settings::new(&c.swarm, &c.routing, &c.transfer).unwrap();
        assert_eq!(s.listen.len(), 4);
        // The two addresses of the same bootstrap peer are grouped.
        assert_eq!(s.bootstrap.len(), 6);
        assert!(s.bootstrap.iter().any(|(_, a)| a.len() == 2));
        assert!(s.peering.is_empty());
        // The documented defaults are the transfer's own.
        assert_eq!(s.transfer, super::transfer::Config::default());
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = Config::default();
        let mut swarm = c.swarm.clone();
        swarm.peering = vec!["/ip4/127.0.0.1/tcp/4001".into()];
        let err = format!(
            "{:#}",
            Settings::new(&swarm, &c.routing, &c.transfer).unwrap_err()
        );
        assert!(err.contains("peering") && err.contains("/p2p/"), "{err}");

        let mut swarm = c.swarm.clone();
        swarm.listen = vec!["tcp://nope".into()];
        let err = format!(
            "{:#}",
            Settings::new(&swarm, &c.routing, &c.transfer).unwrap_err()
        );
        assert!(
            err.contains("listen") && err.contains("not a multiaddr"),
            "{err}"
        );

        let mut swarm = c.swarm.clone();
        swarm.low_water = swarm.high_water;
        assert!(Settings::new(&swarm, &c.routing, &c.transfer).is_err());

        let mut transfer = c.transfer.clone();
        transfer.max_fetches = 0;
        let err = format!(
            "{:#}",
            Settings::new(&c.swarm, &c.routing, &transfer).unwrap_err()
        );
        assert!(err.contains("[transfer] max_served_per_peer"), "{err}");
    }
}
