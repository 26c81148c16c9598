//! The receiver side: streams from the provider feed [`Arrivals`]; the walk over it decides what
//! is stored and when the transfer is complete; broken streams are resumed.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use stargate_protocol::car::{CarError, CarReader};
use stargate_protocol::transfer::{
    MAX_RESPONSE_SIZE, TransferRequest, TransferResponse, TransferStatus,
};
use stargate_protocol::unixfs::export::{
    BlockSource, DEFAULT_WINDOW, DagScope, ExportError, WalkOptions, resolve, walk_blocks,
};
use stargate_protocol::{Block, Cid};
use stargate_storage::Store;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::compat::FuturesAsyncReadCompatExt;
use tokio_util::task::AbortOnDropHandle;

use super::arrivals::{Arrivals, RECENT_BYTES};
use super::config::Config;
use super::error::TransferError;
use super::wire::{FrameError, PROTOCOL, read_frame};
use super::writer::{self, HANDOFF_BYTES, Handoff};

/// Blocks handed to the caller's stream ahead of its reading.
const OUT_QUEUE: usize = 16;
/// Resumes of one fetch in all, progress or not.
const MAX_TOTAL_RESUMES: u32 = 64;
const _: () = assert!(
    HANDOFF_BYTES <= RECENT_BYTES,
    "blocks not yet handed over must still be among the recent ones (see Handoff)"
);

/// How a stream ended.
enum End {
    /// Cleanly: the provider sent all it had.
    Eof,
    /// The stream broke (reset, lost connection, cut mid-frame): resume.
    Broken(String),
    /// No stream could be opened.
    Open(String),
    /// The provider answered without a CAR.
    Refused(TransferStatus, String),
    /// The provider broke the protocol.
    Violation(String),
}

/// The task reading a stream; aborted when dropped, so that a finished or cancelled fetch leaves
/// no reader behind.
type Receiving = AbortOnDropHandle<End>;

/// Called with a peer that broke the protocol: disconnects it.
pub(crate) type Penalise = Arc<dyn Fn(PeerId, &str) + Send + Sync>;

/// What a finished fetch received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FetchSummary {
    /// Blocks of the walk, all stored.
    pub(crate) blocks: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
}

/// The fetching side. Cheap to clone.
#[derive(Clone)]
pub(super) struct Client {
    control: libp2p_stream::Control,
    store: Store,
    config: Arc<Config>,
    fetches: Arc<Semaphore>,
    penalise: Penalise,
    /// Where fetches read their streams: the runtime that runs the swarm, so that stream and
    /// connection hand frames to each other on one thread, whoever consumes the blocks.
    runtime: tokio::runtime::Handle,
}

impl Client {
    /// Must be called on the runtime that runs the swarm.
    pub(super) fn new(
        control: libp2p_stream::Control,
        store: Store,
        config: Arc<Config>,
        penalise: Penalise,
    ) -> Self {
        Self {
            control,
            store,
            fetches: Arc::new(Semaphore::new(config.max_fetches)),
            config,
            penalise,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// See [`super::Transfer::fetch`].
    pub(super) fn fetch(
        &self,
        peer: PeerId,
        request: TransferRequest,
        pin: bool,
    ) -> BoxStream<'static, Result<Block, TransferError>> {
        let (out, blocks) = mpsc::channel(OUT_QUEUE);
        let client = self.clone();
        self.runtime.spawn(async move {
            if let Err(e) = drive(&client, peer, request, pin, &out).await
                && e != TransferError::Stopped
            {
                tracing::info!(%peer, error = %e, "transfer failed");
                let _ = out.send(Err(e)).await;
            }
        });
        futures::stream::unfold(
            blocks,
            |mut b| async move { b.recv().await.map(|v| (v, b)) },
        )
        .boxed()
    }

    /// See [`super::Transfer::fetch_all`].
    pub(super) async fn fetch_all(
        &self,
        peer: PeerId,
        request: TransferRequest,
        pin: bool,
    ) -> Result<FetchSummary, TransferError> {
        let mut blocks = self.fetch(peer, request, pin);
        // Counted on the network runtime, where the blocks arrive: handing each one to the
        // caller's runtime would wake one of its workers per block.
        let count = async move {
            let mut summary = FetchSummary::default();
            while let Some(block) = blocks.next().await {
                let block = block?;
                summary.blocks += 1;
                summary.bytes += block.data().len() as u64;
            }
            Ok(summary)
        };
        // Aborted when dropped, so a caller that goes away stops the fetch as before.
        AbortOnDropHandle::new(self.runtime.spawn(count))
            .await
            .map_err(|_| TransferError::Stopped)?
    }
}

async fn drive(
    client: &Client,
    peer: PeerId,
    mut request: TransferRequest,
    pin: bool,
    out: &mpsc::Sender<Result<Block, TransferError>>,
) -> Result<(), TransferError> {
    let root = request.root;
    if pin
        && (!request.path.is_empty()
            || request.scope != DagScope::All
            || request.entity_bytes.is_some())
    {
        return Err(TransferError::BadRequest {
            root: root.to_string(),
            reason: "only a whole DAG (no path, dag-scope all, no entity-bytes) can be pinned"
                .to_owned(),
        });
    }
    request.skip = 0;
    let _slot = Arc::clone(&client.fetches)
        .acquire_owned()
        .await
        .map_err(|_| TransferError::Stopped)?;
    let config = &*client.config;
    let to_writer = writer::start(client.store.clone());
    let arrivals = Arc::new(Arrivals::new(
        client.store.clone(),
        config.max_in_flight_bytes,
        to_writer.clone(),
    ));
    let source: Arc<dyn BlockSource> = arrivals.clone();
    let mut walk = walk(source, request.clone());
    let mut receiving = Some(start(client, peer, request.clone(), &arrivals));
    let mut resumes = Resumes::default();
    let mut walked = 0u64;
    let mut handoff = Handoff::new(to_writer);
    let mut deadline = Instant::now() + config.stall_timeout;
    let misbehaved = |reason: String| {
        (client.penalise)(peer, &reason);
        TransferError::Misbehaved { peer, reason }
    };
    // Opens the next stream, skipping what arrived, unless resuming has stopped helping.
    let resume = |why: String, resumes: &mut Resumes| {
        resumes.total += 1;
        resumes.in_a_row += 1;
        if resumes.in_a_row > config.max_resumes || resumes.total > MAX_TOTAL_RESUMES {
            return Err(TransferError::Incomplete {
                peer,
                resumes: resumes.total - 1,
                reason: why,
            });
        }
        let mut next = request.clone();
        next.skip = arrivals.received();
        tracing::debug!(%peer, %root, skip = next.skip, reason = %why, "resuming transfer");
        Ok(Some(start(client, peer, next, &arrivals)))
    };
    loop {
        tokio::select! {
            item = walk.next() => match item {
                Some(Ok(block)) => {
                    arrivals.walked(&block).map_err(misbehaved)?;
                    walked += 1;
                    resumes.in_a_row = 0;
                    handoff.push(block.clone()).await?;
                    out.send(Ok(block)).await.map_err(|_| TransferError::Stopped)?;
                    // After the sends: a slow consumer or store is not a stalled provider.
                    deadline = Instant::now() + config.stall_timeout;
                }
                Some(Err(e)) => {
                    return Err(match arrivals.failure() {
                        Some(reason) => misbehaved(reason),
                        None => walk_error(root, &e),
                    });
                }
                None => break,
            },
            end = async { receiving.as_mut()?.await.ok() }, if receiving.is_some() => {
                receiving = None;
                arrivals.set_receiving(false);
                match end {
                    Some(End::Eof) => {}
                    Some(End::Broken(why)) => receiving = resume(why, &mut resumes)?,
                    None => receiving = resume(why_aborted(), &mut resumes)?,
                    Some(End::Open(reason)) if arrivals.received() == 0 && resumes.total == 0 => {
                        return Err(TransferError::Open { peer, reason });
                    }
                    Some(End::Open(why)) => receiving = resume(why, &mut resumes)?,
                    Some(End::Refused(status, message)) => {
                        return Err(TransferError::Refused { peer, status, message });
                    }
                    Some(End::Violation(reason)) => {
                        arrivals.fail(reason.clone());
                        return Err(misbehaved(reason));
                    }
                }
            },
            // A wake-up from before the last blocks were walked is stale: the walk asks again.
            () = arrivals.starving(), if receiving.is_none() && arrivals.drained() => {
                receiving = resume(
                    format!("the stream ended after block {walked} of the walk"),
                    &mut resumes,
                )?;
            },
            () = tokio::time::sleep_until(deadline) => {
                deadline = Instant::now() + config.stall_timeout;
                drop(receiving.take());
                arrivals.set_receiving(false);
                receiving = resume(format!("no block for {:?}", config.stall_timeout), &mut resumes)?;
            },
        }
    }
    // An honest provider closes right after the last block: whatever it sent until then must
    // have been used.
    if let Some(mut last) = receiving.take()
        && tokio::time::timeout(config.stall_timeout, &mut last)
            .await
            .is_err()
    {
        tracing::debug!(%peer, %root, "the provider kept the stream open after the last block");
    }
    if !arrivals.all_used() {
        return Err(misbehaved(
            "sent blocks beyond the end of the walk".to_owned(),
        ));
    }
    let summary = handoff.finish(pin.then_some(root)).await?;
    tracing::debug!(
        %peer,
        %root,
        blocks = walked,
        new = summary.blocks_new,
        resumes = resumes.total,
        "transfer complete"
    );
    Ok(())
}
/// Streams opened again for one fetch.
#[derive(Debug, Default)]
struct Resumes {
    total: u32,
    /// Since the walk last moved.
    in_a_row: u32,
}

fn why_aborted() -> String {
    "the stream reader stopped".to_owned()
}

fn walk_error(root: Cid, e: &ExportError) -> TransferError {
    TransferError::BadRequest {
        root: root.to_string(),
        reason: e.to_string(),
    }
}

/// The walk the provider runs, over what arrives.
fn walk(
    source: Arc<dyn BlockSource>,
    request: TransferRequest,
) -> BoxStream<'static, Result<Block, ExportError>> {
    futures::stream::once(async move {
        match resolve(&*source, request.root, &request.path).await {
            Ok(resolved) => walk_blocks(
                source,
                &resolved,
                WalkOptions {
                    scope: request.scope,
                    entity_bytes: request.entity_bytes,
                    window: DEFAULT_WINDOW,
                },
            )
            .boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    })
    .flatten()
    .boxed()
}

/// Starts reading a stream for `request` into `arrivals`.
fn start(
    client: &Client,
    peer: PeerId,
    request: TransferRequest,
    arrivals: &Arc<Arrivals>,
) -> Receiving {
    arrivals.set_receiving(true);
    let control = client.control.clone();
    let arrivals = Arc::clone(arrivals);
    let stall = client.config.stall_timeout;
    AbortOnDropHandle::new(tokio::spawn(async move {
        receive(control, peer, request, &arrivals, stall).await
    }))
}

async fn receive(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    request: TransferRequest,
    arrivals: &Arc<Arrivals>,
    stall: std::time::Duration,
) -> End {
    let mut stream = match tokio::time::timeout(stall, control.open_stream(peer, PROTOCOL)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return End::Open(e.to_string()),
        Err(_) => return End::Open(format!("no stream within {stall:?}")),
    };
    let sent = tokio::time::timeout(stall, async {
        stream.write_all(&request.encode()).await?;
        stream.close().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return End::Broken("sending the request failed".to_owned());
    }
    let response = match tokio::time::timeout(stall, read_frame(&mut stream, MAX_RESPONSE_SIZE))
        .await
    {
        Ok(Ok(body)) => match TransferResponse::decode(&body) {
            Ok(r) => r,
            Err(e) => return End::Violation(e.to_string()),
        },
        Ok(Err(e @ (FrameError::Ended | FrameError::Io(_)))) => return End::Broken(e.to_string()),
        Ok(Err(e @ FrameError::Length(_))) => {
            return End::Violation(format!("bad response header: {e}"));
        }
        Err(_) => return End::Broken(format!("no response within {stall:?}")),
    };
    if response.status != TransferStatus::Ok {
        return End::Refused(response.status, response.message);
    }
    let mut car = match CarReader::new(stream.compat()).await {
        Ok(car) => car,
        Err(e) => return car_end(e),
    };
    if car.roots() != [request.root] {
        return End::Violation(format!(
            "the CAR's roots {:?} are not the requested {}",
            car.roots(),
            request.root
        ));
    }
    loop {
        match car.next_frame().await {
            Ok(Some((cid, data))) => {
                let Some(permit) = arrivals.reserve(data.len()).await else {
                    return End::Broken("the fetch ended".to_owned());
                };
                arrivals.arrived(cid);
                let shared = Arc::clone(arrivals);
                // Hashing is the receiver's main cost: spread it over rayon's threads.
                rayon::spawn(move || {
                    let block = Block::new(cid, data);
                    shared.verified(cid, block, permit);
                });
                if let Some(reason) = arrivals.failure() {
                    return End::Violation(reason);
                }
            }
            Ok(None) => return End::Eof,
            Err(e) => return car_end(e),
        }
    }
}

fn car_end(e: CarError) -> End {
    match e {
        CarError::Io { .. } | CarError::Truncated { .. } => End::Broken(e.to_string()),
        other => End::Violation(other.to_string()),
    }
}
