//! Frame parsing: any text either parses or yields a typed error, never a panic; whatever the
//! JSON parser accepts survives a write/parse round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realtime_voice::protocol::{json, parse_server_frame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_server_frame(text, 1 << 16);
    if let Ok(v) = json::parse(text, 1 << 16) {
        let written = v.to_json();
        let again = json::parse(&written, usize::MAX).expect("our own output parses");
        assert_eq!(v, again, "round trip changed the value");
        assert_eq!(written, again.to_json(), "writing is stable");
    }
    // Escaping: any string written as a JSON literal reads back identically.
    let mut lit = String::new();
    json::write_str(&mut lit, text);
    let back = json::parse(&lit, usize::MAX).expect("escaped literal parses");
    assert_eq!(back.as_str(), Some(text));
});
