//! Writing CARv1 as a stream of `Bytes`.

use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt, stream};

use crate::{Block, Cid};

/// The dag-cbor of a CARv1 header naming `roots`.
pub(super) fn header_cbor(roots: &[Cid]) -> Vec<u8> {
    // Serialising a list of CIDs and an integer into a Vec cannot fail.
    iroh_car::CarHeader::new_v1(roots.to_vec())
        .encode()
        .unwrap_or_default()
}

/// The CAR header naming `roots`, with its length prefix.
pub fn encode_header(roots: &[Cid]) -> Bytes {
    let cbor = header_cbor(roots);
    let mut buf = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(cbor.len(), &mut buf);
    let mut out = BytesMut::with_capacity(prefix.len() + cbor.len());
    out.put_slice(prefix);
    out.put_slice(&cbor);
    out.freeze()
}

/// What precedes a block's bytes in a CAR: the frame length and the CID.
pub fn encode_frame_prefix(block: &Block) -> Bytes {
    let cid = block.cid().to_bytes();
    let mut buf = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(cid.len() + block.data().len(), &mut buf);
    let mut out = BytesMut::with_capacity(prefix.len() + cid.len());
    out.put_slice(prefix);
    out.put_slice(&cid);
    out.freeze()
}

/// A CARv1 of `blocks` under `roots`, as chunks: the header, then for each block its frame
/// prefix and its bytes (shared, not copied). An error from `blocks` is passed on and ends the
/// stream; a consumer that sees it has an incomplete CAR.
pub fn car_stream<S, E>(roots: Vec<Cid>, blocks: S) -> impl Stream<Item = Result<Bytes, E>> + Send
where
    S: Stream<Item = Result<Block, E>> + Send,
    E: Send,
{
    let header = stream::once(async move { Ok(encode_header(&roots)) });
    let body = blocks
        .scan(false, |failed, item| {
            let out = if *failed {
                None
            } else {
                *failed = item.is_err();
                Some(item)
            };
            async move { out }
        })
        .flat_map(|item| {
            let chunks = match item {
                Ok(block) => {
                    let prefix = encode_frame_prefix(&block);
                    let (_, data) = block.into_parts();
                    vec![Ok(prefix), Ok(data)]
                }
                Err(e) => vec![Err(e)],
            };
            stream::iter(chunks)
        });
    header.chain(body)
}
