//! When to reconcile, and with whom: the connected Stargate peers, the digests going out and
//! coming in, and the sessions running.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use libp2p::{PeerId, Stream};
use stargate_protocol::reconcile::{Digest, SyncMessage};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::metrics::Role;
use super::session::{self, Summary};
use super::wire::{PROTOCOL, SyncError, Wire};
use crate::p2p::command::StargatePeer;

/// Peers whose state is kept (connected Stargate peers, and those that sent a digest).
const MAX_PEERS: usize = 4096;

/// Digests being sent at once; when all are busy a peer waits for the next change or tick.
const MAX_DIGEST_SENDS: usize = 32;

/// How often peers are looked at: periodic digests, sessions waiting for their gap.
const TICK: Duration = Duration::from_millis(250);

/// Byte budget of a digest stream: one digest.
const DIGEST_BUDGET: u64 = 64;

/// How an outbound stream ended, when the peer's state must know.
#[derive(Debug, Clone, Copy)]
enum Ended {
    /// The peer serves as many sessions as it allows: try again after the gap.
    Busy,
    /// The stream could not be opened or broke.
    Unreachable,
}

/// What we know of one Stargate peer.
#[derive(Debug, Default)]
struct Peer {
    /// The digest we last sent it, and when.
    sent: Option<(Digest, Instant)>,
    /// Its digest differed from ours (or it just connected, and we initiate): a session is
    /// due, or, when the peer is the pair's initiator, our digest, so that it starts one.
    due: bool,
    /// When we last started a session with it or sent it our digest for one.
    last_session: Option<Instant>,
}

/// Peers with a session running, either role: one per peer, at most `max_sessions`.
#[derive(Debug)]
struct Slots {
    running: HashSet<PeerId>,
    max: usize,
}

/// A session's place; given back on drop.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    peer: PeerId,
}

impl Slot {
    fn take(slots: &Arc<Mutex<Slots>>, peer: PeerId) -> Option<Self> {
        let mut s = slots.lock().unwrap_or_else(PoisonError::into_inner);
        if s.running.len() >= s.max || !s.running.insert(peer) {
            return None;
        }
        Some(Self {
            slots: Arc::clone(slots),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running
            .remove(&self.peer);
    }
}

/// Registers the protocol and spawns the engine.
///
/// # Errors
/// When something else already accepts the protocol on this swarm.
pub(super) fn spawn(
    mut control: libp2p_stream::Control,
    events: mpsc::Receiver<StargatePeer>,
    context: Context,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let incoming = control
        .accept(PROTOCOL)
        .map_err(|e| anyhow::anyhow!("registering {PROTOCOL}: {e}"))?;
    let (digests, digests_in) = mpsc::channel(MAX_DIGEST_SENDS * 4);
    let (finished, finished_in) = mpsc::channel(context.config.max_sessions * 2 + MAX_DIGEST_SENDS);
    let engine = Engine {
        slots: Arc::new(Mutex::new(Slots {
            running: HashSet::new(),
            max: context.config.max_sessions,
        })),
        inbound: Arc::new(Semaphore::new(context.config.max_inbound_streams)),
        digest_sends: Arc::new(Semaphore::new(MAX_DIGEST_SENDS)),
        ctx: Arc::new(context),
        control,
        peers: HashMap::new(),
        digests,
        finished,
        shutdown,
    };
    Ok(tokio::spawn(engine.run(
        events,
        incoming,
        digests_in,
        finished_in,
    )))
}

struct Engine {
    ctx: Arc<Context>,
    control: libp2p_stream::Control,
    peers: HashMap<PeerId, Peer>,
    slots: Arc<Mutex<Slots>>,
    inbound: Arc<Semaphore>,
    digest_sends: Arc<Semaphore>,
    /// Digests read by inbound stream tasks.
    digests: mpsc::Sender<(PeerId, Digest)>,
    /// Outbound sessions and digests that ended in a way the peer's state must know.
    finished: mpsc::Sender<(PeerId, Ended)>,
    shutdown: CancellationToken,
}

impl Engine {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<StargatePeer>,
        mut incoming: libp2p_stream::IncomingStreams,
        mut digests: mpsc::Receiver<(PeerId, Digest)>,
        mut finished: mpsc::Receiver<(PeerId, Ended)>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut debounce: Option<Instant> = None;
        let set = self.ctx.set.clone();
        loop {
            let flush = async {
                match debounce {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(StargatePeer::Connected(peer)) => self.connected(peer),
                    Some(StargatePeer::Disconnected(peer)) => {
                        self.peers.remove(&peer);
                        self.ctx.reconciling.remove(&peer);
                    }
                    None => break,
                },
                stream = incoming.next() => match stream {
                    Some((peer, stream)) => self.accept(peer, stream),
                    None => break,
                },
                Some((peer, digest)) = digests.recv() => self.digest_received(peer, digest),
                Some((peer, ended)) = finished.recv() => match ended {
                    Ended::Busy => {
                        if let Some(p) = self.peers.get_mut(&peer) {
                            p.due = true;
                        }
                    }
                    // Forgotten until it connects again or sends a digest: opening a stream
                    // to a peer that is gone would dial it.
                    Ended::Unreachable => {
                        self.peers.remove(&peer);
                        self.ctx.reconciling.remove(&peer);
                    }
                },
                () = set.changed(), if debounce.is_none() => {
                    debounce = Some(Instant::now() + self.ctx.config.digest_debounce);
                }
                () = flush => {
                    debounce = None;
                    self.send_changed_digests();
                }
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    /// Whether this node starts the sessions of its pair with `peer`.
    fn initiates_with(&self, peer: &PeerId) -> bool {
        self.ctx.local.to_bytes() < peer.to_bytes()
    }

    fn peer(&mut self, peer: PeerId) -> Option<&mut Peer> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            return None;
        }
        Some(self.peers.entry(peer).or_default())
    }

    fn connected(&mut self, peer: PeerId) {
        let initiates = self.initiates_with(&peer);
        let ours = self.ctx.set.digest();
        if let Some(p) = self.peer(peer) {
            p.due |= initiates;
            // The session at connection stands for a digest: the next goes out on a change or
            // after the interval.
            p.sent = Some((ours, Instant::now()));
        }
        self.start_due(peer);
    }

    fn digest_received(&mut self, peer: PeerId, theirs: Digest) {
        let ours = self.ctx.set.digest();
        let Some(p) = self.peer(peer) else {
            return;
        };
        p.due = theirs != ours;
        self.start_due(peer);
    }

    /// Sends the digest to every peer that has not seen this one.
    fn send_changed_digests(&mut self) {
        let ours = self.ctx.set.digest();
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.sent.is_none_or(|(sent, _)| sent != ours))
            .map(|(id, _)| *id)
            .collect();
        for peer in stale {
            self.send_digest(peer);
        }
    }

    fn on_tick(&mut self) {
        let interval = self.ctx.config.digest_interval;
        let (quiet, due): (Vec<PeerId>, Vec<PeerId>) = (
            self.peers
                .iter()
                .filter(|(_, p)| p.sent.is_none_or(|(_, at)| at.elapsed() >= interval))
                .map(|(id, _)| *id)
                .collect(),
            self.peers
                .iter()
                .filter(|(_, p)| p.due)
                .map(|(id, _)| *id)
                .collect(),
        );
        for peer in quiet {
            self.send_digest(peer);
        }
        for peer in due {
            self.start_due(peer);
        }
    }

    fn send_digest(&mut self, peer: PeerId) {
        let Ok(permit) = Arc::clone(&self.digest_sends).try_acquire_owned() else {
            return;
        };
        let digest = self.ctx.set.digest();
        if let Some(p) = self.peers.get_mut(&peer) {
            p.sent = Some((digest, Instant::now()));
        }
        let mut control = self.control.clone();
        let ctx = Arc::clone(&self.ctx);
        let finished = self.finished.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let sent = tokio::time::timeout(ctx.config.message_timeout, async {
                let mut wire = Wire::open(
                    &mut control,
                    peer,
                    ctx.metrics.clone(),
                    ctx.config.message_timeout,
                    DIGEST_BUDGET,
                )
                .await?;
                wire.send(&SyncMessage::Digest(digest)).await?;
                wire.close().await;
                Ok::<_, SyncError>(())
            })
            .await;
            match sent {
                Ok(Ok(())) => ctx.metrics.digest(true),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "sync digest not sent");
                    let _ = finished.try_send((peer, Ended::Unreachable));
                }
                Err(_) => tracing::debug!(%peer, "sync digest timed out"),
            }
        });
    }

    /// Starts a session with `peer` if one is due, none runs with it, its gap has passed and a
    /// slot is free (otherwise the tick or the session's end tries again). When the peer is the
    /// pair's initiator, sends it our digest instead.
    fn start_due(&mut self, peer: PeerId) {
        let gap = self.ctx.config.min_session_gap;
        let initiates = self.initiates_with(&peer);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.due || p.last_session.is_some_and(|at| at.elapsed() < gap) {
            return;
        }
        if !initiates {
            p.due = false;
            p.last_session = Some(Instant::now());
            self.send_digest(peer);
            return;
        }
        let Some(slot) = Slot::take(&self.slots, peer) else {
            return;
        };
        p.due = false;
        p.last_session = Some(Instant::now());
        let mut control = self.control.clone();
        let ctx = Arc::clone(&self.ctx);
        let finished = self.finished.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let run = async {
                let mut wire = Wire::open(
                    &mut control,
                    peer,
                    ctx.metrics.clone(),
                    ctx.config.message_timeout,
                    ctx.config.max_session_bytes,
                )
                .await?;
                let summary = session::initiate(&ctx, peer, &mut wire).await?;
                wire.close().await;
                Ok(summary)
            };
            let result = tokio::select! {
                () = shutdown.cancelled() => Err(SyncError::Stopped),
                r = tokio::time::timeout(ctx.config.session_timeout, run) => {
                    r.unwrap_or(Err(SyncError::Timeout))
                }
            };
            let ended = match &result {
                Err(SyncError::Busy) => Some(Ended::Busy),
                Err(SyncError::Io(_)) => Some(Ended::Unreachable),
                _ => None,
            };
            report(&ctx, Role::Initiator, peer, &result);
            drop(slot);
            if let Some(ended) = ended {
                let _ = finished.try_send((peer, ended));
            }
        });
    }

    /// Reads the first message of an inbound stream and answers it, off the engine's task.
    fn accept(&mut self, peer: PeerId, stream: Stream) {
        let Ok(permit) = Arc::clone(&self.inbound).try_acquire_owned() else {
            tracing::debug!(%peer, "too many sync streams; one dropped");
            return;
        };
        let ctx = Arc::clone(&self.ctx);
        let slots = Arc::clone(&self.slots);
        let digests = self.digests.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = inbound(&ctx, peer, stream, &slots, &digests) => {}
            }
        });
    }
}

async fn inbound(
    ctx: &Context,
    peer: PeerId,
    stream: Stream,
    slots: &Arc<Mutex<Slots>>,
    digests: &mpsc::Sender<(PeerId, Digest)>,
) {
    let mut wire = Wire::new(
        stream,
        ctx.metrics.clone(),
        ctx.config.message_timeout,
        ctx.config.max_session_bytes,
    );
    let first = match wire.recv().await {
        Ok(SyncMessage::Digest(digest)) => {
            ctx.metrics.digest(false);
            ctx.reconciling.add(peer);
            // A full queue drops it: the peer's next digest comes soon enough.
            let _ = digests.try_send((peer, digest));
            return;
        }
        Ok(SyncMessage::Reconcile(first)) => first,
        Ok(other) => {
            let e = SyncError::misbehaving(
                "unexpected_message",
                format!("a stream opened with a {}", other.name()),
            );
            report(ctx, Role::Responder, peer, &Err(e));
            return;
        }
        Err(e @ SyncError::Misbehaving { .. }) => {
            report(ctx, Role::Responder, peer, &Err(e));
            return;
        }
        Err(_) => return,
    };
    let Some(_slot) = Slot::take(slots, peer) else {
        let _ = wire.send(&SyncMessage::Busy).await;
        wire.close().await;
        ctx.metrics.session(Role::Responder, "busy");
        return;
    };
    let result = tokio::time::timeout(
        ctx.config.session_timeout,
        session::respond(ctx, peer, &mut wire, first),
    )
    .await
    .unwrap_or(Err(SyncError::Timeout));
    if result.is_ok() {
        wire.close().await;
    }
    report(ctx, Role::Responder, peer, &result);
}

/// Counts a session's end, and cuts off a peer that misbehaved.
fn report(ctx: &Context, role: Role, peer: PeerId, result: &Result<Summary, SyncError>) {
    match result {
        Ok(summary) => {
            ctx.metrics.session(role, "ok");
            ctx.reconciling.add(peer);
            tracing::debug!(%peer, ?role, learned = summary.learned, sent = summary.sent, "sync session done");
        }
        Err(e) => {
            ctx.metrics.session(role, e.outcome());
            if let SyncError::Misbehaving { reason, detail } = e {
                ctx.metrics.misbehaving(reason);
                tracing::info!(%peer, reason, detail, "sync peer cut off");
                (ctx.penalise)(peer, reason);
            } else {
                tracing::debug!(%peer, ?role, error = %e, "sync session ended early");
            }
        }
    }
}
