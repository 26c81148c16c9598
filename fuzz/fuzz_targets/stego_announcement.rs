//! Stego announcement decoding: never panics; whatever decodes is within the announcement limits
//! and encodes to an announcement that decodes to the same, with the same id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::limits::MAX_ANNOUNCEMENT_SIZE;
use stargate_protocol::stego::StegoAnnouncement;

fuzz_target!(|data: &[u8]| {
    if let Ok(announcement) = StegoAnnouncement::decode(data) {
        assert!(data.len() <= MAX_ANNOUNCEMENT_SIZE);
        let again = StegoAnnouncement::decode(&announcement.encode()).expect("re-encoded decodes");
        assert_eq!(again.id(), announcement.id());
        assert_eq!(again, announcement);
    }
});
