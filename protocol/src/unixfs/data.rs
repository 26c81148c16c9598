//! The UnixFS `Data` protobuf carried in a dag-pb node's `Data` field.
//!
//! Fields are written in field-number order and `blocksizes` unpacked, as Kubo (gogo-protobuf,
//! proto2) writes them; that byte layout is part of every CID we produce.

use bytes::Bytes;
use quick_protobuf::{BytesReader, Writer};
use thiserror::Error;

/// A UnixFS `Data` message that does not decode.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnixFsError {
    /// Not a UnixFS protobuf (truncated, wrong wire types, ...).
    #[error("invalid UnixFS data: {0}")]
    Invalid(String),
    /// The required `Type` field is missing.
    #[error("invalid UnixFS data: the Type field is missing")]
    MissingType,
    /// `Type` holds a value no UnixFS version defines.
    #[error("invalid UnixFS data: unknown node type {0}")]
    UnknownType(i32),
    /// A dag-pb node without any `Data` cannot be UnixFS.
    #[error("dag-pb node has no UnixFS data")]
    NoData,
}

/// The UnixFS node types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// Raw bytes (old-style leaves).
    Raw,
    /// A basic directory: one link per entry.
    Directory,
    /// A file or part of one.
    File,
    /// Metadata node (unused by Kubo).
    Metadata,
    /// A symbolic link; `data` is the target.
    Symlink,
    /// A HAMT-sharded directory node.
    HamtShard,
}

impl DataType {
    fn to_i32(self) -> i32 {
        match self {
            Self::Raw => 0,
            Self::Directory => 1,
            Self::File => 2,
            Self::Metadata => 3,
            Self::Symlink => 4,
            Self::HamtShard => 5,
        }
    }

    fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::Raw,
            1 => Self::Directory,
            2 => Self::File,
            3 => Self::Metadata,
            4 => Self::Symlink,
            5 => Self::HamtShard,
            _ => return None,
        })
    }
}

/// Modification time: seconds since the epoch and optional nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixTime {
    /// Seconds relative to the Unix epoch.
    pub seconds: i64,
    /// Fractional part in nanoseconds (1..=999_999_999 when present).
    pub nanos: Option<u32>,
}

/// The decoded UnixFS `Data` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixFsData {
    /// Node type.
    pub kind: DataType,
    /// Inline bytes: file content of a leaf, bitfield of a HAMT shard, symlink target.
    pub data: Option<Bytes>,
    /// Total size of the file's content under this node.
    pub filesize: Option<u64>,
    /// Content size under each link, in link order.
    pub blocksizes: Vec<u64>,
    /// HAMT hash function (0x22 = murmur3-x64-64).
    pub hash_type: Option<u64>,
    /// HAMT fanout.
    pub fanout: Option<u64>,
    /// Unix permission bits.
    pub mode: Option<u32>,
    /// Modification time.
    pub mtime: Option<UnixTime>,
}

impl UnixFsData {
    /// A node of `kind` with every optional field empty.
    pub fn new(kind: DataType) -> Self {
        Self {
            kind,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
            mode: None,
            mtime: None,
        }
    }

    /// Decodes the message. `data` of the result shares `bytes`' allocation. Unknown fields are
    /// skipped, as protobuf readers (Kubo's included) do.
    ///
    /// # Errors
    /// [`UnixFsError`] for malformed input, a missing or unknown `Type`.
    pub fn decode(bytes: &Bytes) -> Result<Self, UnixFsError> {
        let buf: &[u8] = bytes;
        let mut r = BytesReader::from_bytes(buf);
        let mut kind = None;
        let mut out = Self::new(DataType::Raw);
        let invalid = |e: quick_protobuf::Error| UnixFsError::Invalid(e.to_string());
        while !r.is_eof() {
            let tag = r.next_tag(buf).map_err(invalid)?;
            match tag {
                8 => {
                    let v = r.read_int32(buf).map_err(invalid)?;
                    kind = Some(DataType::from_i32(v).ok_or(UnixFsError::UnknownType(v))?);
                }
                18 => out.data = Some(bytes.slice_ref(r.read_bytes(buf).map_err(invalid)?)),
                24 => out.filesize = Some(r.read_uint64(buf).map_err(invalid)?),
                32 => out.blocksizes.push(r.read_uint64(buf).map_err(invalid)?),
                // Packed encoding of field 4 is valid protobuf too.
                34 => out.blocksizes.extend(
                    r.read_packed(buf, |r, b| r.read_uint64(b))
                        .map_err(invalid)?,
                ),
                40 => out.hash_type = Some(r.read_uint64(buf).map_err(invalid)?),
                48 => out.fanout = Some(r.read_uint64(buf).map_err(invalid)?),
                56 => out.mode = Some(r.read_uint32(buf).map_err(invalid)?),
                66 => {
                    let sub = r.read_bytes(buf).map_err(invalid)?;
                    out.mtime = Some(decode_time(sub)?);
                }
                t => r.read_unknown(buf, t).map_err(invalid)?,
            }
        }
        out.kind = kind.ok_or(UnixFsError::MissingType)?;
        Ok(out)
    }

    /// Decodes the UnixFS message from a dag-pb node's `Data` field.
    ///
    /// # Errors
    /// [`UnixFsError::NoData`] when the node has none, otherwise as [`UnixFsData::decode`].
    pub fn from_node_data(data: Option<&Bytes>) -> Result<Self, UnixFsError> {
        Self::decode(data.ok_or(UnixFsError::NoData)?)
    }

    /// Encodes the message as Kubo does.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.data.as_ref().map_or(0, Bytes::len) + 32);
        // Writing into a Vec cannot fail.
        let _ = self.write(&mut Writer::new(&mut buf));
        buf
    }

    fn write(&self, w: &mut Writer<&mut Vec<u8>>) -> quick_protobuf::Result<()> {
        w.write_with_tag(8, |w| w.write_enum(self.kind.to_i32()))?;
        if let Some(d) = &self.data {
            w.write_with_tag(18, |w| w.write_bytes(d))?;
        }
        if let Some(v) = self.filesize {
            w.write_with_tag(24, |w| w.write_uint64(v))?;
        }
        for &v in &self.blocksizes {
            w.write_with_tag(32, |w| w.write_uint64(v))?;
        }
        if let Some(v) = self.hash_type {
            w.write_with_tag(40, |w| w.write_uint64(v))?;
        }
        if let Some(v) = self.fanout {
            w.write_with_tag(48, |w| w.write_uint64(v))?;
        }
        if let Some(v) = self.mode {
            w.write_with_tag(56, |w| w.write_uint32(v))?;
        }
        if let Some(t) = self.mtime {
            let mut sub = Vec::with_capacity(16);
            let mut sw = Writer::new(&mut sub);
            sw.write_with_tag(8, |w| w.write_int64(t.seconds))?;
            if let Some(n) = t.nanos {
                sw.write_with_tag(21, |w| w.write_fixed32(n))?;
            }
            w.write_with_tag(66, |w| w.write_bytes(&sub))?;
        }
        Ok(())
    }
}

fn decode_time(buf: &[u8]) -> Result<UnixTime, UnixFsError> {
    let invalid = |e: quick_protobuf::Error| UnixFsError::Invalid(e.to_string());
    let mut r = BytesReader::from_bytes(buf);
    let mut seconds = None;
    let mut nanos = None;
    while !r.is_eof() {
        match r.next_tag(buf).map_err(invalid)? {
            8 => seconds = Some(r.read_int64(buf).map_err(invalid)?),
            21 => nanos = Some(r.read_fixed32(buf).map_err(invalid)?),
            t => r.read_unknown(buf, t).map_err(invalid)?,
        }
    }
    Ok(UnixTime {
        seconds: seconds.ok_or_else(|| UnixFsError::Invalid("mtime without seconds".to_owned()))?,
        nanos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_kind() -> impl Strategy<Value = DataType> {
        (0i32..6).prop_map(|v| DataType::from_i32(v).expect("in range"))
    }

    fn any_data() -> impl Strategy<Value = UnixFsData> {
        (
            any_kind(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u64>(), 0..8),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of((any::<i64>(), proptest::option::of(any::<u32>()))),
        )
            .prop_map(
                |(kind, data, filesize, blocksizes, hash_type, fanout, mode, mtime)| UnixFsData {
                    kind,
                    data: data.map(Bytes::from),
                    filesize,
                    blocksizes,
                    hash_type,
                    fanout,
                    mode,
                    mtime: mtime.map(|(seconds, nanos)| UnixTime { seconds, nanos }),
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(d in any_data()) {
            let bytes = Bytes::from(d.encode());
            prop_assert_eq!(UnixFsData::decode(&bytes).unwrap(), d);
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = UnixFsData::decode(&Bytes::from(bytes));
        }
    }

    #[test]
    fn kubo_byte_layout() {
        // Kubo's empty file and its directory node.
        let mut f = UnixFsData::new(DataType::File);
        f.filesize = Some(0);
        assert_eq!(f.encode(), [0x08, 0x02, 0x18, 0x00]);
        assert_eq!(UnixFsData::new(DataType::Directory).encode(), [0x08, 0x01]);
        // A parent node: filesize then each blocksize unpacked.
        let mut p = UnixFsData::new(DataType::File);
        p.filesize = Some(300);
        p.blocksizes = vec![256, 44];
        assert_eq!(
            p.encode(),
            [0x08, 0x02, 0x18, 0xac, 0x02, 0x20, 0x80, 0x02, 0x20, 0x2c]
        );
    }

    #[test]
    fn rejects_missing_and_unknown_type() {
        assert_eq!(
            UnixFsData::decode(&Bytes::from_static(&[0x18, 0x00])),
            Err(UnixFsError::MissingType)
        );
        assert_eq!(
            UnixFsData::decode(&Bytes::from_static(&[0x08, 0x09])),
            Err(UnixFsError::UnknownType(9))
        );
    }
}
