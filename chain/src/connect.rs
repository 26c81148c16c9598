//! Picks the chain source the configuration names. Kept apart from the [`ChainBackend`] trait
//! so that the backends import the trait and nothing imports them back.

use crate::ChainError;
use crate::backend::ChainBackend;
use crate::config::BackendConfig;
use crate::electrum::ElectrumBackend;
use crate::rpc::RpcBackend;

/// Connects to the configured backend.
///
/// # Errors
/// When the backend cannot be reached.
pub(crate) fn connect(config: &BackendConfig) -> Result<Box<dyn ChainBackend>, ChainError> {
    match config {
        BackendConfig::Electrum {
            url,
            validate_domain,
        } => Ok(Box::new(ElectrumBackend::connect(url, *validate_domain)?)),
        BackendConfig::Rpc { url, auth } => Ok(Box::new(RpcBackend::connect(url, auth)?)),
    }
}
