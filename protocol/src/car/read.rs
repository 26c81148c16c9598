//! Reading CARv1 from a stream, verifying every block as it arrives.

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use super::error::CarError;
use crate::limits::{MAX_BLOCK_SIZE, MAX_CAR_HEADER_SIZE, MAX_CID_BYTES};
use crate::unixfs::BlockSink;
use crate::{Block, Cid};

const MAX_FRAME: usize = MAX_BLOCK_SIZE + MAX_CID_BYTES;

/// A CARv1 being read: the header is checked on open, blocks are verified one by one. After an
/// error the reader yields nothing more, so nothing behind a bad block is ever used.
#[derive(Debug)]
pub struct CarReader<R> {
    reader: BufReader<R>,
    roots: Vec<Cid>,
    offset: u64,
    failed: bool,
}

impl<R: AsyncRead + Unpin> CarReader<R> {
    /// Reads and checks the header.
    ///
    /// # Errors
    /// [`CarError`] for a truncated, oversized or invalid header, or a failing reader.
    pub async fn new(reader: R) -> Result<Self, CarError> {
        let mut this = Self {
            reader: BufReader::new(reader),
            roots: Vec::new(),
            offset: 0,
            failed: false,
        };
        let Some(len) = this.read_len().await? else {
            return Err(CarError::Truncated { offset: 0 });
        };
        if len > MAX_CAR_HEADER_SIZE as u64 {
            return Err(CarError::HeaderTooLarge {
                len,
                max: MAX_CAR_HEADER_SIZE,
            });
        }
        let header_bytes = this.read_frame(len, 0).await?;
        let header =
            iroh_car::CarHeader::decode(&header_bytes).map_err(|e| CarError::BadHeader {
                reason: e.to_string(),
            })?;
        if header.version() != 1 {
            return Err(CarError::BadHeader {
                reason: format!("version {} (only CARv1 is read)", header.version()),
            });
        }
        // Serde would also accept an array for the map, byte strings for text and more; only the
        // canonical encoding is dag-cbor, and accepting others lets a damaged header slip by.
        if super::write::header_cbor(header.roots()) != header_bytes {
            return Err(CarError::BadHeader {
                reason: "not canonical dag-cbor".to_owned(),
            });
        }
        this.roots = header.roots().to_vec();
        Ok(this)
    }

    /// The roots the header names.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next block, verified against its CID; `None` at the end of the CAR.
    ///
    /// # Errors
    /// [`CarError`] for a truncated or oversized frame, an unreadable CID, a block that does not
    /// match its CID. Every later call then returns `Ok(None)`.
    pub async fn next_block(&mut self) -> Result<Option<Block>, CarError> {
        if self.failed {
            return Ok(None);
        }
        let res = self.read_block().await;
        self.failed = res.is_err();
        res
    }

    /// The blocks as a stream, ending after the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<Block, CarError>> {
        futures::stream::try_unfold(self, |mut this| async move {
            Ok(this.next_block().await?.map(|b| (b, this)))
        })
    }

    /// The next frame as sent: the CID it claims and the bytes, NOT verified. For callers that
    /// verify blocks elsewhere (in parallel, [`Block::new`]); nothing from here may be used before
    /// that. `None` at the end of the CAR.
    ///
    /// # Errors
    /// [`CarError`] for a truncated or oversized frame or an unreadable CID. Every later call
    /// then returns `Ok(None)`.
    pub async fn next_frame(&mut self) -> Result<Option<(Cid, Bytes)>, CarError> {
        if self.failed {
            return Ok(None);
        }
        let res = self.read_unverified().await;
        self.failed = res.is_err();
        res
    }

    async fn read_block(&mut self) -> Result<Option<Block>, CarError> {
        let Some((cid, data)) = self.read_unverified().await? else {
            return Ok(None);
        };
        Block::new(cid, data)
            .map(Some)
            .map_err(|e| CarError::BadBlock {
                cid,
                reason: e.to_string(),
            })
    }

    async fn read_unverified(&mut self) -> Result<Option<(Cid, Bytes)>, CarError> {
        let start = self.offset;
        let Some(len) = self.read_len().await? else {
            return Ok(None);
        };
        if len > MAX_FRAME as u64 {
            return Err(CarError::FrameTooLarge {
                offset: start,
                len,
                max: MAX_FRAME,
            });
        }
        let frame = self.read_frame(len, start).await?;
        let mut cursor = std::io::Cursor::new(&frame[..]);
        let cid = Cid::read_bytes(&mut cursor).map_err(|e| CarError::BadCid {
            offset: start,
            reason: e.to_string(),
        })?;
        // The cursor stands inside `frame`, so its position fits in usize.
        Ok(Some((cid, frame.slice(cursor.position() as usize..))))
    }

    /// A length prefix; `None` at a clean end of input (no byte of a new frame read).
    async fn read_len(&mut self) -> Result<Option<u64>, CarError> {
        let start = self.offset;
        let mut buf = [0u8; 10];
        for i in 0..buf.len() {
            let n = self
                .reader
                .read(&mut buf[i..=i])
                .await
                .map_err(|e| self.io(e))?;
            if n == 0 {
                return if i == 0 {
                    Ok(None)
                } else {
                    Err(CarError::Truncated { offset: start })
                };
            }
            self.offset += 1;
            if unsigned_varint::decode::is_last(buf[i]) {
                return unsigned_varint::decode::u64(&buf[..=i])
                    .map(|(v, _)| Some(v))
                    .map_err(|e| CarError::BadLength {
                        offset: start,
                        reason: e.to_string(),
                    });
            }
        }
        Err(CarError::BadLength {
            offset: start,
            reason: "longer than any 64-bit varint".to_owned(),
        })
    }

    /// `len` bytes of a frame that started at `start` (`len` already checked against a limit).
    async fn read_frame(&mut self, len: u64, start: u64) -> Result<Bytes, CarError> {
        let len = usize::try_from(len).map_err(|_| CarError::Truncated { offset: start })?;
        if len == 0 {
            return Err(CarError::BadCid {
                offset: start,
                reason: "empty frame".to_owned(),
            });
        }
        // Zeroed once, then filled. Reading into spare capacity instead would have tokio's
        // `ReadBuf` zero all of what is left of the frame before each read of a futures stream
        // (tokio_util's `Compat`, how libp2p streams are read): many times per frame.
        let mut buf = BytesMut::zeroed(len);
        match self.reader.read_exact(&mut buf).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(CarError::Truncated { offset: start });
            }
            Err(e) => return Err(self.io(e)),
        }
        self.offset += len as u64;
        Ok(buf.freeze())
    }

    fn io(&self, e: std::io::Error) -> CarError {
        CarError::Io {
            offset: self.offset,
            reason: e.to_string(),
        }
    }
}

/// What an import read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarSummary {
    /// The header's roots.
    pub roots: Vec<Cid>,
    /// Blocks read and handed to the sink.
    pub blocks: u64,
    /// Bytes of block data among them.
    pub bytes: u64,
}

/// Reads a whole CAR from `reader` into `sink` (the store's batched writer, as `add` uses),
/// block by verified block: `dag import`. Stops at the first bad block; everything before it has
/// been handed to the sink, nothing after it.
///
/// # Errors
/// [`CarError`] from the reader, or [`CarError::Sink`] when the sink refuses a block.
pub async fn import_car<R, S>(reader: R, sink: &mut S) -> Result<CarSummary, CarError>
where
    R: AsyncRead + Unpin,
    S: BlockSink + ?Sized,
{
    let mut car = CarReader::new(reader).await?;
    let mut summary = CarSummary {
        roots: car.roots().to_vec(),
        blocks: 0,
        bytes: 0,
    };
    while let Some(block) = car.next_block().await? {
        let cid = *block.cid();
        summary.blocks += 1;
        summary.bytes += block.data().len() as u64;
        sink.put(block).map_err(|e| CarError::Sink {
            reason: format!("block {cid}: {e}"),
        })?;
    }
    Ok(summary)
}

/// Reads a whole CAR held in memory: its roots and blocks, each verified.
///
/// # Errors
/// As [`CarReader::next_block`].
pub fn read_car(bytes: &[u8]) -> Result<(Vec<Cid>, Vec<Block>), CarError> {
    // A byte slice never makes the reader wait, so polling to completion here does not block.
    futures::executor::block_on(async {
        let mut car = CarReader::new(bytes).await?;
        let mut blocks = Vec::new();
        while let Some(b) = car.next_block().await? {
            blocks.push(b);
        }
        Ok((car.roots().to_vec(), blocks))
    })
}
