//! What instances tell each other about their uploads: the announcements on a mirror topic
//! ([`Announcement`], in the guide's JSON shape), the entries that record one mirrored upload
//! ([`Entry`], with the [`EntryId`] the reconciled set holds), and the signed manifests that list
//! them ([`Manifest`]). Who publishes an announcement is the pubsub signer, never a field.

mod announcement;
mod entry;
mod manifest;

pub use announcement::{Announcement, AnnouncementError, MANIFEST_TYPE};
pub(crate) use announcement::{
    check_metadata_size, checked_metadata, decode_json, parse_announced_cid,
};
pub use entry::{Entry, EntryError, EntryId, STEGO_TYPE, entry_id, stego_id};
pub use libp2p_identity::{Keypair, PeerId, PublicKey};
pub use manifest::{Manifest, ManifestError, SIGNING_DOMAIN};
