//! The node's composed libp2p behaviour and the swarm built around it: TCP and QUIC v1, noise,
//! yamux, DNS, a circuit-relay client transport, and the protocols below.

use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::{Context, Result};
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, SwarmBuilder, allow_block_list, autonat, connection_limits, dcutr,
    identify, kad, mdns, memory_connection_limits, noise, ping, relay, tcp, upnp, yamux,
};

use stargate_protocol::bitswap::ProtocolVersion;
use stargate_storage::Store;

use super::bandwidth::Bandwidth;
use super::bitswap;
use super::gossip_behaviour::{self, GossipBehaviour};
use super::records::ProviderStore;
use super::settings::Settings;
use crate::config::KadMode;

/// The Amino DHT protocol (the public IPFS DHT).
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");
/// The identify protocol version Kubo and other IPFS nodes announce.
pub(crate) const PROTOCOL_VERSION: &str = "ipfs/0.1.0";
/// Provider records expire after this long (Kubo's amino.DefaultProvideValidity).
const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(48 * 3600);
/// Connections with no stream open close after this long; before that, the connection manager
/// trims by the water marks, as Kubo's does.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Streams per connection (yamux); Kubo's resource manager allows a few hundred.
const MAX_STREAMS: usize = 256;

/// `stargate/<version>`, the agent version we announce.
/// How a Stargate node's identify agent version begins.
const AGENT_PREFIX: &str = "stargate/";

pub(crate) fn agent_version() -> String {
    format!("{AGENT_PREFIX}{}", env!("CARGO_PKG_VERSION"))
}

/// Whether an identify agent version is a Stargate node's (which serves the CAR transfer).
pub(crate) fn is_stargate_agent(agent: &str) -> bool {
    agent.starts_with(AGENT_PREFIX)
}

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    // Bans and limits come first, so that a refused connection reaches no other behaviour's
    // handler.
    pub(crate) banned: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) memory: Toggle<memory_connection_limits::Behaviour>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<ProviderStore>,
    pub(crate) autonat: Toggle<autonat::Behaviour>,
    pub(crate) relay: Toggle<relay::client::Behaviour>,
    pub(crate) dcutr: Toggle<dcutr::Behaviour>,
    pub(crate) upnp: Toggle<upnp::tokio::Behaviour>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    /// The fast CAR transfer between Stargate instances (`transfer/`): plain streams.
    pub(crate) transfer: libp2p_stream::Behaviour,
    pub(crate) bitswap: bitswap::Behaviour,
    /// Gossipsub, Kubo's pubsub (`gossip_behaviour.rs`, driven by `event_loop/gossip.rs`); off with `[pubsub] enabled = false`.
    pub(crate) gossip: Toggle<GossipBehaviour>,
}

/// Builds the swarm (not yet listening).
pub(crate) fn build_swarm(
    keypair: Keypair,
    settings: &Settings,
    store: Store,
    bandwidth: &Bandwidth,
) -> Result<Swarm<Behaviour>> {
    let yamux = || {
        let mut config = yamux::Config::default();
        config.set_max_num_streams(MAX_STREAMS);
        config
    };
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux,
        )
        .context("setting up the TCP transport")?
        .with_quic()
        .with_dns()
        .context("setting up DNS resolution")?
        .with_relay_client(noise::Config::new, yamux)
        .context("setting up the relay client transport")?
        .with_bandwidth_metrics(&mut bandwidth.registry())
        .with_behaviour(|key, relay_client| behaviour(key, relay_client, settings, store))
        .map_err(|e| anyhow::anyhow!("setting up the network behaviour: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}

fn behaviour(
    key: &Keypair,
    relay_client: relay::client::Behaviour,
    settings: &Settings,
    store: Store,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let peer_id = key.public().to_peer_id();
    let limits = settings.limits;
    let connection_limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(limits.high_water))
        .with_max_pending_incoming(Some(limits.max_pending))
        .with_max_pending_outgoing(Some(limits.max_pending))
        .with_max_established_per_peer(Some(limits.max_per_peer));

    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config
        .set_provider_record_ttl(Some(PROVIDER_RECORD_TTL))
        // The reprovider (providing.rs) republishes from the block store.
        .set_provider_publication_interval(None)
        // Value records are not stored (see records.rs), so there is nothing to replicate.
        .set_record_ttl(None)
        .set_replication_interval(None)
        .set_publication_interval(None)
        .set_replication_factor(NonZeroUsize::new(20).unwrap_or(NonZeroUsize::MIN));
    let mut kad = kad::Behaviour::with_config(peer_id, ProviderStore::new(peer_id), kad_config);
    kad.set_mode(match settings.kad_mode {
        KadMode::Auto => None,
        KadMode::Server => Some(kad::Mode::Server),
        KadMode::Client => Some(kad::Mode::Client),
    });

    let mdns = if settings.mdns {
        match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "mDNS is unavailable; continuing without it");
                None
            }
        }
    } else {
        None
    };

    Ok(Behaviour {
        banned: allow_block_list::Behaviour::default(),
        limits: connection_limits::Behaviour::new(connection_limits),
        memory: limits
            .max_memory_bytes
            .map(memory_connection_limits::Behaviour::with_max_bytes)
            .into(),
        identify: identify::Behaviour::new(
            identify::Config::new(PROTOCOL_VERSION.to_owned(), key.public())
                .with_agent_version(agent_version())
                .with_push_listen_addr_updates(true),
        ),
        ping: ping::Behaviour::default(),
        kad,
        autonat: settings
            .autonat
            .then(|| autonat::Behaviour::new(peer_id, autonat::Config::default()))
            .into(),
        relay: settings.relay_client.then_some(relay_client).into(),
        dcutr: settings
            .hole_punching
            .then(|| dcutr::Behaviour::new(peer_id))
            .into(),
        upnp: settings.upnp.then(upnp::tokio::Behaviour::default).into(),
        mdns: mdns.into(),
        transfer: libp2p_stream::Behaviour::new(),
        bitswap: bitswap::Behaviour::new(
            store,
            bitswap::Config {
                blocks_per_second_per_peer: settings.bitswap_rate,
                ..bitswap::Config::default()
            },
        ),
        gossip: gossip_behaviour::behaviour(key, &settings.pubsub)?.into(),
    })
}

impl Behaviour {
    /// The protocols this node answers, as `id` lists them.
    pub(crate) fn protocols(&self) -> Vec<String> {
        let mut list = vec![
            identify::PROTOCOL_NAME.to_string(),
            identify::PUSH_PROTOCOL_NAME.to_string(),
            ping::PROTOCOL_NAME.to_string(),
            super::transfer::PROTOCOL.to_string(),
        ];
        list.extend(ProtocolVersion::PROTOCOLS.iter().map(ToString::to_string));
        if self.kad.mode() == kad::Mode::Server {
            list.push(KAD_PROTOCOL.to_string());
        }
        if self.autonat.is_enabled() {
            list.push(autonat::DEFAULT_PROTOCOL_NAME.to_string());
        }
        if self.relay.is_enabled() {
            list.push(relay::STOP_PROTOCOL_NAME.to_string());
        }
        if self.dcutr.is_enabled() {
            list.push(dcutr::PROTOCOL_NAME.to_string());
        }
        if self.gossip.is_enabled() {
            list.extend(gossip_behaviour::PROTOCOLS.iter().map(ToString::to_string));
        }
        list.sort();
        list
    }
}
