//! The node's peer-to-peer side.

// Until the node's swarm composes it, Bitswap is used only by its tests.
#[cfg_attr(not(test), allow(dead_code, unused_imports))]
pub(crate) mod bitswap;
