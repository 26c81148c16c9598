//! Sync message decoding: never panics; what decodes re-encodes to the same bytes; a round
//! message that decodes is answered or refused by a responder, within the size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::reconcile::{MAX_RECONCILE_SIZE, Responder, Snapshot, SyncMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = SyncMessage::decode(data) else {
        return;
    };
    let again = message.encode().expect("a decoded message encodes");
    assert_eq!(
        SyncMessage::decode(&again).expect("and decodes again"),
        message
    );
    if let SyncMessage::Reconcile(query) = message {
        let ids = (0u32..300)
            .map(|n| stargate_protocol::sha2_256(&n.to_be_bytes()))
            .collect();
        let mut responder = Responder::new(Snapshot::new(ids)).expect("a responder");
        if let Ok(answer) = responder.answer(&query) {
            assert!(answer.len() <= MAX_RECONCILE_SIZE);
        }
    }
});
