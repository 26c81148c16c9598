//! Picks the chain source the configuration names. Kept apart from the [`ChainBackend`] trait
//! so that the backends import the trait and nothing imports them back.

use stargate_protocol::anchor::Network;

use crate::ChainError;
use crate::backend::ChainBackend;
use crate::config::BackendConfig;
use crate::electrum::ElectrumBackend;
use crate::rpc::RpcBackend;

/// Connects to the configured backend, which checks that it follows `network` (Electrum at
/// its first request, along with others).
///
/// # Errors
/// When the backend cannot be reached or follows another network.
pub(crate) fn connect(
    config: &BackendConfig,
    network: Network,
) -> Result<Box<dyn ChainBackend>, ChainError> {
    match config {
        BackendConfig::Electrum {
            url,
            validate_domain,
        } => Ok(Box::new(ElectrumBackend::connect(
            url,
            *validate_domain,
            network,
        )?)),
        BackendConfig::Rpc { url, auth } => Ok(Box::new(RpcBackend::connect(url, auth, network)?)),
    }
}
