//! CARv1: the streaming archive of blocks that trustless gateways serve, `dag export`/`dag import`
//! exchange, and Stargate instances send each other.
//!
//! Layout: `varint(len) header`, then per block `varint(len) cid-bytes block-bytes`, where the
//! header is the dag-cbor map `{roots: [CID...], version: 1}`.
//!
//! The header's dag-cbor is `iroh-car`'s ([`iroh_car::CarHeader`]); the framing is ours, because
//! iroh-car's reader and writer do not fit how this node streams:
//! - its writer copies every block into an `AsyncWrite`, while the gateway and the transfer
//!   protocol need `Bytes` chunks that share the store's buffers (two chunks per block, no copy);
//! - its reader caps every frame, header included, at a hard-wired 4 MiB, copies each block into a
//!   fresh `Vec`, reports all failures as strings, and does not verify blocks against their CIDs;
//!   ours enforces our limits ([`crate::limits`]), verifies each block as it arrives and says
//!   which block or byte offset was wrong.

mod error;
mod read;
mod write;

pub use error::CarError;
pub use read::{CarReader, CarSummary, import_car, read_car};
pub use write::{car_stream, encode_frame_prefix, encode_header};

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::TryStreamExt;
    use proptest::prelude::*;

    use super::*;
    use crate::limits::{MAX_BLOCK_SIZE, MAX_CAR_HEADER_SIZE};
    use crate::{Block, Cid, Codec, HashCode, PbNode, Version};

    fn any_block() -> impl Strategy<Value = Block> {
        (proptest::collection::vec(any::<u8>(), 0..300), 0u8..3).prop_map(|(data, kind)| match kind
        {
            0 => Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, data).unwrap(),
            1 => Block::encode(Version::V1, Codec::Raw, HashCode::Blake3, data).unwrap(),
            _ => {
                let node = PbNode {
                    links: vec![],
                    data: Some(Bytes::from(data)),
                };
                Block::encode(Version::V0, Codec::DagPb, HashCode::Sha2_256, node.encode()).unwrap()
            }
        })
    }

    async fn write(roots: Vec<Cid>, blocks: Vec<Block>) -> Vec<u8> {
        let chunks: Vec<Bytes> = car_stream(
            roots,
            futures::stream::iter(blocks.into_iter().map(Ok::<_, CarError>)),
        )
        .try_collect()
        .await
        .unwrap();
        chunks.concat()
    }

    /// Where the last data byte of `blocks[i]` sits in `car(blocks)`.
    fn last_data_byte(blocks: &[Block], i: usize) -> usize {
        let mut at = encode_header(&[*blocks[0].cid()]).len();
        for b in &blocks[..=i] {
            at += encode_frame_prefix(b).len() + b.data().len();
        }
        at - 1
    }

    fn car(blocks: &[Block]) -> Vec<u8> {
        futures::executor::block_on(write(vec![*blocks[0].cid()], blocks.to_vec()))
    }

    proptest! {
        #[test]
        fn write_then_read_round_trips(blocks in proptest::collection::vec(any_block(), 1..12)) {
            let bytes = car(&blocks);
            let (roots, read) = read_car(&bytes).unwrap();
            prop_assert_eq!(roots, vec![*blocks[0].cid()]);
            prop_assert_eq!(read, blocks);
        }

        #[test]
        fn a_flipped_bit_never_passes_unnoticed(
            blocks in proptest::collection::vec(any_block(), 1..6),
            pick in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut bytes = car(&blocks);
            let at = pick.index(bytes.len());
            bytes[at] ^= 1 << bit;
            // Either the reader refuses, or (a flip inside a root CID) the header names another
            // root; the blocks themselves can never change unnoticed.
            if let Ok((roots, read)) = read_car(&bytes) {
                prop_assert!(roots != vec![*blocks[0].cid()]);
                prop_assert_eq!(read, blocks);
            }
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_car(&bytes);
        }
    }

    #[test]
    fn every_truncation_is_caught_or_ends_on_a_frame_boundary() {
        let blocks: Vec<Block> = (0..4u8)
            .map(|i| {
                Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, vec![i; 40]).unwrap()
            })
            .collect();
        let bytes = car(&blocks);
        let header_len = encode_header(&[*blocks[0].cid()]).len();
        let frame_len = encode_frame_prefix(&blocks[0]).len() + 40;
        for cut in 0..bytes.len() {
            match read_car(&bytes[..cut]) {
                Ok((_, read)) => {
                    assert_eq!((cut - header_len) % frame_len, 0, "cut {cut}");
                    assert_eq!(read, blocks[..(cut - header_len) / frame_len]);
                }
                Err(CarError::Truncated { .. }) => {}
                Err(e) => panic!("cut {cut}: {e}"),
            }
        }
    }

    #[test]
    fn limits_are_enforced_before_allocating() {
        let varint = |n: u64| {
            let mut buf = unsigned_varint::encode::u64_buffer();
            unsigned_varint::encode::u64(n, &mut buf).to_vec()
        };
        let huge_header = varint(MAX_CAR_HEADER_SIZE as u64 + 1);
        assert!(matches!(
            read_car(&huge_header),
            Err(CarError::HeaderTooLarge { .. })
        ));
        let block = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"x"[..]).unwrap();
        let mut bytes = encode_header(&[*block.cid()]).to_vec();
        let frame_at = bytes.len() as u64;
        bytes.extend(varint(u64::MAX / 2));
        assert_eq!(
            read_car(&bytes),
            Err(CarError::FrameTooLarge {
                offset: frame_at,
                len: u64::MAX / 2,
                max: MAX_BLOCK_SIZE + crate::limits::MAX_CID_BYTES,
            })
        );
        let mut bad = encode_header(&[*block.cid()]).to_vec();
        bad.extend([0x80, 0x00]);
        assert!(matches!(read_car(&bad), Err(CarError::BadLength { .. })));
        assert!(matches!(
            read_car(&[]),
            Err(CarError::Truncated { offset: 0 })
        ));
        assert!(matches!(
            read_car(&[0x02, 0xa0, 0xa0]),
            Err(CarError::BadHeader { .. })
        ));
    }

    #[test]
    fn a_bad_block_is_named_and_nothing_after_it_is_yielded() {
        let blocks: Vec<Block> = (0..3u8)
            .map(|i| {
                Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, vec![i; 8]).unwrap()
            })
            .collect();
        let mut bytes = car(&blocks);
        bytes[last_data_byte(&blocks, 1)] ^= 0xff;
        let mut reader = futures::executor::block_on(CarReader::new(&bytes[..])).unwrap();
        futures::executor::block_on(async {
            assert_eq!(
                reader.next_block().await.unwrap().as_ref(),
                Some(&blocks[0])
            );
            let err = reader.next_block().await.unwrap_err();
            assert!(
                matches!(&err, CarError::BadBlock { cid, .. } if cid == blocks[1].cid()),
                "{err}"
            );
            assert_eq!(reader.next_block().await, Ok(None));
        });
    }

    #[tokio::test]
    async fn import_feeds_a_sink_and_stops_at_the_first_bad_block() {
        let blocks: Vec<Block> = (0..5u8)
            .map(|i| {
                Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, vec![i; 8]).unwrap()
            })
            .collect();
        let bytes = write(vec![*blocks[0].cid()], blocks.clone()).await;
        let mut stored = Vec::new();
        let summary = import_car(&bytes[..], &mut stored).await.unwrap();
        assert_eq!(summary.blocks, 5);
        assert_eq!(summary.bytes, 40);
        assert_eq!(stored, blocks);

        let mut corrupt = bytes.clone();
        corrupt[last_data_byte(&blocks, 3)] ^= 1;
        let mut stored = Vec::new();
        assert!(matches!(
            import_car(&corrupt[..], &mut stored).await,
            Err(CarError::BadBlock { .. })
        ));
        assert_eq!(stored, blocks[..3]);
    }
}
