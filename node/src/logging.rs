//! Tracing set-up: text or JSON to stderr, filtered by `STARGATE_LOG` or the configured level.

use anyhow::{Result, anyhow};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// What client commands log unless asked: warnings, but not the API's own report of a failed
/// command, which such a command (serving itself when no daemon runs) prints as its error.
const CLIENT_FILTER: &str = "warn,stargate_http_gateway::rpc=error";

/// Installs the global subscriber. `STARGATE_LOG` (a tracing filter) wins over the config;
/// client commands log only warnings unless asked, so their output stays Kubo's.
pub(crate) fn init(cfg: &LogConfig, daemon: bool) -> Result<()> {
    let filter = match std::env::var("STARGATE_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::try_new(&f),
        _ if daemon => EnvFilter::try_new(&cfg.level),
        _ => EnvFilter::try_new(CLIENT_FILTER),
    }
    .map_err(|e| anyhow!("invalid log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match cfg.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow!("installing the log subscriber: {e}"))
}
