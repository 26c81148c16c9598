//! Mirror announcement decoding: never panics; whatever decodes is within the limits, encodes to
//! an announcement that decodes to the same, and makes an entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::limits::{MAX_ANNOUNCEMENT_SIZE, MAX_ANNOUNCEMENT_TYPE_LEN};
use stargate_protocol::mirror::{Announcement, Entry, Keypair};

fuzz_target!(|data: &[u8]| {
    if let Ok(announcement) = Announcement::decode(data) {
        assert!(data.len() <= MAX_ANNOUNCEMENT_SIZE);
        assert!(announcement.kind.len() <= MAX_ANNOUNCEMENT_TYPE_LEN);
        let again = Announcement::decode(&announcement.encode()).expect("re-encoded decodes");
        assert_eq!(again, announcement);
        let entry = Entry::new(&announcement, publisher(), 0).expect("an accepted one records");
        assert_eq!(entry.announcement(), announcement);
    }
});

fn publisher() -> stargate_protocol::mirror::PeerId {
    let key = Keypair::ed25519_from_bytes([1; 32]).expect("32 bytes make a key");
    key.public().to_peer_id()
}
