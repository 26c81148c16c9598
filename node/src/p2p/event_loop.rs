//! The task that owns the swarm: it answers [`Command`]s, reacts to swarm events, keeps the
//! peering peers connected and the connection count between the water marks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use base64::Engine as _;
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::identity::PublicKey;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, identify, mdns, relay};
use stargate_http_gateway::{ConnectedPeer, Direction, NetworkError, PeerIdentity};
use stargate_protocol::{Block, Cid};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::behaviour::{
    Behaviour, BehaviourEvent, KAD_PROTOCOL, PROTOCOL_VERSION, agent_version, is_stargate_agent,
};
use super::bitswap::{self, WantError};
use super::metrics::Metrics;
use super::settings::Settings;
use super::{Command, FoundProvider};

/// How often the connection manager, the peering dials and the record store are looked after.
const TICK: Duration = Duration::from_secs(5);
/// Peering redials back off from the first value, doubling up to the second.
const PEERING_BACKOFF: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(600));
/// Observed addresses remembered for `id`.
const MAX_OBSERVED: usize = 8;
/// Relays listened through at once while unreachable.
const MAX_RELAYS: usize = 2;
/// `find_providers` queries running at once; more are refused.
const MAX_PROVIDER_QUERIES: usize = 256;
/// Provide queries running at once (the reprovider keeps below this by itself).
const MAX_PROVIDE_QUERIES: usize = 1024;
/// A peer that sent a corrupt block or a malformed message is refused for this long.
const BAN: Duration = Duration::from_secs(600);
/// Banned peers remembered at once; past this the oldest ban is lifted early.
const MAX_BANNED: usize = 1024;
/// Questions "is this peer a Stargate node?" waiting for identify messages; more are answered
/// "no" at once.
const MAX_IDENTIFY_WAITERS: usize = 1024;

/// One connection to a peer.
#[derive(Debug)]
struct Connection {
    id: ConnectionId,
    remote: Multiaddr,
    direction: Direction,
    since: Instant,
}

/// What we know of a connected peer.
#[derive(Debug, Default)]
struct Peer {
    connections: Vec<Connection>,
    info: Option<identify::Info>,
    rtt: Option<Duration>,
}

/// A peering peer: kept connected.
#[derive(Debug)]
struct Peering {
    addrs: Vec<Multiaddr>,
    next_dial: Instant,
    backoff: Duration,
}

/// A running `find_providers`.
#[derive(Debug)]
struct ProvidersQuery {
    found: mpsc::Sender<FoundProvider>,
    seen: HashSet<PeerId>,
    limit: usize,
    dial: bool,
}

/// A block wanted over Bitswap, and who waits for it.
#[derive(Debug, Default)]
struct Wanted {
    waiters: Vec<oneshot::Sender<Result<Block, NetworkError>>>,
    /// Peers asked when the want began that have not yet said they lack the block.
    asked: HashSet<PeerId>,
    /// Told once `asked` is empty: time to look for providers.
    exhausted: Vec<oneshot::Sender<()>>,
}

impl Wanted {
    /// Drops waiters that went away; whether any remain.
    fn has_waiters(&mut self) -> bool {
        self.waiters.retain(|w| !w.is_closed());
        !self.waiters.is_empty()
    }

    fn peer_lacks(&mut self, peer: &PeerId) {
        if self.asked.remove(peer) && self.asked.is_empty() {
            for e in self.exhausted.drain(..) {
                let _ = e.send(());
            }
        }
    }
}

/// Whether AutoNAT found us reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reachability {
    Unknown,
    Public,
    Private,
}

pub(super) struct EventLoop {
    swarm: Swarm<Behaviour>,
    public_key: PublicKey,
    commands: mpsc::Receiver<Command>,
    settings: Settings,
    metrics: Metrics,
    shutdown: CancellationToken,
    peers: HashMap<PeerId, Peer>,
    peering: HashMap<PeerId, Peering>,
    dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, NetworkError>>>,
    provider_queries: HashMap<QueryId, ProvidersQuery>,
    provide_queries: HashMap<QueryId, oneshot::Sender<Result<(), NetworkError>>>,
    observed: VecDeque<Multiaddr>,
    reachability: Reachability,
    relay_listeners: HashMap<ListenerId, PeerId>,
    wants: HashMap<Cid, Wanted>,
    /// Bitswap's counters when the metrics were last set.
    bitswap_stats: bitswap::Stats,
    /// Misbehaving peers, until when they are refused.
    banned: VecDeque<(PeerId, Instant)>,
    /// Who waits to know whether a peer is a Stargate node, until it identifies itself.
    identify_waiters: HashMap<PeerId, Vec<oneshot::Sender<Option<bool>>>>,
}

impl EventLoop {
    /// Starts listening and dials the bootstrap and peering peers.
    pub(super) fn new(
        mut swarm: Swarm<Behaviour>,
        public_key: PublicKey,
        commands: mpsc::Receiver<Command>,
        settings: Settings,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        let mut listening = 0;
        for addr in &settings.listen {
            match swarm.listen_on(addr.clone()) {
                Ok(_) => listening += 1,
                Err(e) => tracing::warn!(%addr, error = %e, "cannot listen"),
            }
        }
        if listening == 0 {
            bail!(
                "could not listen on any [swarm] listen address ({}): is another node using the port?",
                list(&settings.listen)
            );
        }
        for addr in &settings.announce {
            swarm.add_external_address(addr.clone());
        }
        for (peer, addrs) in &settings.bootstrap {
            for addr in addrs {
                swarm.behaviour_mut().kad.add_address(peer, addr.clone());
            }
            let dial = DialOpts::peer_id(*peer).addresses(addrs.clone()).build();
            if let Err(e) = swarm.dial(dial) {
                tracing::debug!(%peer, error = %e, "bootstrap dial failed");
            }
        }
        if !settings.bootstrap.is_empty() {
            // Fails only with an empty routing table, which the bootstrap peers just filled.
            let _ = swarm.behaviour_mut().kad.bootstrap();
        }
        let now = Instant::now();
        let peering = settings
            .peering
            .iter()
            .map(|(peer, addrs)| {
                (
                    *peer,
                    Peering {
                        addrs: addrs.clone(),
                        next_dial: now,
                        backoff: PEERING_BACKOFF.0,
                    },
                )
            })
            .collect();
        Ok(Self {
            swarm,
            public_key,
            commands,
            settings,
            metrics,
            shutdown,
            peers: HashMap::new(),
            peering,
            dials: HashMap::new(),
            provider_queries: HashMap::new(),
            provide_queries: HashMap::new(),
            observed: VecDeque::new(),
            reachability: Reachability::Unknown,
            relay_listeners: HashMap::new(),
            wants: HashMap::new(),
            bitswap_stats: bitswap::Stats::default(),
            banned: VecDeque::new(),
            identify_waiters: HashMap::new(),
        })
    }

    pub(super) async fn run(mut self) {
        self.dial_peering();
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

    fn on_tick(&mut self) {
        self.drop_abandoned_wants();
        self.lift_bans(Instant::now());
        self.trim();
        self.dial_peering();
        let records = self.swarm.behaviour_mut().kad.store_mut();
        records.prune(Instant::now());
        let (held, refused) = (records.len(), records.refused());
        let routing_table = self.routing_table_size();
        self.metrics
            .set_counts(self.connection_count(), routing_table, held, refused);
        let bitswap = self.swarm.behaviour().bitswap.stats();
        self.metrics.set_bitswap(&self.bitswap_stats, &bitswap);
        self.bitswap_stats = bitswap;
        if self.reachability == Reachability::Private {
            self.listen_through_relays();
        }
    }

    // ---- commands -------------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Identity { peer, reply } => {
                let answer = match peer {
                    None => Ok(self.own_identity()),
                    Some(p) if p == *self.swarm.local_peer_id() => Ok(self.own_identity()),
                    Some(p) => self.peer_identity(&p),
                };
                let _ = reply.send(answer);
            }
            Command::Connect { addr, reply } => self.connect(addr, reply),
            Command::Disconnect { peer, reply } => {
                let answer = self
                    .swarm
                    .disconnect_peer_id(peer)
                    .map_err(|()| NetworkError::Failed(format!("not connected to {peer}")));
                let _ = reply.send(answer);
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.connected_peers());
            }
            Command::FindProviders {
                key,
                limit,
                dial,
                found,
            } => {
                if self.provider_queries.len() >= MAX_PROVIDER_QUERIES {
                    tracing::warn!("too many provider queries at once; refusing one");
                    return;
                }
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.provider_queries.insert(
                    id,
                    ProvidersQuery {
                        found,
                        seen: HashSet::new(),
                        limit,
                        dial,
                    },
                );
            }
            Command::Provide { key, reply } => {
                if self.routing_table_size() == 0 {
                    let _ = reply.send(Err(NetworkError::Failed(
                        "cannot provide: no peers in the DHT routing table (connect to the network first)"
                            .into(),
                    )));
                    return;
                }
                if self.provide_queries.len() >= MAX_PROVIDE_QUERIES {
                    let _ = reply.send(Err(NetworkError::Failed(
                        "too many provide queries at once; try again later".into(),
                    )));
                    return;
                }
                match self.swarm.behaviour_mut().kad.start_providing(key) {
                    Ok(id) => {
                        self.provide_queries.insert(id, reply);
                    }
                    Err(e) => {
                        let _ =
                            reply.send(Err(NetworkError::Failed(format!("cannot provide: {e}"))));
                    }
                }
            }
            Command::RoutingTableSize { reply } => {
                let _ = reply.send(self.routing_table_size());
            }
            Command::Want {
                cid,
                block,
                exhausted,
            } => self.want(cid, block, exhausted),
            Command::AddPeers { cid, peers } => {
                if self.wants.contains_key(&cid) {
                    self.swarm.behaviour_mut().bitswap.add_peers(&cid, &peers);
                }
            }
            Command::StargatePeers { reply } => {
                let (mut stargate, mut pending) = (Vec::new(), Vec::new());
                for (id, p) in &self.peers {
                    match &p.info {
                        Some(i) if is_stargate_agent(&i.agent_version) => stargate.push(*id),
                        Some(_) => {}
                        None => pending.push(*id),
                    }
                }
                let _ = reply.send((stargate, pending));
            }
            Command::IsStargate { peer, reply } => self.is_stargate(peer, reply),
            Command::Abandoned { cid } => {
                if let Some(w) = self.wants.get_mut(&cid)
                    && !w.has_waiters()
                {
                    self.wants.remove(&cid);
                    self.swarm.behaviour_mut().bitswap.cancel(&cid);
                }
            }
        }
    }

    /// Asks every connected peer for `cid` (Bitswap asks one for the block and the others
    /// whether they have it).
    fn want(
        &mut self,
        cid: Cid,
        block: oneshot::Sender<Result<Block, NetworkError>>,
        exhausted: oneshot::Sender<()>,
    ) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        if let Err(e) = self.swarm.behaviour_mut().bitswap.want(cid, &peers) {
            let error = match e {
                WantError::Unsupported { .. } => NetworkError::Invalid {
                    input: cid.to_string(),
                    reason: e.to_string(),
                },
                _ => NetworkError::Failed(e.to_string()),
            };
            let _ = block.send(Err(error));
            return;
        }
        let wanted = self.wants.entry(cid).or_default();
        if wanted.waiters.is_empty() {
            wanted.asked = peers.into_iter().collect();
        }
        wanted.waiters.push(block);
        if wanted.asked.is_empty() {
            let _ = exhausted.send(());
        } else {
            wanted.exhausted.push(exhausted);
        }
    }

    fn is_stargate(&mut self, peer: PeerId, reply: oneshot::Sender<Option<bool>>) {
        let Some(state) = self.peers.get(&peer) else {
            let _ = reply.send(None);
            return;
        };
        if let Some(info) = &state.info {
            let _ = reply.send(Some(is_stargate_agent(&info.agent_version)));
            return;
        }
        if self.identify_waiters.len() >= MAX_IDENTIFY_WAITERS {
            self.identify_waiters
                .retain(|_, w| w.iter().any(|r| !r.is_closed()));
        }
        if self.identify_waiters.len() >= MAX_IDENTIFY_WAITERS {
            let _ = reply.send(Some(false));
            return;
        }
        self.identify_waiters.entry(peer).or_default().push(reply);
    }

    /// Answers who waited to know whether `peer` is a Stargate node.
    fn answer_identify_waiters(&mut self, peer: &PeerId, stargate: Option<bool>) {
        for reply in self.identify_waiters.remove(peer).unwrap_or_default() {
            let _ = reply.send(stargate);
        }
    }

    /// Withdraws the wants nobody waits for any more.
    fn drop_abandoned_wants(&mut self) {
        let mut abandoned = Vec::new();
        self.wants.retain(|cid, w| {
            let keep = w.has_waiters();
            if !keep {
                abandoned.push(*cid);
            }
            keep
        });
        for cid in abandoned {
            self.swarm.behaviour_mut().bitswap.cancel(&cid);
        }
    }

    /// Refuses every connection with `peer` for [`BAN`] (the DHT would otherwise dial it again).
    fn ban(&mut self, peer: PeerId) {
        if self.banned.len() >= MAX_BANNED
            && let Some((oldest, _)) = self.banned.pop_front()
        {
            self.swarm.behaviour_mut().banned.unblock_peer(oldest);
        }
        self.banned.retain(|(p, _)| *p != peer);
        self.banned.push_back((peer, Instant::now() + BAN));
        self.swarm.behaviour_mut().banned.block_peer(peer);
    }

    fn lift_bans(&mut self, now: Instant) {
        while let Some(&(peer, until)) = self.banned.front() {
            if until > now {
                return;
            }
            self.banned.pop_front();
            self.swarm.behaviour_mut().banned.unblock_peer(peer);
        }
    }

    fn on_bitswap_event(&mut self, event: bitswap::Event) {
        match event {
            bitswap::Event::Block { block, from } => {
                tracing::trace!(cid = %block.cid(), peer = %from, "block arrived");
                if let Some(w) = self.wants.remove(block.cid()) {
                    for waiter in w.waiters {
                        let _ = waiter.send(Ok(block.clone()));
                    }
                }
            }
            bitswap::Event::DontHave { cid, peer } => {
                if let Some(w) = self.wants.get_mut(&cid) {
                    w.peer_lacks(&peer);
                }
            }
            bitswap::Event::Have { cid, peer } => {
                tracing::trace!(%cid, %peer, "peer has a wanted block");
            }
            bitswap::Event::Misbehaved { peer, reason } => {
                tracing::info!(%peer, %reason, ban = ?BAN, "banned a misbehaving Bitswap peer");
                for w in self.wants.values_mut() {
                    w.peer_lacks(&peer);
                }
                self.ban(peer);
            }
        }
    }

    fn connect(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, NetworkError>>) {
        let dial = match super::settings::split_peer(&addr) {
            Some((peer, transport)) => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(peer));
                    return;
                }
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, transport.clone());
                DialOpts::peer_id(peer)
                    .addresses(vec![transport])
                    .condition(PeerCondition::Always)
                    .build()
            }
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let id = dial.connection_id();
        match self.swarm.dial(dial) {
            Ok(()) => {
                self.dials.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(NetworkError::Failed(format!(
                    "connect {addr} failure: {e}"
                ))));
            }
        }
    }

    fn own_identity(&self) -> PeerIdentity {
        let local = *self.swarm.local_peer_id();
        let mut addrs: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        for a in self.swarm.external_addresses().chain(self.observed.iter()) {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        PeerIdentity::new(
            local.to_string(),
            encode_key(&self.public_key),
            addrs.iter().map(|a| with_peer(a, local)).collect(),
            agent_version(),
            PROTOCOL_VERSION.to_owned(),
            self.swarm.behaviour().protocols(),
        )
    }

    fn peer_identity(&self, peer: &PeerId) -> Result<PeerIdentity, NetworkError> {
        let info = self
            .peers
            .get(peer)
            .and_then(|p| p.info.as_ref())
            .ok_or_else(|| {
                NetworkError::Failed(format!(
                    "{peer} is not connected or has not identified itself yet"
                ))
            })?;
        Ok(PeerIdentity::new(
            peer.to_string(),
            encode_key(&info.public_key),
            info.listen_addrs
                .iter()
                .map(|a| with_peer(a, *peer))
                .collect(),
            info.agent_version.clone(),
            info.protocol_version.clone(),
            info.protocols.iter().map(ToString::to_string).collect(),
        ))
    }

    fn connected_peers(&self) -> Vec<ConnectedPeer> {
        let mut out: Vec<_> = self
            .peers
            .iter()
            .flat_map(|(id, p)| {
                p.connections.iter().map(move |c| {
                    ConnectedPeer::new(id.to_string(), c.remote.to_string(), c.direction, p.rtt)
                })
            })
            .collect();
        out.sort_by(|a, b| a.peer.cmp(&b.peer).then(a.addr.cmp(&b.addr)));
        out
    }

    fn routing_table_size(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum()
    }

    /// Addresses of `peer` we know: its connections, what it announced, its DHT entry.
    fn known_addrs(&mut self, peer: &PeerId) -> Vec<Multiaddr> {
        let mut addrs = Vec::new();
        if let Some(p) = self.peers.get(peer) {
            addrs.extend(p.connections.iter().map(|c| c.remote.clone()));
            if let Some(info) = &p.info {
                addrs.extend(info.listen_addrs.iter().cloned());
            }
        }
        if let Some(bucket) = self.swarm.behaviour_mut().kad.kbucket(*peer) {
            for entry in bucket.iter() {
                if entry.node.key.preimage() == peer {
                    addrs.extend(entry.node.value.iter().cloned());
                }
            }
        }
        let mut seen = HashSet::new();
        addrs.retain(|a| seen.insert(a.clone()));
        addrs
    }

    // ---- swarm events ---------------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let (mut remote, direction) = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => {
                        (address.clone(), Direction::Outbound)
                    }
                    ConnectedPoint::Listener { send_back_addr, .. } => {
                        (send_back_addr.clone(), Direction::Inbound)
                    }
                };
                // Dialled addresses may end in the peer ID; peers are listed with it apart.
                if matches!(remote.iter().last(), Some(Protocol::P2p(_))) {
                    remote.pop();
                }
                tracing::debug!(peer = %peer_id, %remote, ?direction, "connected");
                self.peers
                    .entry(peer_id)
                    .or_default()
                    .connections
                    .push(Connection {
                        id: connection_id,
                        remote,
                        direction,
                        since: Instant::now(),
                    });
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if let Some(p) = self.peering.get_mut(&peer_id) {
                    p.backoff = PEERING_BACKOFF.0;
                }
                if self.connection_count() >= self.settings.limits.high_water as usize {
                    self.trim();
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(peer = %peer_id, cause = ?cause, "connection closed");
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    p.connections.retain(|c| c.id != connection_id);
                }
                if num_established == 0 {
                    self.peers.remove(&peer_id);
                    self.answer_identify_waiters(&peer_id, None);
                    for w in self.wants.values_mut() {
                        w.peer_lacks(&peer_id);
                    }
                    if let Some(p) = self.peering.get_mut(&peer_id) {
                        // Redial soon, not at once: the peer may be restarting.
                        p.next_dial = Instant::now() + p.backoff;
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(peer = ?peer_id, error = %error, "dial failed");
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetworkError::Failed(format!("dial failed: {error}"))));
                }
                if let Some(p) = peer_id.and_then(|p| self.peering.get_mut(&p)) {
                    p.next_dial = Instant::now() + p.backoff;
                    p.backoff = (p.backoff * 2).min(PEERING_BACKOFF.1);
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
            } => {
                if let Some(relay) = self.relay_listeners.remove(&listener_id) {
                    tracing::info!(%relay, ?reason, "stopped listening through relay");
                }
            }
            SwarmEvent::NewExternalAddrCandidate { address }
                if !self.observed.contains(&address) =>
            {
                if self.observed.len() >= MAX_OBSERVED {
                    self.observed.pop_front();
                }
                self.observed.push_back(address);
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "reachable at");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identified(peer_id, info);
            }
            BehaviourEvent::Ping(e) => {
                if let (Ok(rtt), Some(p)) = (e.result, self.peers.get_mut(&e.peer)) {
                    p.rtt = Some(rtt);
                }
            }
            BehaviourEvent::Kad(e) => self.on_kad_event(e),
            BehaviourEvent::Bitswap(e) => self.on_bitswap_event(e),
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { old, new }) => {
                tracing::info!(?old, ?new, "reachability changed");
                self.reachability = match new {
                    autonat::NatStatus::Public(_) => Reachability::Public,
                    autonat::NatStatus::Private => Reachability::Private,
                    autonat::NatStatus::Unknown => Reachability::Unknown,
                };
                match self.reachability {
                    Reachability::Private => self.listen_through_relays(),
                    Reachability::Public => {
                        for id in std::mem::take(&mut self.relay_listeners).into_keys() {
                            self.swarm.remove_listener(id);
                        }
                    }
                    Reachability::Unknown => {}
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                    if !self.swarm.is_connected(&peer)
                        && self.connection_count() < self.settings.limits.low_water as usize
                    {
                        let _ = self.swarm.dial(
                            DialOpts::peer_id(peer)
                                .condition(PeerCondition::DisconnectedAndNotDialing)
                                .build(),
                        );
                    }
                }
            }
            BehaviourEvent::Relay(e) => tracing::debug!(event = ?e, "relay client"),
            BehaviourEvent::Dcutr(e) => tracing::debug!(event = ?e, "hole punching"),
            BehaviourEvent::Upnp(e) => tracing::info!(event = ?e, "UPnP"),
            _ => {}
        }
    }

    fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        let via: Vec<Multiaddr> = state.connections.iter().map(|c| c.remote.clone()).collect();
        let dht_server = info.protocols.contains(&KAD_PROTOCOL);
        let relay = info.protocols.contains(&relay::HOP_PROTOCOL_NAME);
        if dht_server {
            for addr in info
                .listen_addrs
                .iter()
                .filter(|a| via.iter().any(|v| usable(a, v)))
            {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
            }
        }
        let stargate = is_stargate_agent(&info.agent_version);
        state.info = Some(info);
        self.answer_identify_waiters(&peer, Some(stargate));
        if relay && self.reachability == Reachability::Private {
            self.listen_through_relays();
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            if let kad::Event::ModeChanged { new_mode } = event {
                tracing::info!(mode = %new_mode, "DHT mode changed");
            }
            return;
        };
        match result {
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                self.on_providers(id, providers);
                if step.last {
                    self.provider_queries.remove(&id);
                }
            }
            QueryResult::GetProviders(_) => {
                // Finished (or timed out): dropping the sender ends the caller's stream.
                self.provider_queries.remove(&id);
            }
            QueryResult::StartProviding(result) => {
                if let Some(reply) = self.provide_queries.remove(&id) {
                    let _ = reply.send(
                        result
                            .map(|_| ())
                            .map_err(|e| NetworkError::Failed(format!("providing failed: {e}"))),
                    );
                }
            }
            QueryResult::Bootstrap(Ok(ok)) if ok.num_remaining == 0 => {
                tracing::debug!(peers = self.routing_table_size(), "DHT bootstrap done");
            }
            _ => {}
        }
    }

    fn on_providers(&mut self, id: QueryId, providers: HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        let Some(query) = self.provider_queries.get_mut(&id) else {
            return;
        };
        let mut fresh = Vec::new();
        for p in providers {
            if query.seen.len() >= query.limit {
                break;
            }
            if p != local && query.seen.insert(p) {
                fresh.push(p);
            }
        }
        let dial = query.dial;
        let limit_reached = query.seen.len() >= query.limit;
        for peer in fresh {
            if dial && !self.swarm.is_connected(&peer) {
                // The query still holds the addresses the providers came with; kad hands them
                // to this dial.
                let _ = self.swarm.dial(
                    DialOpts::peer_id(peer)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build(),
                );
            }
            let addrs = self.known_addrs(&peer);
            let Some(query) = self.provider_queries.get_mut(&id) else {
                return;
            };
            match query.found.try_send(FoundProvider { peer, addrs }) {
                Ok(()) => {}
                // A slow reader loses providers rather than growing a queue.
                Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.finish_providers_query(id);
                    return;
                }
            }
        }
        if limit_reached {
            self.finish_providers_query(id);
        }
    }

    fn finish_providers_query(&mut self, id: QueryId) {
        self.provider_queries.remove(&id);
        if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            q.finish();
        }
    }

    // ---- connection management ------------------------------------------------------------

    fn connection_count(&self) -> usize {
        self.peers.values().map(|p| p.connections.len()).sum()
    }

    /// At the high water mark, closes peers (newest first, none within the grace period, no
    /// peering peer) until the low water mark is reached.
    fn trim(&mut self) {
        let limits = self.settings.limits;
        let count = self.connection_count();
        if count < limits.high_water as usize {
            return;
        }
        let now = Instant::now();
        let mut candidates: Vec<(Instant, PeerId, usize)> = self
            .peers
            .iter()
            .filter(|(id, _)| !self.peering.contains_key(id))
            .filter_map(|(id, p)| {
                let newest = p.connections.iter().map(|c| c.since).max()?;
                (now.duration_since(newest) >= limits.grace_period).then_some((
                    newest,
                    *id,
                    p.connections.len(),
                ))
            })
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut excess = count - limits.low_water as usize;
        let mut closed = 0;
        for (_, peer, n) in candidates {
            if excess == 0 {
                break;
            }
            let _ = self.swarm.disconnect_peer_id(peer);
            excess = excess.saturating_sub(n);
            closed += 1;
        }
        tracing::debug!(connections = count, closed, "trimmed connections");
    }

    fn dial_peering(&mut self) {
        let now = Instant::now();
        let due: Vec<(PeerId, Vec<Multiaddr>)> = self
            .peering
            .iter_mut()
            .filter(|(_, p)| p.next_dial <= now)
            .map(|(id, p)| {
                // Pushed back until the dial's outcome says otherwise.
                p.next_dial = now + PEERING_BACKOFF.1;
                (*id, p.addrs.clone())
            })
            .collect();
        for (peer, addrs) in due {
            if self.swarm.is_connected(&peer) {
                continue;
            }
            let dial = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(dial) {
                tracing::debug!(%peer, error = %e, "peering dial failed");
                if let Some(p) = self.peering.get_mut(&peer) {
                    p.next_dial = now + p.backoff;
                    p.backoff = (p.backoff * 2).min(PEERING_BACKOFF.1);
                }
            }
        }
    }

    /// While unreachable, listens through up to [`MAX_RELAYS`] connected relays.
    fn listen_through_relays(&mut self) {
        if !self.swarm.behaviour().relay.is_enabled() {
            return;
        }
        let using: HashSet<PeerId> = self.relay_listeners.values().copied().collect();
        let candidates: Vec<(PeerId, Multiaddr)> = self
            .peers
            .iter()
            .filter(|(id, _)| !using.contains(id))
            .filter(|(_, p)| {
                p.info
                    .as_ref()
                    .is_some_and(|i| i.protocols.contains(&relay::HOP_PROTOCOL_NAME))
            })
            .filter_map(|(id, p)| {
                p.connections
                    .iter()
                    .find(|c| !is_relayed(&c.remote))
                    .map(|c| (*id, c.remote.clone()))
            })
            .take(MAX_RELAYS.saturating_sub(using.len()))
            .collect();
        for (relay, addr) in candidates {
            let circuit = addr.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
            match self.swarm.listen_on(circuit.clone()) {
                Ok(id) => {
                    tracing::info!(%relay, "listening through relay");
                    self.relay_listeners.insert(id, relay);
                }
                Err(e) => tracing::debug!(%circuit, error = %e, "cannot listen through relay"),
            }
        }
    }
}

/// A public key as Kubo's `id` shows it: protobuf, base64.
fn encode_key(key: &PublicKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.encode_protobuf())
}

fn list(addrs: &[Multiaddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `addr` ending in `/p2p/<peer>`.
fn with_peer(addr: &Multiaddr, peer: PeerId) -> String {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.to_string()
    } else {
        addr.clone().with(Protocol::P2p(peer)).to_string()
    }
}

fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// How far an address reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Loopback,
    Private,
    Global,
}

fn scope(addr: &Multiaddr) -> Scope {
    let ip = addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    });
    match ip {
        Some(ip) if ip.is_loopback() => Scope::Loopback,
        // 100.64.0.0/10 is carrier-grade NAT space.
        Some(IpAddr::V4(ip))
            if ip.is_private()
                || ip.is_link_local()
                || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64) =>
        {
            Scope::Private
        }
        // fc00::/7 unique local, fe80::/10 link local.
        Some(IpAddr::V6(ip))
            if (ip.segments()[0] & 0xfe00) == 0xfc00 || (ip.segments()[0] & 0xffc0) == 0xfe80 =>
        {
            Scope::Private
        }
        // Public IPs, DNS names, relay circuits.
        _ => Scope::Global,
    }
}

/// Whether a peer's announced `addr` is worth putting in the DHT routing table, given that we
/// reach the peer `via` this address: a public peer's private addresses are not (they lead to
/// someone else's LAN), a peer on our LAN or host may use them.
fn usable(addr: &Multiaddr, via: &Multiaddr) -> bool {
    scope(addr) >= scope(via)
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer_id", self.swarm.local_peer_id())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_scopes() {
        let lo = a("/ip4/127.0.0.1/tcp/1");
        let lan = a("/ip4/192.168.1.5/tcp/1");
        let public = a("/ip4/8.8.8.8/tcp/1");
        let ula = a("/ip6/fd00::1/tcp/1");
        assert!(usable(&lo, &lo));
        assert!(usable(&lan, &lo) && usable(&public, &lo));
        assert!(!usable(&lo, &lan) && usable(&lan, &lan));
        assert!(!usable(&lan, &public) && !usable(&ula, &public) && usable(&public, &public));
        assert!(usable(&a("/dns4/example.com/tcp/1"), &public));
    }

    #[test]
    fn peer_suffix_is_added_once() {
        let peer = PeerId::random();
        let bare = a("/ip4/127.0.0.1/tcp/1");
        let full = bare.clone().with(Protocol::P2p(peer));
        assert_eq!(with_peer(&bare, peer), full.to_string());
        assert_eq!(with_peer(&full, peer), full.to_string());
    }
}
