//! The Electrum backend. A public server charges every request against the session and
//! delays, then drops, a client whose cost grows faster than it decays, and e-x (the Electrum
//! project's server) holds back any answer smaller than 1 KB for up to a second: round trips
//! and requests are what a sync must save.
//!
//! - [`backend`]: the connection and the [`ChainBackend`](crate::backend::ChainBackend) calls;
//! - [`session`]: what one connection knows of the wallet's scripts, and the sync's rounds;
//! - [`update`]: from histories to bdk's wallet update (transactions, checked confirmations,
//!   the chain);
//! - [`requests`]: the requests, their answers, and batches sized to the server's pace.

mod backend;
mod requests;
mod session;
mod update;

pub(crate) use backend::ElectrumBackend;
