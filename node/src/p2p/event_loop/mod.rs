//! The task that owns the swarm. It holds the select and the dispatch only: each part below owns
//! its state, takes its own kind of command (`command.rs`) and the swarm and behaviour events
//! that concern it, and is handed what it reads of the other parts.
//!
//! - [`peers`]: connected peers and their connections, dials, the connection limits;
//! - [`peering`]: the peering peers, kept connected;
//! - [`bans`]: misbehaving peers, refused for a while;
//! - [`relays`]: reachability, and listening through relays while unreachable;
//! - [`identify`]: our identity and the peers', which of them are Stargate nodes;
//! - [`addresses`]: our own addresses and how far an address reaches;
//! - [`dht`]: provider searches, provides, the routing table and the record store;
//! - [`wants`]: blocks wanted over Bitswap and who waits for them;
//! - [`gossip`]: gossipsub (Kubo's pubsub): topics, validators, subscribers, publishing.
//!
//! A new protocol is one more part: its module, its kind of command, a field here and its arm in
//! [`EventLoop::on_command`] and [`EventLoop::on_behaviour_event`].

mod addresses;
mod bans;
mod dht;
pub(super) mod gossip;
mod identify;
mod peering;
mod peers;
mod relays;
mod wants;

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use libp2p::identity::PublicKey;
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm, autonat, identify as identify_protocol, mdns};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::addresses::Addresses;
use self::bans::Bans;
use self::dht::Dht;
use self::gossip::Gossip;
use self::identify::Identify;
use self::peering::Peering;
use self::peers::Peers;
use self::relays::Relays;
use self::wants::Wants;
use super::behaviour::{Behaviour, BehaviourEvent};
use super::command::Command;
use super::metrics::Metrics;
use super::settings::Settings;

/// How often the connection manager, the peering dials and the record store are looked after.
const TICK: Duration = Duration::from_secs(5);

pub(super) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    metrics: Metrics,
    shutdown: CancellationToken,
    addresses: Addresses,
    peers: Peers,
    peering: Peering,
    bans: Bans,
    relays: Relays,
    identify: Identify,
    dht: Dht,
    wants: Wants,
    gossip: Gossip,
}

impl EventLoop {
    /// Starts listening and dials the bootstrap peers (the peering peers are dialled by `run`).
    /// `gossip` was started just before the swarm was built.
    pub(super) fn new(
        mut swarm: Swarm<Behaviour>,
        public_key: PublicKey,
        commands: mpsc::Receiver<Command>,
        settings: &Settings,
        gossip: Gossip,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        addresses::listen(&mut swarm, &settings.listen, &settings.announce)?;
        let dht = Dht::bootstrap(&mut swarm, &settings.bootstrap);
        Ok(Self {
            swarm,
            commands,
            metrics,
            shutdown,
            addresses: Addresses::default(),
            peers: Peers::new(settings.limits),
            peering: Peering::new(&settings.peering),
            bans: Bans::default(),
            relays: Relays::new(),
            identify: Identify::new(public_key),
            dht,
            wants: Wants::default(),
            gossip,
        })
    }

    pub(super) async fn run(mut self) {
        self.peering.dial(&mut self.swarm);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
        tracing::info!("network stopped");
    }

    fn on_command(&mut self, command: Command) {
        let swarm = &mut self.swarm;
        match command {
            Command::Peers(c) => self.peers.on_command(swarm, c),
            Command::Identify(c) => {
                self.identify
                    .on_command(swarm, &self.peers, &self.addresses, c);
            }
            Command::Dht(c) => self.dht.on_command(swarm, c),
            Command::Want(c) => self.wants.on_command(swarm, &self.peers, c),
            Command::Gossip(c) => self.gossip.on_command(swarm, c),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        let swarm = &mut self.swarm;
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                self.peering.connected(&peer_id);
                self.peers
                    .connected(swarm, peer_id, connection_id, &endpoint, &self.peering);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.peers
                    .closed(peer_id, connection_id, num_established, cause.as_ref());
                if num_established == 0 {
                    self.identify.disconnected(&peer_id);
                    self.wants.disconnected(&peer_id);
                    self.peering.disconnected(&peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                self.peers.dial_failed(connection_id, peer_id, &error);
                if let Some(peer) = peer_id {
                    self.peering.dial_failed(&peer);
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(remote = %send_back_addr, error = %error, "inbound connection failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => self.relays.listener_closed(listener_id, &reason),
            SwarmEvent::NewExternalAddrCandidate { address } => self.addresses.observed(address),
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "reachable at");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        let swarm = &mut self.swarm;
        match event {
            BehaviourEvent::Identify(identify_protocol::Event::Received {
                peer_id, info, ..
            }) => self.on_identified(peer_id, info),
            BehaviourEvent::Ping(e) => self.peers.on_ping(e),
            BehaviourEvent::Kad(e) => self.dht.on_event(swarm, &self.peers, &self.identify, e),
            BehaviourEvent::Bitswap(e) => {
                if let Some(misbehaving) = self.wants.on_event(e) {
                    self.bans.ban(swarm, misbehaving);
                }
            }
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { old, new }) => {
                self.relays
                    .status_changed(swarm, &self.peers, &self.identify, &old, &new);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                self.peers.discovered(swarm, found);
            }
            BehaviourEvent::Relay(e) => tracing::debug!(event = ?e, "relay client"),
            BehaviourEvent::Dcutr(e) => tracing::debug!(event = ?e, "hole punching"),
            BehaviourEvent::Upnp(e) => tracing::info!(event = ?e, "UPnP"),
            BehaviourEvent::Gossip(e) => self.gossip.on_event(swarm, e),
            _ => {}
        }
    }

    /// Only a connected peer's identity is kept; the DHT and the relays then look at it.
    fn on_identified(&mut self, peer: PeerId, info: identify_protocol::Info) {
        if self.identify.identified(&self.peers, peer, info) {
            let swarm = &mut self.swarm;
            self.dht
                .identified(swarm, &self.peers, &self.identify, &peer);
            self.relays
                .identified(swarm, &self.peers, &self.identify, &peer);
        }
    }

    fn on_tick(&mut self) {
        let swarm = &mut self.swarm;
        self.wants.on_tick(swarm, &self.metrics);
        self.bans.lift(swarm, Instant::now());
        self.peers.on_tick(swarm, &self.peering, &self.metrics);
        self.peering.dial(swarm);
        self.dht.on_tick(swarm, &self.metrics);
        self.relays.on_tick(swarm, &self.peers, &self.identify);
        self.gossip.on_tick(swarm);
    }
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer_id", self.swarm.local_peer_id())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}
