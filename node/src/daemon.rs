//! `stargate daemon`: builds every part of the node, serves until a signal, shuts down in order.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use stargate_http_gateway::Observability;

use crate::cli::DaemonArgs;
use crate::config::{self, Config};
use crate::shutdown;

pub(crate) async fn run(data_dir: PathBuf, mut config: Config, args: DaemonArgs) -> Result<()> {
    config::write_default(&data_dir)?;
    if let Some(addr) = args.gateway_addr {
        config.gateway.addr = addr;
    }
    if let Some(addr) = args.api_addr {
        config.api.addr = addr;
    }

    let mut registry = Registry::default();
    let http_metrics = stargate_http_gateway::HttpMetrics::register(&mut registry);
    let registry = Arc::new(registry);

    let obs = Observability::new(registry, http_metrics);
    let gateway = obs.wrap(axum::Router::new());
    let api = obs.wrap(axum::Router::new());

    let gateway_listener = bind(config.gateway.addr, "gateway").await?;
    let api_listener = bind(config.api.addr, "API").await?;

    let token = CancellationToken::new();
    shutdown::on_signal(token.clone()).context("installing signal handlers")?;
    tracing::info!(data_dir = %data_dir.display(), gateway = %config.gateway.addr, api = %config.api.addr, "daemon ready");

    let stop = |t: &CancellationToken| {
        let t = t.clone();
        async move { t.cancelled().await }
    };
    let (g, a) = tokio::join!(
        stargate_http_gateway::serve(gateway_listener, gateway, stop(&token)),
        stargate_http_gateway::serve(api_listener, api, stop(&token)),
    );
    g.context("gateway server")?;
    a.context("API server")?;
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} to {addr} (is another node running?)"))
}
