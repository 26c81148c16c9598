//! `dag export|import`: DAGs as CARv1 streams, written from the walk the trustless gateway
//! uses and read with the CAR reader instance-to-instance transfer uses.

use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::json;
use stargate_protocol::car::{CarError, CarReader, car_stream};
use stargate_protocol::limits::{MAX_BLOCK_SIZE, MAX_PUT_BLOCK_SIZE};
use stargate_protocol::{Block, Cid};
use stargate_storage::{PinMode, Store};
use tokio::sync::{mpsc, oneshot};
use tokio_util::io::StreamReader;

use super::blocks::too_big;
use super::dag::{dag_blocks, resolve_root};
use super::drain::drain;
use super::response::{JsonLines, byte_stream};
use super::{Params, RpcError, RpcResult};
use crate::AppState;

impl From<CarError> for RpcError {
    fn from(e: CarError) -> Self {
        Self::client(e)
    }
}

/// Kubo's answer: a CARv1 whose one root is the argument, with every block of its DAG once,
/// depth-first in link order.
pub(crate) async fn export(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["progress"])?;
    params.flag("progress", false)?;
    let source = params.block_source(&state)?;
    let resolved = resolve_root(source.as_ref(), params.one_arg()?).await?;
    let blocks = dag_blocks(source, &resolved);
    Ok(byte_stream(
        car_stream(vec![*resolved.cid()], blocks),
        &params,
        "application/vnd.ipld.car",
    ))
}

/// Blocks in flight between the request reader and the store writer.
const BLOCKS_IN_FLIGHT: usize = 64;

/// What the import worker is told.
enum Import {
    Block(Block),
    /// Every CAR was read: store what is left and pin these roots (none without `pin-roots`).
    Done(Vec<Cid>),
}

/// Kubo's answer, once the whole body is read: with `pin-roots` (the default), a
/// `{"Root": {"Cid": {"/": cid}, "PinErrorMsg": ""}}` line per root of the CARs' headers, the
/// message saying why a root could not be pinned (its DAG is incomplete); with `stats`, a
/// `{"Stats": {"BlockCount", "BlockBytesCount"}}` line. A CAR that is malformed, or a block
/// that does not match its CID or is over the limit, fails the import: nothing is pinned.
pub(crate) async fn import(
    State(state): State<AppState>,
    params: Params,
    mut multipart: Multipart,
) -> Response {
    let opts = match ImportOptions::from_params(&params) {
        Ok(opts) => opts,
        Err(e) => {
            drain(&mut multipart).await;
            return e.into_response();
        }
    };
    let (lines, answer) = JsonLines::new(&params);
    let (queue, received) = mpsc::channel(BLOCKS_IN_FLIGHT);
    let (body_read, read) = oneshot::channel::<()>();
    let store = state.store().clone();
    let worker = tokio::task::spawn_blocking(move || write_blocks(&store, received));
    tokio::spawn(async move {
        let counted = read_cars(&mut multipart, &queue, opts.max).await;
        let unread = match &counted {
            Ok(_) => {
                let _ = body_read.send(());
                None
            }
            Err(_) => {
                drain(&mut multipart).await;
                Some(body_read)
            }
        };
        let outcome = match counted {
            Ok((roots, stats)) => {
                let roots = if opts.pin_roots { roots } else { Vec::new() };
                // The worker is gone only if it failed; its error is the answer.
                let _ = queue.send(Import::Done(roots)).await;
                drop(queue);
                worker
                    .await
                    .map_err(RpcError::from)
                    .and_then(|r| r)
                    .map(|pinned| (pinned, stats))
            }
            Err(e) => {
                drop(queue);
                let _ = worker.await;
                Err(e)
            }
        };
        match outcome {
            Ok((pinned, (blocks, bytes))) => {
                for (root, error) in pinned {
                    state.content_added(root, error.is_none());
                    let line = json!({ "Root": {
                        "Cid": { "/": root.to_string() },
                        "PinErrorMsg": error.unwrap_or_default(),
                    }});
                    lines.send(&line).await;
                }
                if opts.stats {
                    let line =
                        json!({ "Stats": { "BlockCount": blocks, "BlockBytesCount": bytes } });
                    lines.send(&line).await;
                }
            }
            Err(e) => lines.fail(e).await,
        }
        drop(unread);
    });
    answer
        .respond_after(async {
            let _ = read.await;
        })
        .await
}

struct ImportOptions {
    pin_roots: bool,
    stats: bool,
    max: usize,
}

impl ImportOptions {
    fn from_params(params: &Params) -> RpcResult<Self> {
        // `silent` only quiets Kubo's CLI; its API answers the same.
        params.only(&["pin-roots", "silent", "stats", "allow-big-block"])?;
        params.flag("silent", false)?;
        Ok(Self {
            pin_roots: params.flag("pin-roots", true)?,
            stats: params.flag("stats", false)?,
            max: if params.flag("allow-big-block", false)? {
                MAX_BLOCK_SIZE
            } else {
                MAX_PUT_BLOCK_SIZE
            },
        })
    }
}

/// Reads every part as a CAR, handing its verified blocks to the worker; the roots of all
/// headers (each once, in order) and the blocks and bytes read.
async fn read_cars(
    multipart: &mut Multipart,
    queue: &mpsc::Sender<Import>,
    max: usize,
) -> RpcResult<(Vec<Cid>, (u64, u64))> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        RpcError::client(format!("reading the request: {e}"))
    };
    let mut roots: Vec<Cid> = Vec::new();
    let (mut blocks, mut bytes) = (0u64, 0u64);
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let reader = StreamReader::new(field.map_err(std::io::Error::other));
        let mut car = CarReader::new(reader).await?;
        for root in car.roots() {
            if !roots.contains(root) {
                roots.push(*root);
            }
        }
        while let Some(block) = car.next_block().await? {
            let len = block.data().len();
            if len > max {
                return Err(RpcError::client(format!(
                    "import failed at block {}: {}",
                    block.cid(),
                    too_big(max)
                )));
            }
            blocks += 1;
            bytes += len as u64;
            if queue.send(Import::Block(block)).await.is_err() {
                // The worker failed; the answer is its error.
                return Ok((roots, (blocks, bytes)));
            }
        }
    }
    Ok((roots, (blocks, bytes)))
}

/// Stores every block it is given; once told the import is done, pins each root on its own
/// (one incomplete DAG does not stop the others) and gives each root's pin error. A queue that
/// closes before that (the request was refused) pins nothing.
fn write_blocks(
    store: &Store,
    mut received: mpsc::Receiver<Import>,
) -> RpcResult<Vec<(Cid, Option<String>)>> {
    let mut writer = store.writer();
    let roots = loop {
        match received.blocking_recv() {
            Some(Import::Block(block)) => writer.put(block)?,
            Some(Import::Done(roots)) => break roots,
            None => {
                writer.finish(None)?;
                return Err(RpcError::client(
                    "the import was cut short; nothing was pinned",
                ));
            }
        }
    };
    // Held until the roots are pinned, so that no GC runs between the blocks' commit and
    // their pins (writers nest).
    let hold = store.writer();
    writer.finish(None)?;
    let pinned = roots
        .into_iter()
        .map(|root| {
            let error = store.pin(&root, PinMode::Recursive).err();
            (root, error.map(|e| e.to_string()))
        })
        .collect();
    hold.finish(None)?;
    Ok(pinned)
}
