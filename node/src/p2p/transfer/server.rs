//! The provider side: one task per inbound stream, walking the store as the trustless gateway's
//! CAR responses do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use stargate_protocol::car::car_stream;
use stargate_protocol::transfer::{
    MAX_REQUEST_SIZE, TransferRequest, TransferResponse, TransferStatus,
};
use stargate_protocol::unixfs::export::{
    BlockSource, ExportError, SourceError, WalkOptions, resolve, walk_blocks,
};
use stargate_storage::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::Config;
use super::wire::{PROTOCOL, read_frame};

/// Blocks asked of the store reader at once while walking: enough to keep its thread busy
/// (a read takes a fraction of a millisecond), not the exporter's window, which is sized to hide
/// network round trips and would hold blocks in memory ahead of the stream.
const STORE_WINDOW: usize = 4;

/// How long a peer may take to send its request after opening the stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Transfers being served, per peer and in total.
#[derive(Debug, Default)]
pub(super) struct Slots {
    per_peer: HashMap<PeerId, usize>,
    total: usize,
}

/// A transfer's place among those served; given back on drop.
pub(super) struct Slot {
    slots: Arc<Mutex<Slots>>,
    peer: PeerId,
}

impl Slot {
    pub(super) fn take(slots: &Arc<Mutex<Slots>>, peer: PeerId, config: &Config) -> Option<Self> {
        let mut s = slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = s.per_peer.get(&peer).copied().unwrap_or(0);
        if s.total >= config.max_served || mine >= config.max_served_per_peer {
            return None;
        }
        s.total += 1;
        s.per_peer.insert(peer, mine + 1);
        Some(Self {
            slots: Arc::clone(slots),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_peer.remove(&self.peer);
            }
        }
    }
}

/// Answers peers' requests from the store until `shutdown`.
///
/// # Errors
/// When something else already accepts the protocol on this swarm.
pub(super) fn spawn(
    control: &libp2p_stream::Control,
    store: Store,
    config: Arc<Config>,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let incoming = control
        .clone()
        .accept(PROTOCOL)
        .map_err(|e| anyhow::anyhow!("registering {PROTOCOL}: {e}"))?;
    Ok(tokio::spawn(run(incoming, store, config, shutdown)))
}

/// Accepts streams until `shutdown` or until the swarm is gone.
async fn run(
    mut incoming: libp2p_stream::IncomingStreams,
    store: Store,
    config: Arc<Config>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    loop {
        let (peer, stream) = tokio::select! {
            () = shutdown.cancelled() => return,
            next = incoming.next() => match next {
                Some(s) => s,
                None => return,
            },
        };
        // Taken here, not in the task, so that a burst of streams cannot overrun the limits.
        let slot = Slot::take(&slots, peer, &config);
        let task = serve(peer, stream, store.clone(), slot, Arc::clone(&config));
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = task => {}
            }
        });
    }
}

/// Answers one stream: the request, then a status and (if it is `Ok`) the CAR.
async fn serve(
    peer: PeerId,
    mut stream: Stream,
    store: Store,
    slot: Option<Slot>,
    config: Arc<Config>,
) {
    let request = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        read_frame(&mut stream, MAX_REQUEST_SIZE),
    )
    .await
    {
        Ok(Ok(body)) => TransferRequest::decode(&body).map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(format!("unreadable request: {e}")),
        Err(_) => Err(format!("no request within {REQUEST_TIMEOUT:?}")),
    };
    let request = match request {
        Ok(r) => r,
        Err(reason) => {
            tracing::debug!(%peer, %reason, "transfer request refused");
            answer(&mut stream, TransferStatus::BadRequest, &reason).await;
            return;
        }
    };
    if slot.is_none() {
        answer(
            &mut stream,
            TransferStatus::Busy,
            "too many transfers are being served; try later",
        )
        .await;
        return;
    }
    let source: Arc<dyn BlockSource> = Arc::new(store.reader());
    let resolved = match resolve(&*source, request.root, &request.path).await {
        Ok(r) => r,
        Err(e) => {
            let status = match &e {
                ExportError::Source(SourceError::NotFound { .. })
                | ExportError::NoSuchEntry { .. } => TransferStatus::NotFound,
                ExportError::Source(_) => TransferStatus::Failed,
                _ => TransferStatus::BadRequest,
            };
            answer(&mut stream, status, &e.to_string()).await;
            return;
        }
    };
    let options = WalkOptions {
        scope: request.scope,
        entity_bytes: request.entity_bytes,
        window: STORE_WINDOW,
    };
    let skip = usize::try_from(request.skip).unwrap_or(usize::MAX);
    let blocks = walk_blocks(source, &resolved, options).skip(skip);
    let mut chunks = std::pin::pin!(car_stream(vec![request.root], blocks));
    if !write(
        &mut stream,
        &TransferResponse::new(TransferStatus::Ok, "").encode(),
        &config,
    )
    .await
    {
        return;
    }
    let mut sent = 0u64;
    let started = tokio::time::Instant::now();
    loop {
        match tokio::time::timeout(config.stall_timeout, chunks.next()).await {
            Ok(Some(Ok(chunk))) => {
                if !write(&mut stream, &chunk, &config).await {
                    return;
                }
                sent += chunk.len() as u64;
                if let Some(rate) = config.serve_bytes_per_sec {
                    tokio::time::sleep_until(started + time_for(sent, rate)).await;
                }
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                // The receiver sees the CAR end early and knows from its own walk what is missing.
                tracing::info!(%peer, root = %request.root, error = %e, "transfer cut short");
                break;
            }
            Err(_) => {
                tracing::info!(%peer, root = %request.root, "store stalled; transfer cut short");
                break;
            }
        }
    }
    let _ = tokio::time::timeout(config.stall_timeout, stream.close()).await;
    tracing::debug!(%peer, root = %request.root, bytes = sent, skip = request.skip, "transfer served");
}

/// How long sending `bytes` takes at `rate` bytes per second.
fn time_for(bytes: u64, rate: std::num::NonZeroU64) -> Duration {
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate.get());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Writes `bytes`; false when the receiver is gone or stopped reading for the stall timeout.
async fn write(stream: &mut Stream, bytes: &[u8], config: &Config) -> bool {
    matches!(
        tokio::time::timeout(config.stall_timeout, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Sends a status without a CAR and closes the stream.
async fn answer(stream: &mut Stream, status: TransferStatus, message: &str) {
    let bytes = TransferResponse::new(status, message).encode();
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.close().await
    })
    .await;
}
