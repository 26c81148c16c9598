//! Bitcoin anchoring in the daemon: `[chain]` and the secrets turned into the chain crate's
//! configuration, the [`AnchorService`] behind the HTTP surface's [`Anchoring`] trait, and its
//! metrics (`anchor_cids{state}`, `block_sync_lag_blocks`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use stargate_chain::{
    AnchorService, AnchorStatus, BackendConfig, ChainConfig, ChainError, ChainStopError,
    CidAnchorState, DiscoveredAnchor, FeePolicy, RpcAuth, SyncProgress,
};
use stargate_http_gateway::{
    AnchorEntry, AnchorState, Anchoring, AnchoringError, AnchoringSummary, WalletBalance,
};
use stargate_protocol::Cid;
use stargate_protocol::anchor::{AnchorProof, Network};
use stargate_storage::Store;

use crate::config::{ChainSection, Secrets};

/// How often the anchor gauges are refreshed from the database and the watcher.
const METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// The chain crate's configuration from `[chain]` and the secrets, or `None` when no backend is
/// set (the chain part is off).
///
/// # Errors
/// A value that cannot work: an unknown network, both or half-configured backends.
pub(crate) fn settings(
    section: &ChainSection,
    secrets: &Secrets,
    data_dir: &Path,
) -> Result<Option<ChainConfig>> {
    let network: Network = section
        .bitcoin_network
        .parse()
        .context("[chain] bitcoin_network (STARGATE_BITCOIN_NETWORK)")?;
    for (key, url) in [
        ("electrum_url", &section.electrum_url),
        ("rpc_url", &section.rpc_url),
    ] {
        let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        if rest
            .split('/')
            .next()
            .is_some_and(|host| host.contains('@'))
        {
            bail!(
                "[chain] {key} must not carry credentials (URLs are logged and shown by `anchor status`): use rpc_cookie, or rpc_user with STARGATE_CHAIN_RPC_PASSWORD"
            );
        }
    }
    let backend = match (section.electrum_url.is_empty(), section.rpc_url.is_empty()) {
        (true, true) => return Ok(None),
        (false, false) => bail!(
            "[chain] electrum_url and rpc_url are both set (STARGATE_CHAIN_ELECTRUM_URL, STARGATE_CHAIN_RPC_URL); keep one"
        ),
        (false, true) => BackendConfig::Electrum {
            url: section.electrum_url.clone(),
            validate_domain: section.electrum_validate_domain,
        },
        (true, false) => BackendConfig::Rpc {
            url: section.rpc_url.clone(),
            auth: rpc_auth(section, secrets)?,
        },
    };
    let mut config = ChainConfig::new(network, backend, data_dir.to_path_buf());
    config.batch_interval = Duration::from_secs(section.anchor_batch_interval_sec);
    config.batch_max = section.anchor_batch_max;
    config.fees = FeePolicy {
        floor: section.fee_floor_sat_vb,
        ceiling: section.fee_ceiling_sat_vb,
        fallback: section.fee_fallback_sat_vb,
        target_blocks: section.fee_target_blocks,
    };
    config.rbf_after = Duration::from_secs(section.rbf_after_sec);
    config.rebroadcast_after = Duration::from_secs(section.rebroadcast_after_sec);
    config.poll_interval = Duration::from_secs(section.poll_interval_sec.max(1));
    config.scan_anchors = section.scan_anchors;
    config.wallet_key = secrets.wallet_key.as_deref().cloned();
    config.validate().context("[chain]")?;
    Ok(Some(config))
}

fn rpc_auth(section: &ChainSection, secrets: &Secrets) -> Result<RpcAuth> {
    let password = secrets.rpc_password.as_deref();
    match (section.rpc_cookie.is_empty(), section.rpc_user.is_empty()) {
        (false, true) if password.is_none() => {
            Ok(RpcAuth::Cookie(section.rpc_cookie.clone().into()))
        }
        (true, false) => match password {
            Some(password) => Ok(RpcAuth::UserPass {
                user: section.rpc_user.clone(),
                password: password.clone(),
            }),
            None => bail!(
                "[chain] rpc_user is set but STARGATE_CHAIN_RPC_PASSWORD is not: set the password in the environment"
            ),
        },
        (true, true) => bail!(
            "[chain] rpc_url needs credentials: rpc_cookie (STARGATE_CHAIN_RPC_COOKIE) or rpc_user (STARGATE_CHAIN_RPC_USER) with STARGATE_CHAIN_RPC_PASSWORD"
        ),
        _ => bail!(
            "[chain] give either rpc_cookie or rpc_user with STARGATE_CHAIN_RPC_PASSWORD, not both"
        ),
    }
}

/// The running chain service, as the HTTP surface uses it.
#[derive(Debug, Clone)]
pub(crate) struct ChainAnchoring {
    service: AnchorService,
}

impl ChainAnchoring {
    /// Starts the service. Anchors that other instances put in new blocks (with
    /// `scan_anchors`) are logged until the mirror takes them.
    pub(crate) fn start(
        store: Store,
        config: ChainConfig,
        token: &CancellationToken,
    ) -> Result<Self> {
        let backend = config.backend.describe();
        let network = config.network;
        let (service, discovered) =
            AnchorService::start(store, config).context("starting the chain service")?;
        if let Some(discovered) = discovered {
            tokio::spawn(log_discovered(discovered, token.clone()));
        }
        tracing::info!(%network, %backend, "chain service started");
        Ok(Self { service })
    }

    /// Stops the watcher after its current step, waiting up to `limit`.
    ///
    /// # Errors
    /// The worker panicked (its message) or was still busy after `limit`.
    pub(crate) async fn stop(&self, limit: Duration) -> Result<(), ChainStopError> {
        self.service.shutdown(limit).await
    }
}

async fn log_discovered(mut rx: mpsc::Receiver<DiscoveredAnchor>, token: CancellationToken) {
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            found = rx.recv() => match found {
                Some(a) => tracing::info!(
                    txid = %a.txid,
                    height = a.height,
                    payload = ?a.payload,
                    "found another instance's anchor"
                ),
                None => return,
            },
        }
    }
}

fn anchoring_error(e: ChainError) -> AnchoringError {
    match e {
        ChainError::NotAnchored { cid } => AnchoringError::NotAnchored { cid },
        ChainError::NotConfirmed { cid, state } => AnchoringError::NotConfirmed {
            message: ChainError::NotConfirmed {
                cid: cid.clone(),
                state,
            }
            .to_string(),
            cid,
        },
        ChainError::Stopped => AnchoringError::Stopped,
        e => AnchoringError::Failed(e.to_string()),
    }
}

fn progress(p: SyncProgress) -> stargate_http_gateway::SyncProgress {
    stargate_http_gateway::SyncProgress::new(p.stage.to_string(), p.done, p.total, p.to_string())
}

fn entry(status: AnchorStatus) -> AnchorEntry {
    let state = match status.state {
        CidAnchorState::Queued { queued_at } => AnchorState::Queued { queued_at },
        CidAnchorState::Broadcast { txid } => AnchorState::Broadcast {
            txid: txid.to_string(),
        },
        CidAnchorState::Confirmed {
            txid,
            height,
            depth,
        } => AnchorState::Confirmed {
            txid: txid.to_string(),
            height,
            depth,
        },
        CidAnchorState::Failed { reason } => AnchorState::Failed { reason },
        other => AnchorState::Failed {
            reason: format!("unknown state {other:?}"),
        },
    };
    AnchorEntry {
        cid: status.cid,
        state,
    }
}

impl Anchoring for ChainAnchoring {
    fn anchor(&self, cids: Vec<Cid>) -> BoxFuture<'_, Result<Vec<AnchorEntry>, AnchoringError>> {
        async move {
            let statuses = self.service.anchor(cids).await.map_err(anchoring_error)?;
            Ok(statuses.into_iter().map(entry).collect())
        }
        .boxed()
    }

    fn status(&self, cid: Cid) -> BoxFuture<'_, Result<Option<AnchorEntry>, AnchoringError>> {
        async move {
            let status = self.service.status(cid).await.map_err(anchoring_error)?;
            Ok(status.map(entry))
        }
        .boxed()
    }

    fn proof(&self, cid: Cid) -> BoxFuture<'_, Result<AnchorProof, AnchoringError>> {
        async move { self.service.proof(cid).await.map_err(anchoring_error) }.boxed()
    }

    fn summary(&self) -> BoxFuture<'_, Result<AnchoringSummary, AnchoringError>> {
        async move {
            let s = self.service.summary().await.map_err(anchoring_error)?;
            let mut out = AnchoringSummary::default();
            out.network = s.network.to_string();
            out.backend = s.backend;
            out.tip_height = s.tip_height;
            out.synced_height = s.synced_height;
            out.lag_blocks = s.lag_blocks;
            out.queued = s.counts.queued;
            out.broadcast = s.counts.broadcast;
            out.confirmed = s.counts.confirmed;
            out.failed = s.counts.failed;
            out.syncing = s.syncing.map(progress);
            out.last_error = s.last_error;
            Ok(out)
        }
        .boxed()
    }

    fn wallet_address(&self) -> BoxFuture<'_, Result<String, AnchoringError>> {
        async move {
            let address = self
                .service
                .wallet_address()
                .await
                .map_err(anchoring_error)?;
            Ok(address.to_string())
        }
        .boxed()
    }

    fn wallet_balance(&self) -> BoxFuture<'_, Result<WalletBalance, AnchoringError>> {
        async move {
            let b = self
                .service
                .wallet_balance()
                .await
                .map_err(anchoring_error)?;
            let mut balance = WalletBalance::new(b.confirmed_sat, b.pending_sat, b.immature_sat);
            balance.synced_height = Some(b.synced_height);
            balance.syncing = b.syncing.map(progress);
            Ok(balance)
        }
        .boxed()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// The anchor gauges.
#[derive(Debug, Clone)]
pub(crate) struct ChainMetrics {
    cids: Family<StateLabels, Gauge>,
    lag: Gauge,
}

impl ChainMetrics {
    /// Registers `anchor_cids{state}` and `block_sync_lag_blocks` in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let cids = Family::<StateLabels, Gauge>::default();
        registry.register(
            "anchor_cids",
            "CIDs queued for anchoring, by state (queued, broadcast, confirmed, failed)",
            cids.clone(),
        );
        let lag = Gauge::default();
        registry.register(
            "block_sync_lag_blocks",
            "Blocks between the chain backend's tip and the height the anchoring wallet has synced",
            lag.clone(),
        );
        Self { cids, lag }
    }

    fn set(&self, summary: &AnchoringSummary) {
        for (state, n) in [
            ("queued", summary.queued),
            ("broadcast", summary.broadcast),
            ("confirmed", summary.confirmed),
            ("failed", summary.failed),
        ] {
            self.cids
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        // Until the watcher has seen the tip, the lag is unknown: report the whole chain.
        let lag = summary
            .lag_blocks
            .or(summary.tip_height)
            .map_or(0, i64::from);
        self.lag.set(lag);
    }

    /// Refreshes the gauges every few seconds until `token` is cancelled.
    pub(crate) async fn run(self, anchoring: Arc<ChainAnchoring>, token: CancellationToken) {
        let mut tick = tokio::time::interval(METRICS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            match anchoring.summary().await {
                Ok(summary) => self.set(&summary),
                Err(e) => tracing::debug!(error = %e, "anchor metrics not refreshed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn section(pairs: &[(&str, &str)]) -> ChainSection {
        let env = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::load(Path::new("/nonexistent-stargate-dir"), env)
            .unwrap()
            .chain
    }

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        Secrets::from_env(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .unwrap()
    }

    #[test]
    fn no_backend_means_off() {
        let dir = Path::new("/data");
        assert!(
            settings(&section(&[]), &secrets(&[]), dir)
                .unwrap()
                .is_none()
        );
        let net = section(&[("STARGATE_BITCOIN_NETWORK", "bitcoin")]);
        assert!(settings(&net, &secrets(&[]), dir).is_err());
    }

    #[test]
    fn backends_and_credentials() {
        let dir = Path::new("/data");
        let electrum = section(&[
            ("STARGATE_BITCOIN_NETWORK", "regtest"),
            ("STARGATE_CHAIN_ELECTRUM_URL", "tcp://127.0.0.1:50001"),
            ("STARGATE_CHAIN_ANCHOR_BATCH_INTERVAL_SEC", "2"),
        ]);
        let config = settings(&electrum, &secrets(&[]), dir).unwrap().unwrap();
        assert_eq!(config.network, Network::Regtest);
        assert_eq!(config.backend.describe(), "electrum tcp://127.0.0.1:50001");
        assert_eq!(config.batch_interval, Duration::from_secs(2));
        assert!(config.wallet_key.is_none());

        let cookie = section(&[
            ("STARGATE_CHAIN_RPC_URL", "http://127.0.0.1:8332"),
            ("STARGATE_CHAIN_RPC_COOKIE", "/btc/.cookie"),
        ]);
        let config = settings(
            &cookie,
            &secrets(&[("STARGATE_CHAIN_WALLET_KEY", "xprv1")]),
            dir,
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.network, Network::Mainnet);
        assert!(
            matches!(config.backend, BackendConfig::Rpc { auth: RpcAuth::Cookie(ref p), .. } if p == Path::new("/btc/.cookie"))
        );
        assert_eq!(config.wallet_key.as_deref(), Some("xprv1"));

        let user = section(&[
            ("STARGATE_CHAIN_RPC_URL", "http://127.0.0.1:8332"),
            ("STARGATE_CHAIN_RPC_USER", "alice"),
        ]);
        assert!(settings(&user, &secrets(&[]), dir).is_err());
        let config = settings(
            &user,
            &secrets(&[("STARGATE_CHAIN_RPC_PASSWORD", "hunter2")]),
            dir,
        )
        .unwrap()
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));

        let both = section(&[
            ("STARGATE_CHAIN_RPC_URL", "http://127.0.0.1:8332"),
            ("STARGATE_CHAIN_ELECTRUM_URL", "tcp://127.0.0.1:50001"),
            ("STARGATE_CHAIN_RPC_COOKIE", "/btc/.cookie"),
        ]);
        assert!(settings(&both, &secrets(&[]), dir).is_err());
        let inline = section(&[
            (
                "STARGATE_CHAIN_RPC_URL",
                "http://alice:hunter2@127.0.0.1:8332/",
            ),
            ("STARGATE_CHAIN_RPC_COOKIE", "/btc/.cookie"),
        ]);
        let err = settings(&inline, &secrets(&[]), dir).unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
        let none = section(&[("STARGATE_CHAIN_RPC_URL", "http://127.0.0.1:8332")]);
        assert!(settings(&none, &secrets(&[]), dir).is_err());
        let bad_batch = section(&[
            ("STARGATE_CHAIN_ELECTRUM_URL", "tcp://127.0.0.1:50001"),
            ("STARGATE_CHAIN_ANCHOR_BATCH_MAX", "0"),
        ]);
        assert!(settings(&bad_batch, &secrets(&[]), dir).is_err());
    }

    #[test]
    fn gauges_follow_the_summary() {
        let mut registry = Registry::default();
        let metrics = ChainMetrics::register(&mut registry);
        let mut summary = AnchoringSummary::default();
        summary.queued = 3;
        summary.confirmed = 2;
        summary.tip_height = Some(120);
        summary.lag_blocks = Some(4);
        metrics.set(&summary);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("anchor_cids{state=\"queued\"} 3"), "{text}");
        assert!(
            text.contains("anchor_cids{state=\"confirmed\"} 2"),
            "{text}"
        );
        assert!(text.contains("anchor_cids{state=\"failed\"} 0"), "{text}");
        assert!(text.contains("block_sync_lag_blocks 4"), "{text}");
    }
}
