//! `breaker_core::redis::decode`, the reader of the value a breaker keeps in
//! Redis, which anything with access to the server can overwrite: any bytes
//! must give a snapshot or an error (the breaker then uses its fallback
//! state), never a panic; and a snapshot it accepts is one the state machine
//! can be in.
#![no_main]

use breaker_core::redis::decode;
use breaker_core::storage::{MAX_FAIL_MAX, MAX_SUCCESS_THRESHOLD};
use breaker_core::State;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(snap) = decode(data) else {
        return;
    };
    assert!(snap.generation < 1 << 48, "{snap:?}");
    assert!(snap.fail_counter <= MAX_FAIL_MAX, "{snap:?}");
    assert!(snap.success_counter <= MAX_SUCCESS_THRESHOLD, "{snap:?}");
    match snap.state {
        State::Closed => {
            assert!(snap.success_counter == 0 && !snap.trial && snap.opened_at.is_none())
        }
        State::Open => {
            assert!(snap.success_counter == 0 && !snap.trial && snap.opened_at.is_some())
        }
        State::HalfOpen => {}
    }
    // Only the stored form is accepted: ASCII, single spaces, no padding.
    assert!(data.is_ascii(), "{data:?}");
    assert!(data.starts_with(b"v1 "), "{data:?}");
    let text = std::str::from_utf8(data).unwrap();
    assert_eq!(text.split(' ').count(), 8, "{text:?}");
    assert!(text.split(' ').all(|f| !f.is_empty()), "{text:?}");
});
