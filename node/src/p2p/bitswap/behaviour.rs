//! The `NetworkBehaviour`: glues the client, the server and the connection handlers.

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll, Waker};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour,
    NotifyHandler, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use stargate_protocol::Cid;
use stargate_protocol::bitswap::{MAX_MESSAGE_SIZE, Message, ProtocolVersion};
use stargate_storage::Store;

use super::client::{Arrival, Client, ClientLimits};
use super::config::Config;
use super::event::{Event, WantError};
use super::handler::{
    Account, FromBehaviour, Handler, HandlerConfig, Incoming, Outgoing, ToBehaviour,
};
use super::server::{Server, ServerLimits};
#[cfg(test)]
use super::stats::PeerStats;
use super::stats::Stats;
use super::stream::InboundBudget;

#[derive(Debug, Default)]
struct Peer {
    /// Its connections, with the server's bytes queued on each; the first is the one we send on.
    connections: Vec<(ConnectionId, usize)>,
    stats: Counters,
    keep_alive: bool,
    misbehaved: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    bytes_sent: u64,
    bytes_received: u64,
    blocks_sent: u64,
    blocks_received: u64,
    block_bytes_received: u64,
}

impl Counters {
    fn add(&mut self, other: &Counters) {
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.blocks_sent += other.blocks_sent;
        self.blocks_received += other.blocks_received;
        self.block_bytes_received += other.block_bytes_received;
    }
}

/// Bitswap: see the module documentation.
#[derive(Debug)]
pub(crate) struct Behaviour {
    config: Config,
    client: Client,
    server: Server,
    inbound: InboundBudget,
    peers: HashMap<PeerId, Peer>,
    pending: VecDeque<ToSwarm<Event, FromBehaviour>>,
    /// Counters of peers no longer connected.
    past: Counters,
    misbehaving_peers: u64,
    waker: Option<Waker>,
}

impl Behaviour {
    pub(crate) fn new(store: Store, config: Config) -> Self {
        let config = config.checked();
        Self {
            client: Client::new(ClientLimits {
                max_wants: config.max_wants,
                max_wants_per_peer: config.max_wants_per_peer,
                max_block_wants_per_peer: config.max_block_wants_per_peer,
            }),
            server: Server::new(
                store,
                ServerLimits {
                    max_wants_per_peer: config.max_wants_per_peer,
                    max_concurrent_reads: config.max_concurrent_reads,
                    blocks_per_second: config.blocks_per_second_per_peer,
                    max_message_bytes: config.max_message_bytes,
                    max_unsent_bytes_per_peer: config.max_unsent_bytes_per_peer,
                    max_unsent_bytes: config.max_unsent_bytes,
                },
            ),
            inbound: InboundBudget::new(config.max_inbound_bytes),
            config,
            peers: HashMap::new(),
            pending: VecDeque::new(),
            past: Counters::default(),
            misbehaving_peers: 0,
            waker: None,
        }
    }

    /// Asks `peers` for `cid` (want-block to the best, want-have to the others, all with
    /// send-dont-have) and keeps the want until the block arrives or it is cancelled. Wanting a
    /// CID again adds the peers.
    ///
    /// # Errors
    /// [`WantError::Unsupported`] for a CID we cannot verify (or an identity CID, which holds its
    /// block), [`WantError::TooMany`] when `max_wants` blocks are wanted already.
    pub(crate) fn want(&mut self, cid: Cid, peers: &[PeerId]) -> Result<(), WantError> {
        self.client.want(cid, peers)?;
        self.flush();
        Ok(())
    }

    /// More candidates for a want (e.g. providers found later); nothing if `cid` is not wanted.
    pub(crate) fn add_peers(&mut self, cid: &Cid, peers: &[PeerId]) {
        self.client.add_peers(cid, peers);
        self.flush();
    }

    /// Withdraws the want of `cid` from every peer asked.
    pub(crate) fn cancel(&mut self, cid: &Cid) {
        self.client.cancel(cid);
        self.client.redispatch_stalled();
        self.flush();
    }

    /// Counters since start (and, in tests, the ledger of each connected peer).
    pub(crate) fn stats(&self) -> Stats {
        let mut total = self.past;
        for p in self.peers.values() {
            total.add(&p.stats);
        }
        Stats {
            wants: self.client.wants(),
            blocks_received: total.blocks_received,
            block_bytes_received: total.block_bytes_received,
            duplicate_blocks: self.client.duplicates(),
            blocks_sent: total.blocks_sent,
            bytes_sent: total.bytes_sent,
            bytes_received: total.bytes_received,
            misbehaving_peers: self.misbehaving_peers,
            dropped_wants: self.server.dropped_wants(),
            store_errors: self.server.read_errors(),
            #[cfg(test)]
            peers: self.ledgers(),
        }
    }

    #[cfg(test)]
    fn ledgers(&self) -> Vec<PeerStats> {
        let mut peers: Vec<PeerStats> = self
            .peers
            .iter()
            .map(|(peer, p)| PeerStats {
                peer: *peer,
                bytes_sent: p.stats.bytes_sent,
                bytes_received: p.stats.bytes_received,
                blocks_sent: p.stats.blocks_sent,
                blocks_received: p.stats.blocks_received,
                wants_sent: self.client.wants_with(peer),
                wants_received: self.server.wants_of(peer),
            })
            .collect();
        peers.sort_by_key(|p| p.peer);
        peers
    }

    fn handler(&self) -> Handler {
        Handler::new(HandlerConfig {
            max_message_bytes: MAX_MESSAGE_SIZE,
            max_inbound_streams: self.config.max_inbound_streams,
            max_verifying: self.config.max_verifying,
            budget: self.inbound.clone(),
        })
    }

    /// Queues `message` on the peer's first connection.
    fn send(&mut self, peer: PeerId, message: Message, account: Account) {
        let Some(p) = self.peers.get_mut(&peer) else {
            if account.from_server {
                self.server.written(peer, account.bytes);
            }
            return;
        };
        let Some((connection, unsent)) = p.connections.first_mut() else {
            return;
        };
        if account.from_server {
            *unsent += account.bytes;
        }
        self.pending.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(*connection),
            event: FromBehaviour::Send(Box::new(Outgoing { message, account })),
        });
    }

    /// Moves what the client produced (wantlist changes, events, dials) out, and tells handlers
    /// whether their connection is needed: while the peer holds wants of ours or we have its
    /// wants to answer (idle Bitswap streams do not keep a connection).
    fn flush(&mut self) {
        for (peer, entries) in self.client.take_outbox() {
            let message = Message {
                wantlist: entries,
                ..Message::default()
            };
            match message.split(ProtocolVersion::V120, self.config.max_message_bytes) {
                Ok(pieces) => {
                    for piece in pieces {
                        let account = Account {
                            bytes: piece.encoded_len(ProtocolVersion::V120),
                            blocks: 0,
                            from_server: false,
                        };
                        self.send(peer, piece, account);
                    }
                }
                // Entries are small and the limit is above the largest block.
                Err(e) => tracing::error!(error = %e, "cannot fit wantlist entries in a message"),
            }
        }
        while let Some(event) = self.client.next_event() {
            self.pending.push_back(ToSwarm::GenerateEvent(event));
        }
        for peer in self.client.take_dials() {
            self.pending.push_back(ToSwarm::Dial {
                opts: DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
            });
        }
        for (peer, p) in &mut self.peers {
            let needed = self.client.needs(peer) || self.server.has_work(peer);
            if needed != p.keep_alive {
                p.keep_alive = needed;
                for (connection, _) in &p.connections {
                    self.pending.push_back(ToSwarm::NotifyHandler {
                        peer_id: *peer,
                        handler: NotifyHandler::One(*connection),
                        event: FromBehaviour::KeepAlive(needed),
                    });
                }
            }
        }
        if !self.pending.is_empty()
            && let Some(waker) = self.waker.take()
        {
            waker.wake();
        }
    }

    fn on_incoming(&mut self, peer: PeerId, incoming: Incoming) {
        let Incoming {
            wantlist,
            full,
            blocks,
            presences,
            bytes,
            held,
        } = incoming;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.misbehaved {
            return;
        }
        p.stats.bytes_received += bytes as u64;
        if let Some(block) = blocks
            .iter()
            .find(|b| self.client.arrival(&peer, b) == Arrival::Unsolicited)
        {
            let reason = format!(
                "sent block {} that nobody asked it for (a block that does not match the CID it \
                 was sent under hashes to such a CID)",
                block.cid()
            );
            self.misbehaved(peer, reason);
            return;
        }
        if !wantlist.is_empty() || full {
            self.server.wantlist(peer, wantlist, full);
        }
        for presence in &presences {
            self.client.presence(peer, presence);
        }
        for block in blocks {
            let len = block.data().len() as u64;
            if self.client.block(peer, block)
                && let Some(p) = self.peers.get_mut(&peer)
            {
                p.stats.blocks_received += 1;
                p.stats.block_bytes_received += len;
            }
        }
        self.client.redispatch_stalled();
        // The blocks now belong to the events: the message's room in the inbound budget is free.
        drop(held);
    }

    fn misbehaved(&mut self, peer: PeerId, reason: String) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.misbehaved {
            return;
        }
        p.misbehaved = true;
        self.misbehaving_peers += 1;
        tracing::warn!(%peer, %reason, "Bitswap peer misbehaved; disconnecting it");
        self.client.drop_peer(peer);
        self.server.disconnected(&peer);
        self.pending
            .push_back(ToSwarm::GenerateEvent(Event::Misbehaved { peer, reason }));
        self.pending.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::All,
        });
    }

    fn on_established(&mut self, e: ConnectionEstablished<'_>) {
        let p = self.peers.entry(e.peer_id).or_default();
        p.connections.push((e.connection_id, 0));
        if e.other_established == 0 {
            self.client.connected(e.peer_id);
            self.server.connected(e.peer_id);
        } else if p.keep_alive {
            self.pending.push_back(ToSwarm::NotifyHandler {
                peer_id: e.peer_id,
                handler: NotifyHandler::One(e.connection_id),
                event: FromBehaviour::KeepAlive(true),
            });
        }
    }

    fn on_closed(&mut self, e: ConnectionClosed<'_>) {
        let Some(p) = self.peers.get_mut(&e.peer_id) else {
            return;
        };
        let Some(index) = p
            .connections
            .iter()
            .position(|(c, _)| *c == e.connection_id)
        else {
            return;
        };
        let (_, unsent) = p.connections.remove(index);
        if e.remaining_established == 0 || p.connections.is_empty() {
            if let Some(p) = self.peers.remove(&e.peer_id) {
                self.past.add(&p.stats);
            }
            self.client.disconnected(e.peer_id);
            self.server.disconnected(&e.peer_id);
            return;
        }
        self.server.written(e.peer_id, unsent);
        if index == 0 && !p.misbehaved {
            // What was queued on the connection we sent on is lost: ask again on the next one.
            self.client.disconnected(e.peer_id);
            self.client.connected(e.peer_id);
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => self.on_established(e),
            FromSwarm::ConnectionClosed(e) => self.on_closed(e),
            _ => return,
        }
        self.flush();
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            ToBehaviour::Received(incoming) => self.on_incoming(peer, *incoming),
            ToBehaviour::Malformed(reason) => self.misbehaved(peer, reason),
            ToBehaviour::Done { account, sent } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    if account.from_server
                        && let Some((_, unsent)) =
                            p.connections.iter_mut().find(|(c, _)| *c == connection)
                    {
                        *unsent = unsent.saturating_sub(account.bytes);
                    }
                    if sent {
                        p.stats.bytes_sent += account.bytes as u64;
                        p.stats.blocks_sent += account.blocks as u64;
                    }
                }
                if account.from_server {
                    self.server.written(peer, account.bytes);
                }
            }
            ToBehaviour::Version(version) => {
                self.client.set_version(peer, version);
                self.server.set_version(&peer, version);
            }
            ToBehaviour::Unsupported => {
                tracing::debug!(%peer, "peer does not speak Bitswap");
                self.client.drop_peer(peer);
            }
        }
        self.flush();
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Poll::Ready(event);
            }
            match self.server.poll(cx) {
                Poll::Ready(r) => {
                    let account = Account {
                        bytes: r.bytes,
                        blocks: r.blocks,
                        from_server: true,
                    };
                    self.send(r.peer, r.message, account);
                }
                Poll::Pending => {
                    self.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
    }
}
