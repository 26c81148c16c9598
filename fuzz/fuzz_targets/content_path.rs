//! Content path parsing: never panics; a parsed path prints as text that parses to itself, and
//! no segment of it can climb out of its root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::ContentPath;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = ContentPath::parse(text) else {
        return;
    };
    for s in path.segments() {
        assert!(!s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0'));
    }
    let again = ContentPath::parse(&path.to_string()).expect("a printed path parses");
    assert_eq!(again, path);
});
