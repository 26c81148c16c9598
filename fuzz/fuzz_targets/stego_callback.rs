//! Stego callback body decoding: never panics; whatever decodes is within the size cap, encodes
//! to a body that decodes to the same, and makes an announcement that passes the topic's checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::limits::MAX_STEGO_CALLBACK_SIZE;
use stargate_protocol::stego::{Callback, StegoAnnouncement};

fuzz_target!(|data: &[u8]| {
    if let Ok(callback) = Callback::decode(data) {
        assert!(data.len() <= MAX_STEGO_CALLBACK_SIZE);
        let again = Callback::decode(&callback.encode()).expect("re-encoded decodes");
        assert_eq!(again, callback);
        let announcement = callback.announcement();
        let heard = StegoAnnouncement::decode(&announcement.encode()).expect("it announces");
        assert_eq!(heard, announcement);
    }
});
