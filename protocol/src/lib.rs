//! Wire and data formats of Stargate Node.
//!
//! Everything that crosses a process boundary is defined here, free of any network or database:
//!
//! - [`Cid`] parsing and the codecs and hashes we accept ([`Codec`], [`HashCode`]);
//! - [`Block`]: bytes together with the CID they were verified against. Every other crate stores,
//!   serves and sends only `Block`s, so "a block whose bytes do not match its CID" cannot be
//!   represented past the point where outside bytes enter;
//! - dag-pb nodes ([`PbNode`]) and UnixFS metadata ([`unixfs::UnixFsData`]), byte-for-byte as Kubo
//!   writes them;
//! - the size limits every decoder of outside input enforces ([`limits`]);
//! - Bitcoin anchor payloads, batch Merkle trees and offline proofs ([`anchor`]);
//! - the Bitswap 1.0.0/1.1.0/1.2.0 message ([`bitswap`]);
//! - the request and response of the fast DAG transfer between Stargate instances ([`transfer`]);
//! - mirror announcements, entries and signed manifests ([`mirror`]);
//! - the sync protocol's messages and both sides of its set reconciliation ([`reconcile`]);
//! - stego results: the approval callback, its HMAC signature and the stego announcement
//!   ([`stego`]).
//!
//! Non-goals: no I/O beyond what callers hand in, no global state.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod anchor;
pub mod bitswap;
mod block;
pub mod car;
mod cid;
mod dagpb;
mod hash;
pub mod ipld;
pub mod limits;
pub mod mirror;
mod path;
pub mod reconcile;
pub mod stego;
pub mod transfer;
pub mod unixfs;

pub use crate::block::{Block, BlockError};
pub use crate::cid::{CidError, Codec, HashCode, check_supported, parse_cid};
pub use crate::dagpb::{DagPbError, PbLink, PbNode};
pub use crate::hash::{Multihash, digest, sha2_256};
pub use crate::path::{ContentPath, PathError};
pub use ::cid::{Cid, Version};
pub use bytes::Bytes;
