//! The connection handler: reads messages from every inbound Bitswap stream, decodes and
//! verifies them on the rayon pool (never on the connection or swarm task), and writes what the
//! behaviour sends.
//!
//! Sending follows boxo: our wantlist changes go, in order, on one long-lived stream; each answer
//! of the server goes on a stream of its own (written, then closed), a bounded number at once, so
//! that the receiver (boxo reads and hashes each stream's messages in turn) takes them in
//! parallel.
//!
//! Backpressure: at most `max_inbound_streams` streams are read at once (more are refused), and
//! at most `max_verifying` messages are being decoded and hashed at once. Messages read while
//! that window is full wait for it in order; every one holds its bytes of the inbound budget
//! shared by all connections, and a stream's next body is read only once the budget has room, so
//! a fast sender is slowed by its stream's flow control. Streams are read all the time, so one
//! that ended (each answer of our server has one) is let go at once instead of counting against
//! the stream limit while the window is full: a stream refused there takes its answer with it.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{AsyncWriteExt, FutureExt, StreamExt};
use libp2p::Stream;
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, StreamUpgradeError, SubstreamProtocol,
};
use rayon::prelude::*;
use stargate_protocol::bitswap::{BlockPresence, Message, ProtocolVersion, WantEntry, WantType};
use stargate_protocol::{Block, Bytes};

use super::stream::{Held, InboundBudget, ReadError, Upgrade, read_message, write_frame};

/// How often a message that failed to send is tried again on a new stream.
const SEND_ATTEMPTS: u8 = 2;
/// How often opening a stream may fail in a row (other than "protocol not supported") before
/// the queued messages are dropped.
const OPEN_ATTEMPTS: u8 = 3;
/// Answer streams open at once.
const ANSWER_STREAMS: usize = 8;

/// What the handler needs to know of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct HandlerConfig {
    pub(super) max_message_bytes: usize,
    pub(super) max_inbound_streams: usize,
    pub(super) max_verifying: usize,
    pub(super) budget: InboundBudget,
}

/// A message received and checked: decoded within the limits, every block hashed under its
/// prefix. Whether the blocks were asked for is the behaviour's to judge.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(super) wantlist: Vec<WantEntry>,
    pub(super) full: bool,
    pub(super) blocks: Vec<Block>,
    pub(super) presences: Vec<BlockPresence>,
    /// Length of the message body.
    pub(super) bytes: usize,
    /// Its share of the inbound budget, given back when the behaviour is done with it.
    pub(super) held: Held,
}

/// A message to send, with what the behaviour counts for it (echoed back once it is written or
/// dropped).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(super) message: Message,
    pub(super) account: Account,
}

/// What a message counts for: its size as the behaviour measured it, its blocks, and whether it
/// is an answer of the server (whose unsent bytes per peer are limited).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Account {
    pub(super) bytes: usize,
    pub(super) blocks: usize,
    pub(super) from_server: bool,
}

#[derive(Debug)]
pub(crate) enum FromBehaviour {
    Send(Box<Outgoing>),
    /// Whether the behaviour needs the connection (wants outstanding with the peer).
    KeepAlive(bool),
}

#[derive(Debug)]
pub(crate) enum ToBehaviour {
    Received(Box<Incoming>),
    /// The peer sent an oversized or undecodable message, or a block that cannot be hashed
    /// under its prefix.
    Malformed(String),
    /// Written to the stream (`sent`) or given up (`!sent`).
    Done {
        account: Account,
        sent: bool,
    },
    /// The protocol version of our outbound stream.
    Version(ProtocolVersion),
    /// The peer does not speak Bitswap.
    Unsupported,
}

type Reading = BoxFuture<'static, (Stream, Result<Option<(Bytes, Held)>, ReadError>)>;
type Verifying = BoxFuture<'static, Result<Box<Incoming>, String>>;
type Writing = BoxFuture<'static, (Stream, std::io::Result<()>)>;
type Answering = BoxFuture<'static, (Account, std::io::Result<()>)>;

/// What an outbound stream is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The long-lived stream of our wantlist changes.
    Wantlist,
    /// One answer of the server.
    Answer,
}

enum Outbound {
    /// No stream; one is requested when there is something to send.
    None,
    Opening,
    Idle(Stream),
    Writing(Writing, Box<Outgoing>, u8),
    /// The peer does not speak Bitswap; nothing will be sent.
    Unsupported,
}

pub(crate) struct Handler {
    config: HandlerConfig,
    version: ProtocolVersion,
    outbound: Outbound,
    queue: VecDeque<(Box<Outgoing>, u8)>,
    answers: VecDeque<Box<Outgoing>>,
    answer_streams_requested: usize,
    answering: FuturesUnordered<Answering>,
    unsupported: bool,
    open_failures: u8,
    keep_alive: bool,
    reading: FuturesUnordered<Reading>,
    /// Messages read and waiting for the verification window, oldest first.
    parked: VecDeque<(Bytes, Held)>,
    verifying: FuturesOrdered<Verifying>,
    events: VecDeque<ToBehaviour>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("queued", &self.queue.len())
            .field("answers", &self.answers.len())
            .field("reading", &self.reading.len())
            .field("parked", &self.parked.len())
            .field("verifying", &self.verifying.len())
            .finish_non_exhaustive()
    }
}

impl Handler {
    pub(super) fn new(config: HandlerConfig) -> Self {
        Self {
            config,
            version: ProtocolVersion::V120,
            outbound: Outbound::None,
            queue: VecDeque::new(),
            answers: VecDeque::new(),
            answer_streams_requested: 0,
            answering: FuturesUnordered::new(),
            unsupported: false,
            open_failures: 0,
            keep_alive: false,
            reading: FuturesUnordered::new(),
            parked: VecDeque::new(),
            verifying: FuturesOrdered::new(),
            events: VecDeque::new(),
        }
    }

    fn read_next(&mut self, mut stream: Stream) {
        let max = self.config.max_message_bytes;
        let budget = self.config.budget.clone();
        self.reading.push(
            async move {
                let result = read_message(&mut stream, max, &budget).await;
                (stream, result)
            }
            .boxed(),
        );
    }

    fn drop_queues(&mut self) {
        let dropped = self
            .queue
            .drain(..)
            .map(|(out, _)| out)
            .chain(self.answers.drain(..));
        for out in dropped {
            self.events.push_back(ToBehaviour::Done {
                account: out.account,
                sent: false,
            });
        }
    }

    fn open_failed(&mut self) {
        self.open_failures += 1;
        if self.open_failures >= OPEN_ATTEMPTS {
            self.open_failures = 0;
            self.drop_queues();
        }
    }

    fn start_answer(&mut self, mut stream: Stream, version: ProtocolVersion) {
        let Some(out) = self.answers.pop_front() else {
            return;
        };
        let frame = encode_for(&out.message, version);
        let account = out.account;
        self.answering.push(
            async move {
                let result = async {
                    write_frame(&mut stream, &frame).await?;
                    stream.close().await
                }
                .await;
                (account, result)
            }
            .boxed(),
        );
    }

    fn start_write(&mut self, mut stream: Stream, out: Box<Outgoing>, attempt: u8) {
        let frame = encode_for(&out.message, self.version);
        let writing = async move {
            let result = write_frame(&mut stream, &frame).await;
            (stream, result)
        }
        .boxed();
        self.outbound = Outbound::Writing(writing, out, attempt);
    }
}

/// The message as a peer speaking `version` understands it: without want-have (a want of the
/// block instead) and send-dont-have before 1.2.0.
fn encode_for(message: &Message, version: ProtocolVersion) -> Vec<u8> {
    if version.supports_have() {
        return message.encode_framed(version);
    }
    let mut m = message.clone();
    for e in &mut m.wantlist {
        e.want_type = WantType::Block;
        e.send_dont_have = false;
    }
    m.encode_framed(version)
}

/// Decodes and hashes a message body on the rayon pool.
fn verify(body: Bytes, held: Held) -> Verifying {
    let (tx, rx) = oneshot::channel();
    rayon::spawn(move || {
        let bytes = body.len();
        let result = Message::decode(&body)
            .and_then(|m| {
                let blocks = m
                    .payload
                    .into_par_iter()
                    .map(|p| p.into_block())
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Box::new(Incoming {
                    wantlist: m.wantlist,
                    full: m.full,
                    blocks,
                    presences: m.presences,
                    bytes,
                    held,
                }))
            })
            .map_err(|e| e.to_string());
        let _ = tx.send(result);
    });
    async move {
        rx.await
            .unwrap_or_else(|_| Err("message verification was cancelled".to_owned()))
    }
    .boxed()
}

impl ConnectionHandler for Handler {
    type FromBehaviour = FromBehaviour;
    type ToBehaviour = ToBehaviour;
    type InboundProtocol = Upgrade;
    type OutboundProtocol = Upgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Purpose;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        SubstreamProtocol::new(Upgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep_alive
            || !self.queue.is_empty()
            || !self.answers.is_empty()
            || !self.answering.is_empty()
            || matches!(self.outbound, Outbound::Writing(..) | Outbound::Opening)
            || !self.verifying.is_empty()
    }

    fn on_behaviour_event(&mut self, event: FromBehaviour) {
        match event {
            FromBehaviour::Send(out) if self.unsupported => {
                self.events.push_back(ToBehaviour::Done {
                    account: out.account,
                    sent: false,
                });
            }
            FromBehaviour::Send(out) if out.account.from_server => self.answers.push_back(out),
            FromBehaviour::Send(out) => self.queue.push_back((out, 0)),
            FromBehaviour::KeepAlive(keep) => self.keep_alive = keep,
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol, (), Purpose>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (mut stream, _),
                ..
            }) => {
                if self.reading.len() >= self.config.max_inbound_streams {
                    tracing::debug!("too many inbound Bitswap streams; refusing one");
                    return;
                }
                // Idle streams (Kubo keeps one open for its wantlists) do not hold the
                // connection open; wants in flight do (`keep_alive`).
                stream.ignore_for_keep_alive();
                self.read_next(stream);
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (mut stream, version),
                info,
            }) => {
                self.open_failures = 0;
                match info {
                    Purpose::Wantlist => {
                        stream.ignore_for_keep_alive();
                        self.version = version;
                        self.events.push_back(ToBehaviour::Version(version));
                        self.outbound = Outbound::Idle(stream);
                    }
                    Purpose::Answer => {
                        self.answer_streams_requested =
                            self.answer_streams_requested.saturating_sub(1);
                        self.start_answer(stream, version);
                    }
                }
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, info }) => {
                match info {
                    Purpose::Wantlist => self.outbound = Outbound::None,
                    Purpose::Answer => {
                        self.answer_streams_requested =
                            self.answer_streams_requested.saturating_sub(1);
                    }
                }
                match error {
                    StreamUpgradeError::NegotiationFailed => {
                        self.unsupported = true;
                        self.outbound = Outbound::Unsupported;
                        self.drop_queues();
                        self.events.push_back(ToBehaviour::Unsupported);
                    }
                    other => {
                        tracing::debug!(error = %other, "cannot open a Bitswap stream");
                        self.open_failed();
                    }
                }
            }
            _ => {}
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Purpose, Self::ToBehaviour>> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(event));
            }

            // Verified messages, in the order each stream delivered them.
            if let Poll::Ready(Some(result)) = self.verifying.poll_next_unpin(cx) {
                let event = match result {
                    Ok(incoming) => ToBehaviour::Received(incoming),
                    Err(reason) => ToBehaviour::Malformed(reason),
                };
                return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(event));
            }

            // Messages that waited for the verification window, in the order they were read.
            if self.verifying.len() < self.config.max_verifying
                && let Some((body, held)) = self.parked.pop_front()
            {
                self.verifying.push_back(verify(body, held));
                continue;
            }

            // Reading, always (see the module notes on backpressure).
            if let Poll::Ready(Some((stream, result))) = self.reading.poll_next_unpin(cx) {
                match result {
                    Ok(Some((body, held))) => {
                        self.parked.push_back((body, held));
                        self.read_next(stream);
                    }
                    Ok(None) => {}
                    Err(ReadError::TooLarge { len, max }) => {
                        self.events.push_back(ToBehaviour::Malformed(format!(
                            "message of {len} bytes exceeds the {max}-byte limit"
                        )));
                    }
                    Err(ReadError::BadLength) => {
                        self.events.push_back(ToBehaviour::Malformed(
                            "message length is not a varint".to_owned(),
                        ));
                    }
                    Err(ReadError::Io(e)) => {
                        tracing::debug!(error = %e, "Bitswap stream closed");
                    }
                }
                continue;
            }

            // Answers, each on a stream of its own.
            if let Poll::Ready(Some((account, result))) = self.answering.poll_next_unpin(cx) {
                if let Err(e) = &result {
                    tracing::debug!(error = %e, "writing a Bitswap answer failed");
                }
                self.events.push_back(ToBehaviour::Done {
                    account,
                    sent: result.is_ok(),
                });
                continue;
            }
            if !self.unsupported
                && self.answers.len() > self.answer_streams_requested
                && self.answering.len() + self.answer_streams_requested < ANSWER_STREAMS
            {
                self.answer_streams_requested += 1;
                return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                    protocol: SubstreamProtocol::new(Upgrade, Purpose::Answer),
                });
            }

            // Wantlist changes, in order, on the long-lived stream.
            match std::mem::replace(&mut self.outbound, Outbound::None) {
                Outbound::Writing(mut writing, out, attempt) => match writing.poll_unpin(cx) {
                    Poll::Ready((stream, Ok(()))) => {
                        self.outbound = Outbound::Idle(stream);
                        self.events.push_back(ToBehaviour::Done {
                            account: out.account,
                            sent: true,
                        });
                        continue;
                    }
                    Poll::Ready((_, Err(e))) => {
                        tracing::debug!(error = %e, "writing a Bitswap message failed");
                        if attempt + 1 < SEND_ATTEMPTS {
                            self.queue.push_front((out, attempt + 1));
                        } else {
                            self.events.push_back(ToBehaviour::Done {
                                account: out.account,
                                sent: false,
                            });
                        }
                        continue;
                    }
                    Poll::Pending => self.outbound = Outbound::Writing(writing, out, attempt),
                },
                Outbound::Idle(stream) => match self.queue.pop_front() {
                    Some((out, attempt)) => {
                        self.start_write(stream, out, attempt);
                        continue;
                    }
                    None => self.outbound = Outbound::Idle(stream),
                },
                Outbound::None if !self.queue.is_empty() => {
                    self.outbound = Outbound::Opening;
                    return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                        protocol: SubstreamProtocol::new(Upgrade, Purpose::Wantlist),
                    });
                }
                other => self.outbound = other,
            }
            return Poll::Pending;
        }
    }
}
