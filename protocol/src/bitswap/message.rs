//! The Bitswap protobuf message, its framing and its splitting.
//!
//! ```text
//! message Message {
//!   message Wantlist {
//!     enum WantType { Block = 0; Have = 1; }
//!     message Entry { bytes block = 1; int32 priority = 2; bool cancel = 3;
//!                     WantType wantType = 4; bool sendDontHave = 5; }
//!     repeated Entry entries = 1; bool full = 2;
//!   }
//!   message Block { bytes prefix = 1; bytes data = 2; }
//!   enum BlockPresenceType { Have = 0; DontHave = 1; }
//!   message BlockPresence { bytes cid = 1; BlockPresenceType type = 2; }
//!   Wantlist wantlist = 1;
//!   repeated bytes blocks = 2;            // 1.0.0
//!   repeated Block payload = 3;           // 1.1.0+
//!   repeated BlockPresence blockPresences = 4;
//!   int32 pendingBytes = 5;
//! }
//! ```
//! proto3: fields holding their default value are not written.

use bytes::Bytes;
use quick_protobuf::sizeofs::{sizeof_int32, sizeof_len, sizeof_varint};
use quick_protobuf::{BytesReader, MessageWrite, Writer, WriterBackend};

use super::error::BitswapError;
use super::prefix::CidPrefix;
use crate::limits::MAX_CID_BYTES;
use crate::{Block, Cid};

/// Kubo's largest Bitswap message (libp2p's `network.MessageSizeMax`, 4 MiB): the body after
/// the length prefix.
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// A version of the Bitswap protocol, as negotiated on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// `/ipfs/bitswap/1.0.0` (and the unversioned `/ipfs/bitswap`): blocks as bare bytes that
    /// name CIDv0 dag-pb blocks; no want-have, no presences.
    V100,
    /// `/ipfs/bitswap/1.1.0`: blocks with CID prefixes.
    V110,
    /// `/ipfs/bitswap/1.2.0`: want-have, block presences, send-dont-have.
    V120,
}

impl ProtocolVersion {
    /// Every protocol name we speak, the preferred first (the order a dialer proposes them).
    pub const PROTOCOLS: [&'static str; 4] = [
        "/ipfs/bitswap/1.2.0",
        "/ipfs/bitswap/1.1.0",
        "/ipfs/bitswap/1.0.0",
        "/ipfs/bitswap",
    ];

    /// The version a negotiated protocol name stands for.
    pub fn from_protocol(name: &str) -> Option<Self> {
        match name {
            "/ipfs/bitswap/1.2.0" => Some(Self::V120),
            "/ipfs/bitswap/1.1.0" => Some(Self::V110),
            "/ipfs/bitswap/1.0.0" | "/ipfs/bitswap" => Some(Self::V100),
            _ => None,
        }
    }

    /// Whether the peer understands want-have, send-dont-have and block presences.
    pub fn supports_have(self) -> bool {
        self == Self::V120
    }
}

/// What a wantlist entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WantType {
    /// The block itself.
    #[default]
    Block,
    /// Whether the peer has it (1.2.0).
    Have,
}

/// One wantlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantEntry {
    /// The wanted block.
    pub cid: Cid,
    /// Higher is more urgent (Kubo counts down from `i32::MAX`).
    pub priority: i32,
    /// Withdraws an earlier want of `cid`.
    pub cancel: bool,
    /// Block or have.
    pub want_type: WantType,
    /// Whether the sender wants DONT_HAVE when the peer lacks the block.
    pub send_dont_have: bool,
}

impl WantEntry {
    /// A want of `cid`.
    pub fn want(cid: Cid, want_type: WantType, priority: i32, send_dont_have: bool) -> Self {
        Self {
            cid,
            priority,
            cancel: false,
            want_type,
            send_dont_have,
        }
    }

    /// A cancel of an earlier want of `cid`.
    pub fn cancel(cid: Cid) -> Self {
        Self {
            cid,
            priority: 0,
            cancel: true,
            want_type: WantType::Block,
            send_dont_have: false,
        }
    }
}

/// A HAVE or DONT_HAVE answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceType {
    /// The sender has the block.
    Have,
    /// The sender does not have the block.
    DontHave,
}

/// A block presence: the sender has, or has not, the block `cid` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPresence {
    /// The block asked about.
    pub cid: Cid,
    /// Have or don't have.
    pub kind: PresenceType,
}

/// A block as it travels: its bytes and the prefix of the CID it was asked under. Not verified:
/// [`Payload::into_block`] hashes it.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    /// Version, codec, hash function and digest length of the block's CID.
    pub prefix: CidPrefix,
    /// The bytes.
    pub data: Bytes,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("prefix", &self.prefix)
            .field("len", &self.data.len())
            .finish()
    }
}

impl Payload {
    /// The payload that sends `block` under its CID.
    pub fn from_block(block: &Block) -> Self {
        Self {
            prefix: CidPrefix::of(block.cid()),
            data: block.data().clone(),
        }
    }

    /// Hashes the bytes under the prefix: the block whose CID the prefix and the digest make.
    ///
    /// # Errors
    /// See [`CidPrefix::to_block`].
    pub fn into_block(self) -> Result<Block, BitswapError> {
        self.prefix.to_block(self.data)
    }
}

/// A Bitswap message. The empty message (`Message::default()`) is valid and means nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Wants and cancels.
    pub wantlist: Vec<WantEntry>,
    /// Whether `wantlist` replaces the sender's previous wantlist rather than amending it.
    pub full: bool,
    /// Blocks.
    pub payload: Vec<Payload>,
    /// HAVE / DONT_HAVE answers (1.2.0).
    pub presences: Vec<BlockPresence>,
    /// Bytes the sender still has queued for the receiver.
    pub pending_bytes: i32,
}

impl Message {
    /// Whether the message carries nothing.
    pub fn is_empty(&self) -> bool {
        self.wantlist.is_empty()
            && !self.full
            && self.payload.is_empty()
            && self.presences.is_empty()
            && self.pending_bytes == 0
    }

    /// Length of the protobuf body as `version` encodes it.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        Pb(self, version).get_size()
    }

    /// The message as it goes on a stream for a peer speaking `version`: the body's length as
    /// an unsigned varint, then the body. 1.0.0 has no prefixes (its blocks are assumed CIDv0),
    /// no presences and no pending bytes; those are left out.
    pub fn encode_framed(&self, version: ProtocolVersion) -> Vec<u8> {
        let pb = Pb(self, version);
        let len = pb.get_size();
        let mut out = Vec::with_capacity(len + sizeof_varint(len as u64));
        let mut w = Writer::new(&mut out);
        // Writing into a Vec cannot fail.
        let _ = w.write_message(&pb);
        out
    }

    /// Decodes a message body (without its length prefix). Blocks of the 1.0.0 `blocks` field
    /// come out with the CIDv0 prefix. Block bytes share `body`'s allocation.
    ///
    /// # Errors
    /// [`BitswapError::TooLarge`] for a body over [`MAX_MESSAGE_SIZE`]; the other variants for
    /// malformed protobuf, CIDs, prefixes or enum values.
    pub fn decode(body: &Bytes) -> Result<Self, BitswapError> {
        if body.len() > MAX_MESSAGE_SIZE {
            return Err(BitswapError::TooLarge {
                len: body.len(),
                max: MAX_MESSAGE_SIZE,
            });
        }
        let buf: &[u8] = body;
        let mut r = BytesReader::from_bytes(buf);
        let mut out = Self::default();
        while !r.is_eof() {
            match r.next_tag(buf).map_err(malformed)? {
                10 => decode_wantlist(r.read_bytes(buf).map_err(malformed)?, &mut out)?,
                18 => out.payload.push(Payload {
                    prefix: CidPrefix::V0,
                    data: body.slice_ref(r.read_bytes(buf).map_err(malformed)?),
                }),
                26 => out
                    .payload
                    .push(decode_payload(body, r.read_bytes(buf).map_err(malformed)?)?),
                34 => out
                    .presences
                    .push(decode_presence(r.read_bytes(buf).map_err(malformed)?)?),
                40 => out.pending_bytes = r.read_int32(buf).map_err(malformed)?,
                t => r.read_unknown(buf, t).map_err(malformed)?,
            }
        }
        Ok(out)
    }

    /// Cuts the message into messages whose bodies, encoded for `version`, are at most
    /// `max_len` bytes, keeping the order of entries, presences and blocks. `full` goes on the
    /// first piece, `pending_bytes` on the last. An empty message gives no pieces.
    ///
    /// # Errors
    /// [`BitswapError::ItemTooLarge`] when one item alone does not fit.
    pub fn split(
        self,
        version: ProtocolVersion,
        max_len: usize,
    ) -> Result<Vec<Self>, BitswapError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let Self {
            wantlist,
            full,
            payload,
            presences,
            pending_bytes,
        } = self;
        // Room every piece keeps for what only the first or last one carries (the `full` flag,
        // which may make an otherwise absent wantlist field, and the pending bytes) and for the
        // wantlist's length varint growing by a byte: pieces are never re-measured.
        let reserve = 6 + pending_size(pending_bytes, version);
        let items = wantlist
            .into_iter()
            .map(Item::Entry)
            .chain(presences.into_iter().map(Item::Presence))
            .chain(payload.into_iter().map(Item::Payload));
        let mut pieces = Vec::new();
        let mut current = Self {
            full,
            ..Self::default()
        };
        let mut sizes = Sizes::default();
        for item in items {
            let mut next = sizes;
            next.add(&item, version);
            if next.total() + reserve > max_len {
                let mut alone = Sizes::default();
                alone.add(&item, version);
                if alone.total() + reserve > max_len {
                    return Err(BitswapError::ItemTooLarge {
                        len: alone.total() + reserve,
                        max: max_len,
                    });
                }
                if !current.is_empty() {
                    pieces.push(std::mem::take(&mut current));
                }
                next = alone;
            }
            sizes = next;
            match item {
                Item::Entry(e) => current.wantlist.push(e),
                Item::Presence(p) => current.presences.push(p),
                Item::Payload(p) => current.payload.push(p),
            }
        }
        current.pending_bytes = pending_bytes;
        if !current.is_empty() {
            pieces.push(current);
        }
        Ok(pieces)
    }
}

enum Item {
    Entry(WantEntry),
    Presence(BlockPresence),
    Payload(Payload),
}

/// Running sizes of a message being filled by [`Message::split`].
#[derive(Clone, Copy, Default)]
struct Sizes {
    entries: usize,
    rest: usize,
}

impl Sizes {
    fn add(&mut self, item: &Item, version: ProtocolVersion) {
        match item {
            Item::Entry(e) => self.entries += 1 + sizeof_len(EntryPb(e).get_size()),
            Item::Presence(p) => self.rest += presence_size(p, version),
            Item::Payload(p) => self.rest += payload_size(p, version),
        }
    }

    fn total(&self) -> usize {
        let wantlist = if self.entries > 0 {
            1 + sizeof_len(self.entries)
        } else {
            0
        };
        wantlist + self.rest
    }
}

fn pending_size(pending: i32, version: ProtocolVersion) -> usize {
    if pending == 0 || version == ProtocolVersion::V100 {
        0
    } else {
        1 + sizeof_int32(pending)
    }
}

fn presence_size(p: &BlockPresence, version: ProtocolVersion) -> usize {
    if version == ProtocolVersion::V100 {
        0
    } else {
        1 + sizeof_len(PresencePb(p).get_size())
    }
}

fn payload_size(p: &Payload, version: ProtocolVersion) -> usize {
    if version == ProtocolVersion::V100 {
        1 + sizeof_len(p.data.len())
    } else {
        1 + sizeof_len(PayloadPb::new(p).get_size())
    }
}

fn malformed(e: quick_protobuf::Error) -> BitswapError {
    BitswapError::Malformed(e.to_string())
}

/// A CID field: exactly one canonically encoded CID.
fn decode_cid(bytes: &[u8], field: &'static str) -> Result<Cid, BitswapError> {
    let bad = |reason: String| BitswapError::BadCid { field, reason };
    if bytes.is_empty() {
        return Err(bad("missing".to_owned()));
    }
    if bytes.len() > MAX_CID_BYTES {
        return Err(bad(format!(
            "{} bytes, more than the {MAX_CID_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let cid = Cid::try_from(bytes).map_err(|e| bad(e.to_string()))?;
    if cid.to_bytes() != bytes {
        return Err(bad(format!(
            "{} is not encoded canonically as {}",
            cid,
            hex::encode(bytes)
        )));
    }
    Ok(cid)
}

fn decode_wantlist(buf: &[u8], out: &mut Message) -> Result<(), BitswapError> {
    let mut r = BytesReader::from_bytes(buf);
    while !r.is_eof() {
        match r.next_tag(buf).map_err(malformed)? {
            10 => out
                .wantlist
                .push(decode_entry(r.read_bytes(buf).map_err(malformed)?)?),
            16 => out.full = r.read_bool(buf).map_err(malformed)?,
            t => r.read_unknown(buf, t).map_err(malformed)?,
        }
    }
    Ok(())
}

fn decode_entry(buf: &[u8]) -> Result<WantEntry, BitswapError> {
    let mut r = BytesReader::from_bytes(buf);
    let mut cid = None;
    let mut entry = (0, false, WantType::Block, false);
    while !r.is_eof() {
        match r.next_tag(buf).map_err(malformed)? {
            10 => {
                cid = Some(decode_cid(
                    r.read_bytes(buf).map_err(malformed)?,
                    "wantlist entry",
                )?)
            }
            16 => entry.0 = r.read_int32(buf).map_err(malformed)?,
            24 => entry.1 = r.read_bool(buf).map_err(malformed)?,
            32 => {
                entry.2 = match r.read_int32(buf).map_err(malformed)? {
                    0 => WantType::Block,
                    1 => WantType::Have,
                    other => return Err(BitswapError::UnknownWantType(other)),
                }
            }
            40 => entry.3 = r.read_bool(buf).map_err(malformed)?,
            t => r.read_unknown(buf, t).map_err(malformed)?,
        }
    }
    let cid = match cid {
        Some(cid) => cid,
        None => decode_cid(&[], "wantlist entry")?,
    };
    let (priority, cancel, want_type, send_dont_have) = entry;
    Ok(WantEntry {
        cid,
        priority,
        cancel,
        want_type,
        send_dont_have,
    })
}

fn decode_payload(body: &Bytes, buf: &[u8]) -> Result<Payload, BitswapError> {
    let mut r = BytesReader::from_bytes(buf);
    let mut prefix = None;
    let mut data = Bytes::new();
    while !r.is_eof() {
        match r.next_tag(buf).map_err(malformed)? {
            10 => {
                prefix = Some(CidPrefix::from_bytes(
                    r.read_bytes(buf).map_err(malformed)?,
                )?)
            }
            18 => data = body.slice_ref(r.read_bytes(buf).map_err(malformed)?),
            t => r.read_unknown(buf, t).map_err(malformed)?,
        }
    }
    let prefix = match prefix {
        Some(p) => p,
        None => CidPrefix::from_bytes(&[])?,
    };
    Ok(Payload { prefix, data })
}

fn decode_presence(buf: &[u8]) -> Result<BlockPresence, BitswapError> {
    let mut r = BytesReader::from_bytes(buf);
    let mut cid = None;
    let mut kind = PresenceType::Have;
    while !r.is_eof() {
        match r.next_tag(buf).map_err(malformed)? {
            10 => {
                cid = Some(decode_cid(
                    r.read_bytes(buf).map_err(malformed)?,
                    "block presence",
                )?)
            }
            16 => {
                kind = match r.read_int32(buf).map_err(malformed)? {
                    0 => PresenceType::Have,
                    1 => PresenceType::DontHave,
                    other => return Err(BitswapError::UnknownPresenceType(other)),
                }
            }
            t => r.read_unknown(buf, t).map_err(malformed)?,
        }
    }
    let cid = match cid {
        Some(cid) => cid,
        None => decode_cid(&[], "block presence")?,
    };
    Ok(BlockPresence { cid, kind })
}

/// The message as `version` writes it.
struct Pb<'a>(&'a Message, ProtocolVersion);

impl MessageWrite for Pb<'_> {
    fn get_size(&self) -> usize {
        let Pb(m, version) = *self;
        let wantlist = WantlistPb(m);
        let mut size = if wantlist.is_empty() {
            0
        } else {
            1 + sizeof_len(wantlist.get_size())
        };
        size += m
            .payload
            .iter()
            .map(|p| payload_size(p, version))
            .sum::<usize>();
        size += m
            .presences
            .iter()
            .map(|p| presence_size(p, version))
            .sum::<usize>();
        size + pending_size(m.pending_bytes, version)
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> quick_protobuf::Result<()> {
        let Pb(m, version) = *self;
        let wantlist = WantlistPb(m);
        if !wantlist.is_empty() {
            w.write_with_tag(10, |w| w.write_message(&wantlist))?;
        }
        if version == ProtocolVersion::V100 {
            for p in &m.payload {
                w.write_with_tag(18, |w| w.write_bytes(&p.data))?;
            }
            return Ok(());
        }
        for p in &m.payload {
            w.write_with_tag(26, |w| w.write_message(&PayloadPb::new(p)))?;
        }
        for p in &m.presences {
            w.write_with_tag(34, |w| w.write_message(&PresencePb(p)))?;
        }
        if m.pending_bytes != 0 {
            w.write_with_tag(40, |w| w.write_int32(m.pending_bytes))?;
        }
        Ok(())
    }
}

struct WantlistPb<'a>(&'a Message);

impl WantlistPb<'_> {
    fn is_empty(&self) -> bool {
        self.0.wantlist.is_empty() && !self.0.full
    }
}

impl MessageWrite for WantlistPb<'_> {
    fn get_size(&self) -> usize {
        let entries: usize = self
            .0
            .wantlist
            .iter()
            .map(|e| 1 + sizeof_len(EntryPb(e).get_size()))
            .sum();
        entries + if self.0.full { 2 } else { 0 }
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> quick_protobuf::Result<()> {
        for e in &self.0.wantlist {
            w.write_with_tag(10, |w| w.write_message(&EntryPb(e)))?;
        }
        if self.0.full {
            w.write_with_tag(16, |w| w.write_bool(true))?;
        }
        Ok(())
    }
}

struct EntryPb<'a>(&'a WantEntry);

impl MessageWrite for EntryPb<'_> {
    fn get_size(&self) -> usize {
        let e = self.0;
        1 + sizeof_len(e.cid.encoded_len())
            + if e.priority != 0 {
                1 + sizeof_int32(e.priority)
            } else {
                0
            }
            + if e.cancel { 2 } else { 0 }
            + if e.want_type == WantType::Have { 2 } else { 0 }
            + if e.send_dont_have { 2 } else { 0 }
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> quick_protobuf::Result<()> {
        let e = self.0;
        w.write_with_tag(10, |w| w.write_bytes(&e.cid.to_bytes()))?;
        if e.priority != 0 {
            w.write_with_tag(16, |w| w.write_int32(e.priority))?;
        }
        if e.cancel {
            w.write_with_tag(24, |w| w.write_bool(true))?;
        }
        if e.want_type == WantType::Have {
            w.write_with_tag(32, |w| w.write_enum(1))?;
        }
        if e.send_dont_have {
            w.write_with_tag(40, |w| w.write_bool(true))?;
        }
        Ok(())
    }
}

struct PayloadPb<'a> {
    prefix: Vec<u8>,
    data: &'a [u8],
}

impl<'a> PayloadPb<'a> {
    fn new(p: &'a Payload) -> Self {
        Self {
            prefix: p.prefix.to_bytes(),
            data: &p.data,
        }
    }
}

impl MessageWrite for PayloadPb<'_> {
    fn get_size(&self) -> usize {
        1 + sizeof_len(self.prefix.len())
            + if self.data.is_empty() {
                0
            } else {
                1 + sizeof_len(self.data.len())
            }
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> quick_protobuf::Result<()> {
        w.write_with_tag(10, |w| w.write_bytes(&self.prefix))?;
        if !self.data.is_empty() {
            w.write_with_tag(18, |w| w.write_bytes(self.data))?;
        }
        Ok(())
    }
}

struct PresencePb<'a>(&'a BlockPresence);

impl MessageWrite for PresencePb<'_> {
    fn get_size(&self) -> usize {
        1 + sizeof_len(self.0.cid.encoded_len())
            + if self.0.kind == PresenceType::DontHave {
                2
            } else {
                0
            }
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> quick_protobuf::Result<()> {
        w.write_with_tag(10, |w| w.write_bytes(&self.0.cid.to_bytes()))?;
        if self.0.kind == PresenceType::DontHave {
            w.write_with_tag(16, |w| w.write_enum(1))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, HashCode, Version, parse_cid};
    use proptest::prelude::*;

    fn any_cid() -> impl Strategy<Value = Cid> {
        (0u8..3, any::<[u8; 8]>()).prop_map(|(kind, seed)| {
            let data = Bytes::copy_from_slice(&seed);
            let (v, c, h) = match kind {
                0 => (Version::V0, Codec::DagPb, HashCode::Sha2_256),
                1 => (Version::V1, Codec::Raw, HashCode::Sha2_256),
                _ => (Version::V1, Codec::DagCbor, HashCode::Blake3),
            };
            *Block::encode(v, c, h, data).unwrap().cid()
        })
    }

    fn any_block(v0_only: bool) -> impl Strategy<Value = Block> {
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(move |(v0, data)| {
                if v0 || v0_only {
                    Block::encode(Version::V0, Codec::DagPb, HashCode::Sha2_256, data).unwrap()
                } else {
                    Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, data).unwrap()
                }
            })
    }

    fn any_entry() -> impl Strategy<Value = WantEntry> {
        (
            any_cid(),
            any::<i32>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(cid, priority, cancel, have, send_dont_have)| WantEntry {
                cid,
                priority,
                cancel,
                want_type: if have {
                    WantType::Have
                } else {
                    WantType::Block
                },
                send_dont_have,
            })
    }

    fn any_presence() -> impl Strategy<Value = BlockPresence> {
        (any_cid(), any::<bool>()).prop_map(|(cid, have)| BlockPresence {
            cid,
            kind: if have {
                PresenceType::Have
            } else {
                PresenceType::DontHave
            },
        })
    }

    fn any_version() -> impl Strategy<Value = ProtocolVersion> {
        prop_oneof![
            Just(ProtocolVersion::V100),
            Just(ProtocolVersion::V110),
            Just(ProtocolVersion::V120)
        ]
    }

    /// A message as `version` can carry it (1.0.0: CIDv0 blocks only, no presences or
    /// pending bytes).
    fn any_message(version: ProtocolVersion) -> impl Strategy<Value = Message> {
        let v100 = version == ProtocolVersion::V100;
        (
            proptest::collection::vec(any_entry(), 0..6),
            any::<bool>(),
            proptest::collection::vec(any_block(v100), 0..4),
            proptest::collection::vec(any_presence(), 0..6),
            any::<i32>(),
        )
            .prop_map(
                move |(wantlist, full, blocks, presences, pending_bytes)| Message {
                    wantlist,
                    full,
                    payload: blocks.iter().map(Payload::from_block).collect(),
                    presences: if v100 { Vec::new() } else { presences },
                    pending_bytes: if v100 { 0 } else { pending_bytes },
                },
            )
    }

    fn versioned_message() -> impl Strategy<Value = (ProtocolVersion, Message)> {
        any_version().prop_flat_map(|v| (Just(v), any_message(v)))
    }

    fn body(framed: &[u8]) -> Bytes {
        let (len, rest) = unsigned_varint::decode::usize(framed).unwrap();
        assert_eq!(len, rest.len(), "the length prefix is the body's length");
        Bytes::copy_from_slice(rest)
    }

    proptest! {
        #[test]
        fn round_trips((version, m) in versioned_message()) {
            let framed = m.encode_framed(version);
            let body = body(&framed);
            prop_assert_eq!(body.len(), m.encoded_len(version));
            prop_assert_eq!(Message::decode(&body).unwrap(), m);
        }

        #[test]
        fn received_blocks_verify((version, m) in versioned_message()) {
            let decoded = Message::decode(&body(&m.encode_framed(version))).unwrap();
            for (sent, got) in m.payload.iter().zip(decoded.payload) {
                let block = got.into_block().unwrap();
                prop_assert_eq!(&block.cid().to_bytes()[..], &sent.clone().into_block().unwrap().cid().to_bytes()[..]);
            }
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(m) = Message::decode(&Bytes::from(bytes)) {
                for p in m.payload {
                    let _ = p.into_block();
                }
            }
        }

        #[test]
        fn never_panics_on_mutations(
            (version, m) in versioned_message(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = body(&m.encode_framed(version)).to_vec();
            if !bytes.is_empty() {
                for (i, v) in flips {
                    let i = i.index(bytes.len());
                    bytes[i] ^= v;
                }
            }
            let _ = Message::decode(&Bytes::from(bytes));
        }

        #[test]
        fn split_pieces_fit_and_keep_everything(
            (version, m) in versioned_message(),
            max_len in 400usize..2000,
        ) {
            let pieces = m.clone().split(version, max_len).unwrap();
            prop_assert_eq!(pieces.is_empty(), m.is_empty());
            let mut joined = Message::default();
            for (i, piece) in pieces.iter().enumerate() {
                prop_assert!(piece.encoded_len(version) <= max_len);
                prop_assert!(!piece.is_empty());
                prop_assert_eq!(piece.full, i == 0 && m.full);
                if i + 1 < pieces.len() {
                    prop_assert_eq!(piece.pending_bytes, 0);
                }
                joined.wantlist.extend(piece.wantlist.iter().cloned());
                joined.payload.extend(piece.payload.iter().cloned());
                joined.presences.extend(piece.presences.iter().cloned());
                joined.full |= piece.full;
                joined.pending_bytes = piece.pending_bytes;
            }
            if !pieces.is_empty() {
                prop_assert_eq!(joined, m);
            }
        }
    }

    #[test]
    fn kubo_wire_layout() {
        // A 1.2.0 message as boxo writes it: one want-have entry with send-dont-have and
        // priority 1, one DONT_HAVE presence and a raw block with its CIDv1 prefix.
        let block = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"hi"[..]).unwrap();
        let cid = *block.cid();
        let m = Message {
            wantlist: vec![WantEntry::want(cid, WantType::Have, 1, true)],
            full: false,
            payload: vec![Payload::from_block(&block)],
            presences: vec![BlockPresence {
                cid,
                kind: PresenceType::DontHave,
            }],
            pending_bytes: 0,
        };
        let cid_bytes = cid.to_bytes();
        let mut entry = vec![0x0a, 36];
        entry.extend_from_slice(&cid_bytes);
        entry.extend_from_slice(&[0x10, 0x01, 0x20, 0x01, 0x28, 0x01]);
        let mut wantlist = vec![0x0a, entry.len() as u8];
        wantlist.extend_from_slice(&entry);
        let mut expected = vec![0x0a, wantlist.len() as u8];
        expected.extend_from_slice(&wantlist);
        expected.extend_from_slice(&[
            0x1a, 10, 0x0a, 4, 0x01, 0x55, 0x12, 0x20, 0x12, 2, b'h', b'i',
        ]);
        let mut presence = vec![0x0a, 36];
        presence.extend_from_slice(&cid_bytes);
        presence.extend_from_slice(&[0x10, 0x01]);
        expected.extend_from_slice(&[0x22, presence.len() as u8]);
        expected.extend_from_slice(&presence);
        let framed = m.encode_framed(ProtocolVersion::V120);
        assert_eq!(framed[0] as usize, expected.len());
        assert_eq!(&framed[1..], &expected[..]);

        // 1.0.0: the block's bytes alone in field 2, no presences.
        let v0 = m.encode_framed(ProtocolVersion::V100);
        let mut expected = vec![0x0a, wantlist.len() as u8];
        expected.extend_from_slice(&wantlist);
        expected.extend_from_slice(&[0x12, 2, b'h', b'i']);
        assert_eq!(&v0[1..], &expected[..]);
    }

    #[test]
    fn decodes_gogo_empty_wantlist_and_cancels() {
        // gogo-protobuf always writes the (non-nullable) wantlist, even empty.
        assert_eq!(
            Message::decode(&Bytes::from_static(&[0x0a, 0x00])).unwrap(),
            Message::default()
        );
        let cid = parse_cid("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH").unwrap();
        let m = Message {
            wantlist: vec![WantEntry::cancel(cid)],
            full: true,
            ..Message::default()
        };
        let decoded = Message::decode(&body(&m.encode_framed(ProtocolVersion::V110))).unwrap();
        assert_eq!(decoded, m);
        assert!(decoded.wantlist[0].cancel);
    }

    #[test]
    fn refuses_bad_fields() {
        let cid = parse_cid("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH").unwrap();
        let entry = |extra: &[u8]| {
            let mut e = vec![0x0a, 34];
            e.extend_from_slice(&cid.to_bytes());
            e.extend_from_slice(extra);
            let mut wl = vec![0x0a, e.len() as u8];
            wl.extend_from_slice(&e);
            let mut m = vec![0x0a, wl.len() as u8];
            m.extend_from_slice(&wl);
            Bytes::from(m)
        };
        assert!(Message::decode(&entry(&[])).is_ok());
        assert_eq!(
            Message::decode(&entry(&[0x20, 0x02])),
            Err(BitswapError::UnknownWantType(2))
        );
        // An unknown field is skipped.
        assert!(Message::decode(&entry(&[0x30, 0x05])).is_ok());
        // Entry without a CID.
        assert!(matches!(
            Message::decode(&Bytes::from_static(&[0x0a, 0x04, 0x0a, 0x02, 0x10, 0x01])),
            Err(BitswapError::BadCid { .. })
        ));
        // A CID with trailing bytes.
        let mut long = cid.to_bytes();
        long.push(0);
        let mut p = vec![0x0a, long.len() as u8];
        p.extend_from_slice(&long);
        let mut m = vec![0x22, p.len() as u8];
        m.extend_from_slice(&p);
        assert!(matches!(
            Message::decode(&Bytes::from(m)),
            Err(BitswapError::BadCid { .. })
        ));
        // Presence type 2, payload without prefix, truncated message.
        let mut p = vec![0x0a, 34];
        p.extend_from_slice(&cid.to_bytes());
        p.extend_from_slice(&[0x10, 0x02]);
        let mut m = vec![0x22, p.len() as u8];
        m.extend_from_slice(&p);
        assert_eq!(
            Message::decode(&Bytes::from(m)),
            Err(BitswapError::UnknownPresenceType(2))
        );
        assert!(matches!(
            Message::decode(&Bytes::from_static(&[0x1a, 0x03, 0x12, 0x01, 0x00])),
            Err(BitswapError::BadPrefix { .. })
        ));
        assert!(matches!(
            Message::decode(&Bytes::from_static(&[0x1a, 0x05, 0x0a])),
            Err(BitswapError::Malformed(_))
        ));
    }

    #[test]
    fn size_limit() {
        let big = Bytes::from(vec![0u8; MAX_MESSAGE_SIZE + 1]);
        assert_eq!(
            Message::decode(&big),
            Err(BitswapError::TooLarge {
                len: MAX_MESSAGE_SIZE + 1,
                max: MAX_MESSAGE_SIZE
            })
        );
        // The largest block fits in one message; two of them need two.
        let block = Block::encode(
            Version::V1,
            Codec::Raw,
            HashCode::Sha2_256,
            vec![7u8; crate::limits::MAX_BLOCK_SIZE],
        )
        .unwrap();
        let one = Message {
            payload: vec![Payload::from_block(&block)],
            pending_bytes: -1,
            ..Message::default()
        };
        assert_eq!(
            one.clone()
                .split(ProtocolVersion::V120, MAX_MESSAGE_SIZE)
                .unwrap()
                .len(),
            1
        );
        let two = Message {
            payload: vec![Payload::from_block(&block); 2],
            ..Message::default()
        };
        let pieces = two.split(ProtocolVersion::V120, MAX_MESSAGE_SIZE).unwrap();
        assert_eq!(pieces.len(), 2);
        assert!(
            pieces
                .iter()
                .all(|p| p.encoded_len(ProtocolVersion::V120) <= MAX_MESSAGE_SIZE)
        );
        assert!(matches!(
            one.split(ProtocolVersion::V120, 1000),
            Err(BitswapError::ItemTooLarge { .. })
        ));
    }

    #[test]
    fn protocol_names() {
        for name in ProtocolVersion::PROTOCOLS {
            assert!(ProtocolVersion::from_protocol(name).is_some());
        }
        assert_eq!(
            ProtocolVersion::from_protocol("/ipfs/bitswap"),
            Some(ProtocolVersion::V100)
        );
        assert!(ProtocolVersion::V120.supports_have());
        assert!(!ProtocolVersion::V110.supports_have());
        assert_eq!(ProtocolVersion::from_protocol("/ipfs/bitswap/1.3.0"), None);
    }
}
