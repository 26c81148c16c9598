//! One mirrored upload, as manifests and the sync protocol carry it between nodes.
//!
//! Its id is what the reconciled set holds: the same upload has the same id on every node,
//! whoever told it about it and whenever, so the id depends only on the type and the CID.

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::announcement::{Announcement, AnnouncementError, check_metadata_size, check_type};
use crate::Cid;

/// The id of an entry in the reconciled set.
pub type EntryId = [u8; 32];

/// Keeps entry ids apart from any other SHA-256 the node computes.
const ID_DOMAIN: &[u8] = b"stargate/mirror-entry/1";

/// One mirrored upload. Built only from a checked [`Announcement`] or decoded and checked, so
/// every `Entry` meets the announcement limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireEntry", into = "WireEntry")]
pub struct Entry {
    /// What was uploaded.
    pub cid: Cid,
    /// Its announcement type.
    pub kind: String,
    /// Its announcement metadata, as compact JSON object text.
    pub metadata: String,
    /// The instance that first announced it (the gossipsub signer of the announcement).
    pub publisher: PeerId,
    /// When the node that wrote this entry first heard of it (Unix seconds). Informational: it
    /// differs between nodes and is not part of the id.
    pub time: u64,
}

/// Why an entry from a peer was refused.
#[derive(Debug, Error)]
pub enum EntryError {
    #[error(transparent)]
    Announcement(#[from] AnnouncementError),
    #[error("entry publisher is not a peer id")]
    BadPublisher,
}

impl Entry {
    /// The entry for `announcement`, published by `publisher`, first heard of at `time`.
    pub fn new(
        announcement: &Announcement,
        publisher: PeerId,
        time: u64,
    ) -> Result<Self, EntryError> {
        Ok(Self {
            cid: announcement.cid,
            kind: announcement.kind.clone(),
            metadata: check_metadata_size(&announcement.metadata)?,
            publisher,
            time,
        })
    }

    /// The id in the reconciled set: SHA-256 over a domain, the type and the binary CID.
    pub fn id(&self) -> EntryId {
        entry_id(&self.kind, &self.cid)
    }

    /// The announcement this entry records, as it would be published again.
    pub fn announcement(&self) -> Announcement {
        let metadata =
            serde_json::from_str::<Map<String, Value>>(&self.metadata).unwrap_or_default();
        Announcement {
            cid: self.cid,
            kind: self.kind.clone(),
            metadata,
        }
    }
}

/// The id of the upload of `cid` with type `kind` (see [`Entry::id`]).
pub fn entry_id(kind: &str, cid: &Cid) -> EntryId {
    let mut hasher = Sha256::new();
    hasher.update(ID_DOMAIN);
    hasher.update([u8::try_from(kind.len()).unwrap_or(u8::MAX)]);
    hasher.update(kind.as_bytes());
    hasher.update(cid.to_bytes());
    hasher.finalize().into()
}

/// The dag-cbor shape: short keys, the publisher as its binary peer id.
#[derive(Serialize, Deserialize)]
struct WireEntry {
    cid: Cid,
    #[serde(rename = "type")]
    kind: String,
    metadata: String,
    #[serde(with = "serde_bytes")]
    publisher: Vec<u8>,
    time: u64,
}

impl From<Entry> for WireEntry {
    fn from(entry: Entry) -> Self {
        Self {
            cid: entry.cid,
            kind: entry.kind,
            metadata: entry.metadata,
            publisher: entry.publisher.to_bytes(),
            time: entry.time,
        }
    }
}

impl TryFrom<WireEntry> for Entry {
    type Error = EntryError;

    fn try_from(wire: WireEntry) -> Result<Self, EntryError> {
        crate::check_supported(&wire.cid).map_err(|e| AnnouncementError::BadCid(e.to_string()))?;
        check_type(&wire.kind)?;
        let Ok(Value::Object(metadata)) = serde_json::from_str::<Value>(&wire.metadata) else {
            return Err(AnnouncementError::MetadataNotObject.into());
        };
        let publisher =
            PeerId::from_bytes(&wire.publisher).map_err(|_| EntryError::BadPublisher)?;
        Ok(Self {
            cid: wire.cid,
            kind: wire.kind,
            metadata: check_metadata_size(&metadata)?,
            publisher,
            time: wire.time,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn peer(seed: u8) -> PeerId {
        libp2p_identity::Keypair::ed25519_from_bytes([seed; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    pub(crate) fn entry(n: u32, publisher: PeerId) -> Entry {
        let block = crate::Block::encode(
            crate::Version::V1,
            crate::Codec::Raw,
            crate::HashCode::Sha2_256,
            n.to_be_bytes().to_vec(),
        )
        .unwrap();
        let cid = *block.cid();
        let announcement = Announcement::decode(
            format!(r#"{{"cid":"{cid}","type":"contract","metadata":{{"n":{n}}}}}"#).as_bytes(),
        )
        .unwrap();
        Entry::new(&announcement, publisher, 1_700_000_000 + u64::from(n)).unwrap()
    }

    #[test]
    fn the_id_depends_on_type_and_cid_only() {
        let a = entry(1, peer(1));
        let mut b = entry(1, peer(2));
        b.time += 100;
        b.metadata = "{}".to_owned();
        assert_eq!(a.id(), b.id());
        b.kind = "proposal".to_owned();
        assert_ne!(a.id(), b.id());
        assert_ne!(a.id(), entry(2, peer(1)).id());
    }

    #[test]
    fn round_trips_through_dag_cbor_and_back_to_its_announcement() {
        let a = entry(7, peer(3));
        let bytes = serde_ipld_dagcbor::to_vec(&a).unwrap();
        let b: Entry = serde_ipld_dagcbor::from_slice(&bytes).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.announcement().metadata["n"], 7);
    }

    #[test]
    fn refuses_an_entry_that_breaks_the_announcement_limits() {
        let mut wire = WireEntry::from(entry(1, peer(1)));
        wire.kind = "a b".to_owned();
        let bytes = serde_ipld_dagcbor::to_vec(&wire).unwrap();
        assert!(serde_ipld_dagcbor::from_slice::<Entry>(&bytes).is_err());

        let mut wire = WireEntry::from(entry(1, peer(1)));
        wire.publisher = vec![1, 2, 3];
        let bytes = serde_ipld_dagcbor::to_vec(&wire).unwrap();
        assert!(serde_ipld_dagcbor::from_slice::<Entry>(&bytes).is_err());

        let mut wire = WireEntry::from(entry(1, peer(1)));
        wire.metadata = "[1]".to_owned();
        let bytes = serde_ipld_dagcbor::to_vec(&wire).unwrap();
        assert!(serde_ipld_dagcbor::from_slice::<Entry>(&bytes).is_err());
    }
}
