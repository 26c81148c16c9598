//! Bitswap 1.2.0 (also serving 1.1.0 and 1.0.0 peers) as a libp2p `NetworkBehaviour`, backed by
//! the store. The wire format is `stargate_protocol::bitswap`.
//!
//! # Interface
//!
//! ```text
//! Behaviour::new(store, config)
//! behaviour.want(cid, &peers) -> Result<(), WantError>  // keep asking until satisfied or cancelled
//! behaviour.add_peers(&cid, &peers)                     // more candidates (providers found later)
//! behaviour.cancel(&cid)
//! behaviour.stats() -> Stats                            // ledgers and counters
//! Event::Block { block, from }    // verified against its CID, NOT stored: the caller decides
//! Event::Have { cid, peer } / Event::DontHave { cid, peer }
//! Event::Misbehaved { peer, reason }  // already disconnected; nothing it sent was reported
//! ```
//!
//! - Client ([`client`]): for each want one candidate is asked for the block (want-block) and the
//!   others whether they have it (want-have), always with send-dont-have; want-blocks in flight
//!   per peer are bounded so that many wants pipeline across peers. Nothing times out here (the
//!   retrieval layer owns timeouts and cancels); what a peer was asked is forgotten when it
//!   disconnects and asked again when it reconnects. Candidates that are not connected are
//!   dialled by peer ID (addresses come from the other behaviours, e.g. Kademlia).
//! - Server ([`server`]): answers every connected peer's wantlist from the store, reading on the
//!   blocking pool, fair between peers, within the message size limit, a bounded number of unsent
//!   bytes and (optionally) blocks per second per peer; cancels are honoured.
//! - Connections ([`handler`]): inbound streams are read until EOF (Kubo opens one per message,
//!   or keeps one for its wantlist); every message is decoded and every block hashed under its
//!   CID prefix on the rayon pool, never on the swarm task. Our wantlist changes go in order on one
//!   long-lived stream per connection; each answer goes on a stream of its own (up to 8 at once),
//!   as boxo does, because boxo reads and hashes one stream's messages in turn.
//! - A message over 4 MiB, one that does not decode, or a block nobody asked for (which is what a
//!   block whose bytes do not match the CID it was sent under looks like) makes the peer
//!   misbehaving: it is disconnected, dropped from every want and nothing of that message is
//!   reported.

mod behaviour;
mod client;
mod config;
mod event;
mod handler;
#[cfg(test)]
mod kubo_tests;
mod server;
mod stats;
mod stream;
#[cfg(test)]
mod tests;

pub(crate) use behaviour::Behaviour;
pub(crate) use config::Config;
pub(crate) use event::{Event, WantError};
pub(crate) use stats::Stats;
