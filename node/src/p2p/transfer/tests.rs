//! In-process swarms (memory transport, plaintext, yamux) transferring DAGs, and hand-driven
//! providers (libp2p-stream) that cut streams, corrupt blocks or send them out of order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt, TryStreamExt};
use libp2p::{PeerId, Swarm};
use libp2p_swarm_test::SwarmExt;
use stargate_protocol::car::{encode_frame_prefix, encode_header};
use stargate_protocol::transfer::{
    MAX_REQUEST_SIZE, TransferRequest, TransferResponse, TransferStatus,
};
use stargate_protocol::unixfs::export::{
    BlockSource, DEFAULT_WINDOW, DagScope, EntityBytes, WalkOptions, read_file, resolve,
    walk_blocks,
};
use stargate_protocol::unixfs::{DirectoryBuilder, ImportOptions, import_file};
use stargate_protocol::{Block, Cid};
use stargate_storage::{PinFilter, Store, StoreOptions};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use super::wire::read_frame;
use super::{Config, PROTOCOL, Transfer, TransferError};

const DEADLINE: Duration = Duration::from_secs(60);

type Penalised = Arc<Mutex<Vec<(PeerId, String)>>>;

struct Side {
    id: PeerId,
    store: Store,
    transfer: Transfer,
    control: libp2p_stream::Control,
    penalised: Penalised,
    _dir: TempDir,
}

fn side(swarm: &Swarm<libp2p_stream::Behaviour>, config: Config) -> Side {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let penalised: Penalised = Arc::default();
    let record = Arc::clone(&penalised);
    let control = swarm.behaviour().new_control();
    let transfer = Transfer::new(
        control.clone(),
        store.clone(),
        config,
        Arc::new(move |peer, reason: &str| {
            record.lock().unwrap().push((peer, reason.to_owned()));
        }),
    );
    Side {
        id: *swarm.local_peer_id(),
        store,
        transfer,
        control,
        penalised,
        _dir: dir,
    }
}

fn test_config() -> Config {
    Config {
        stall_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

/// A receiver connected to a provider; both swarms run in the background. The provider serves
/// with the real server unless `serve` is false (then the test answers its streams by hand).
async fn pair(serve: bool) -> (Side, Side, CancellationToken) {
    let mut receiver = Swarm::new_ephemeral_tokio(|_| libp2p_stream::Behaviour::new());
    let mut provider = Swarm::new_ephemeral_tokio(|_| libp2p_stream::Behaviour::new());
    provider.listen().with_memory_addr_external().await;
    receiver.connect(&mut provider).await;
    let r = side(&receiver, test_config());
    let p = side(&provider, test_config());
    let shutdown = CancellationToken::new();
    if serve {
        p.transfer.serve(shutdown.clone()).unwrap();
    }
    tokio::spawn(receiver.loop_on_next());
    tokio::spawn(provider.loop_on_next());
    (r, p, shutdown)
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

const BIG: usize = 300 * 1024;

/// A directory holding a two-level file (1 KiB chunks), the same file again in a subdirectory,
/// a file whose leaves are all the same block, and a small file. Returns the root and the big
/// file's bytes.
fn build_dag(store: &Store) -> (Cid, Vec<u8>) {
    let opts = ImportOptions::default().with_chunker("size-1024").unwrap();
    let mut blocks: Vec<Block> = Vec::new();
    let big = pseudo_random(BIG, 1);
    let big_file = import_file(&big[..], &opts, &mut blocks, |_| {}).unwrap();
    let zeros = import_file(&vec![0u8; 40 * 1024][..], &opts, &mut blocks, |_| {}).unwrap();
    let small = import_file(&b"hello"[..], &opts, &mut blocks, |_| {}).unwrap();
    let mut dir = DirectoryBuilder::new(&opts);
    dir.add_file("big.bin", &big_file).unwrap();
    dir.add_file("sub/again.bin", &big_file).unwrap();
    dir.add_file("zeros.bin", &zeros).unwrap();
    dir.add_file("small.txt", &small).unwrap();
    let dirs = dir.finish(&mut blocks).unwrap();
    store.put_many(blocks).unwrap();
    (dirs.last().unwrap().cid, big)
}

/// The blocks the provider's walk yields for `request` (skip ignored).
async fn walk_of(store: &Store, request: &TransferRequest) -> Vec<Block> {
    let source: Arc<dyn BlockSource> = Arc::new(store.clone());
    let resolved = resolve(&*source, request.root, &request.path)
        .await
        .unwrap();
    let options = WalkOptions {
        scope: request.scope,
        entity_bytes: request.entity_bytes,
        window: DEFAULT_WINDOW,
    };
    walk_blocks(source, &resolved, options)
        .try_collect()
        .await
        .unwrap()
}

async fn fetch_cids(
    receiver: &Side,
    peer: PeerId,
    request: TransferRequest,
    pin: bool,
) -> Result<Vec<Cid>, TransferError> {
    tokio::time::timeout(
        DEADLINE,
        receiver
            .transfer
            .fetch(peer, request, pin)
            .map_ok(|b| *b.cid())
            .try_collect(),
    )
    .await
    .expect("the fetch ends within the deadline")
}

#[tokio::test]
async fn a_multi_level_dag_arrives_whole_in_walk_order_and_pinned() {
    let (receiver, provider, _stop) = pair(true).await;
    let (root, big) = build_dag(&provider.store);
    let request = TransferRequest::dag(root);
    let want: Vec<Cid> = walk_of(&provider.store, &request)
        .await
        .iter()
        .map(|b| *b.cid())
        .collect();
    // Root, sub, the big file once (root, level-1 nodes, 300 leaves), zeros, small.
    assert!(want.len() > 300, "{}", want.len());

    let got = fetch_cids(&receiver, provider.id, request, true)
        .await
        .unwrap();
    assert_eq!(got, want);
    for cid in &want {
        assert!(receiver.store.has(cid).unwrap(), "{cid} stored");
    }
    let pins = receiver.store.pins(PinFilter::Recursive).unwrap();
    assert!(
        pins.iter().any(|(cid, _)| *cid == root),
        "root pinned: {pins:?}"
    );
    // What arrived reads back as the file.
    let source: Arc<dyn BlockSource> = Arc::new(receiver.store.clone());
    let file = resolve(&*source, root, &["sub".to_owned(), "again.bin".to_owned()])
        .await
        .unwrap();
    let bytes: Vec<u8> = read_file(source, file.block, 0..BIG as u64, DEFAULT_WINDOW)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .concat();
    assert_eq!(bytes, big);
    assert!(receiver.penalised.lock().unwrap().is_empty());

    // A second fetch of what is stored runs the same way (the provider does not care).
    let again = receiver
        .transfer
        .fetch_all(provider.id, TransferRequest::dag(root), false)
        .await
        .unwrap();
    assert_eq!(again.blocks, want.len() as u64);
}

#[tokio::test]
async fn an_entity_bytes_range_brings_only_the_blocks_of_the_range() {
    let (receiver, provider, _stop) = pair(true).await;
    let (root, _) = build_dag(&provider.store);
    let request = TransferRequest {
        root,
        path: vec!["big.bin".to_owned()],
        scope: DagScope::Entity,
        entity_bytes: Some(EntityBytes {
            from: 100_000,
            to: Some(150_000),
        }),
        skip: 0,
    };
    let want: Vec<Cid> = walk_of(&provider.store, &request)
        .await
        .iter()
        .map(|b| *b.cid())
        .collect();
    let got = fetch_cids(&receiver, provider.id, request.clone(), false)
        .await
        .unwrap();
    assert_eq!(got, want);
    // The path (root directory, file root), level-1 nodes on the way, and ~50 leaves.
    assert!(want.len() > 50 && want.len() < 70, "{}", want.len());
    let all = walk_of(&provider.store, &TransferRequest::dag(root)).await;
    let stored = all
        .iter()
        .filter(|b| receiver.store.has(b.cid()).unwrap())
        .count();
    assert_eq!(stored, want.len(), "nothing outside the range is stored");

    // Pinning part of a DAG is refused before anything is asked.
    assert!(matches!(
        fetch_cids(&receiver, provider.id, request, true).await,
        Err(TransferError::BadRequest { .. })
    ));
}

#[tokio::test]
async fn missing_content_is_refused_as_not_found() {
    let (receiver, provider, _stop) = pair(true).await;
    let (root, _) = build_dag(&receiver.store);
    let err = fetch_cids(&receiver, provider.id, TransferRequest::dag(root), false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            TransferError::Refused {
                status: TransferStatus::NotFound,
                ..
            }
        ),
        "{err}"
    );
}

/// How a hand-driven provider answers the `n`th stream, given the blocks its walk yields after
/// the request's skip: the CAR bytes to send.
type Answer = Box<dyn Fn(usize, &[Block]) -> Vec<u8> + Send + Sync>;

/// Serves the provider's streams by hand, recording each request's `skip`.
fn serve_by_hand(provider: &Side, answer: Answer) -> Arc<Mutex<Vec<u64>>> {
    let skips: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut incoming = provider.control.clone().accept(PROTOCOL).unwrap();
    let store = provider.store.clone();
    let record = Arc::clone(&skips);
    tokio::spawn(async move {
        let mut n = 0;
        while let Some((_, mut stream)) = incoming.next().await {
            let body = read_frame(&mut stream, MAX_REQUEST_SIZE).await.unwrap();
            let request = TransferRequest::decode(&body).unwrap();
            record.lock().unwrap().push(request.skip);
            let blocks = walk_of(&store, &request).await;
            let skip = usize::try_from(request.skip).unwrap();
            let mut bytes = TransferResponse::new(TransferStatus::Ok, "")
                .encode()
                .to_vec();
            bytes.extend(answer(n, &blocks[skip.min(blocks.len())..]));
            n += 1;
            // The receiver may hang up first (it has seen enough); that is not our concern.
            let _ = stream.write_all(&bytes).await;
            let _ = stream.close().await;
        }
    });
    skips
}

fn car_of(root: Cid, blocks: &[Block]) -> Vec<u8> {
    let mut out = encode_header(&[root]).to_vec();
    for b in blocks {
        out.extend_from_slice(&encode_frame_prefix(b));
        out.extend_from_slice(b.data());
    }
    out
}

#[tokio::test]
async fn a_stream_cut_mid_block_or_between_blocks_is_resumed() {
    for mid_block in [true, false] {
        let (receiver, provider, _stop) = pair(false).await;
        let (root, _) = build_dag(&provider.store);
        let all = walk_of(&provider.store, &TransferRequest::dag(root)).await;
        let skips = serve_by_hand(
            &provider,
            Box::new(move |n, blocks| {
                let car = car_of(root, blocks);
                if n > 0 {
                    return car;
                }
                // The first stream ends after 100 blocks (and, mid-block, 10 bytes of the next).
                let cut = car_of(root, &blocks[..100]).len() + if mid_block { 10 } else { 0 };
                car[..cut].to_vec()
            }),
        );
        let got = fetch_cids(&receiver, provider.id, TransferRequest::dag(root), true)
            .await
            .unwrap();
        let want: Vec<Cid> = all.iter().map(|b| *b.cid()).collect();
        assert_eq!(got, want, "mid_block: {mid_block}");
        assert_eq!(*skips.lock().unwrap(), [0, 100], "mid_block: {mid_block}");
        assert!(receiver.penalised.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_provider_that_never_completes_gives_up_after_the_resumes() {
    let (receiver, provider, _stop) = pair(false).await;
    let (root, _) = build_dag(&provider.store);
    // Every stream stops after 10 more blocks, and from the fourth on, none.
    let skips = serve_by_hand(
        &provider,
        Box::new(move |n, blocks| {
            let count = if n < 3 { 10.min(blocks.len()) } else { 0 };
            car_of(root, &blocks[..count])
        }),
    );
    let err = fetch_cids(&receiver, provider.id, TransferRequest::dag(root), true)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Incomplete { .. }), "{err}");
    // After the last progress (the stream at 30 brings nothing), two more tries, then it stops.
    assert_eq!(*skips.lock().unwrap(), [0, 10, 20, 30, 30, 30]);
    assert!(receiver.store.pins(PinFilter::All).unwrap().is_empty());
}

/// A provider answers with `car(blocks)`; the receiver must penalise it and store nothing wrong.
async fn misbehaving(
    make: impl Fn(Cid, &[Block]) -> Vec<u8> + Send + Sync + 'static,
) -> (Side, Side, Vec<Block>, TransferError) {
    let (receiver, provider, _stop) = pair(false).await;
    let (root, _) = build_dag(&provider.store);
    let all = walk_of(&provider.store, &TransferRequest::dag(root)).await;
    serve_by_hand(&provider, Box::new(move |_, blocks| make(root, blocks)));
    let err = fetch_cids(&receiver, provider.id, TransferRequest::dag(root), true)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Misbehaved { .. }), "{err}");
    let penalised = receiver.penalised.lock().unwrap().clone();
    assert_eq!(penalised.len(), 1, "{penalised:?}");
    assert_eq!(penalised[0].0, provider.id);
    assert!(receiver.store.pins(PinFilter::All).unwrap().is_empty());
    (receiver, provider, all, err)
}

#[tokio::test]
async fn a_corrupt_block_gets_the_sender_penalised_and_is_not_stored() {
    let (receiver, _provider, all, err) = misbehaving(|root, blocks| {
        let mut car = car_of(root, blocks);
        // Flip the last byte of the 51st block.
        let at = car_of(root, &blocks[..51]).len() - 1;
        car[at] ^= 0x55;
        car
    })
    .await;
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(!receiver.store.has(all[50].cid()).unwrap());
    // Nothing after it was stored either.
    assert!(
        all[51..]
            .iter()
            .all(|b| !receiver.store.has(b.cid()).unwrap())
    );
}

#[tokio::test]
async fn a_block_out_of_walk_order_is_a_violation() {
    let (receiver, _provider, all, err) = misbehaving(|root, blocks| {
        let mut swapped = blocks.to_vec();
        swapped.swap(20, 21);
        car_of(root, &swapped)
    })
    .await;
    assert!(err.to_string().contains("where the walk needs"), "{err}");
    assert!(
        all[20..]
            .iter()
            .all(|b| !receiver.store.has(b.cid()).unwrap())
    );
}

#[tokio::test]
async fn a_block_beyond_the_walk_is_a_violation() {
    let (_receiver, _provider, _all, err) = misbehaving(|root, blocks| {
        let mut more = blocks.to_vec();
        more.push(
            Block::encode(
                stargate_protocol::Version::V1,
                stargate_protocol::Codec::Raw,
                stargate_protocol::HashCode::Sha2_256,
                &b"extra"[..],
            )
            .unwrap(),
        );
        car_of(root, &more)
    })
    .await;
    assert!(err.to_string().contains("beyond"), "{err}");
}

#[tokio::test]
async fn a_car_for_another_root_is_a_violation() {
    let (_receiver, _provider, _all, err) =
        misbehaving(|_, blocks| car_of(*blocks[1].cid(), blocks)).await;
    assert!(err.to_string().contains("roots"), "{err}");
}

#[test]
fn served_transfers_are_bounded_per_peer_and_in_total() {
    use super::server::Slot;
    let config = Config {
        max_served_per_peer: 2,
        max_served: 3,
        ..Config::default()
    };
    let slots = Arc::default();
    let (a, b) = (PeerId::random(), PeerId::random());
    let a1 = Slot::take(&slots, a, &config).unwrap();
    let _a2 = Slot::take(&slots, a, &config).unwrap();
    assert!(Slot::take(&slots, a, &config).is_none(), "per peer");
    let _b1 = Slot::take(&slots, b, &config).unwrap();
    assert!(Slot::take(&slots, b, &config).is_none(), "in total");
    drop(a1);
    assert!(
        Slot::take(&slots, b, &config).is_some(),
        "given back on drop"
    );
}
