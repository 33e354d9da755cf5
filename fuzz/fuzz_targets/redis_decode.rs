//! `breaker_core::redis::decode`, the reader of the value a breaker keeps in
//! Redis, which anything with access to the server can overwrite: any bytes
//! must give a snapshot or an error (the breaker then uses its fallback
//! state), never a panic; and a snapshot it accepts is one the state machine
//! can be in.
#![no_main]

use breaker_core::redis::decode;
use breaker_core::storage::{
    MAX_FAIL_MAX, MAX_HALF_OPEN_CALLS, MAX_REOPENS, MAX_SUCCESS_THRESHOLD,
};
use breaker_core::State;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(snap) = decode(data) else {
        return;
    };
    assert!(snap.generation < 1 << 48, "{snap:?}");
    assert!(snap.fail_counter <= MAX_FAIL_MAX, "{snap:?}");
    assert!(snap.success_counter <= MAX_SUCCESS_THRESHOLD, "{snap:?}");
    assert!(u32::from(snap.trials) <= MAX_HALF_OPEN_CALLS, "{snap:?}");
    assert!(u32::from(snap.reopens) <= MAX_REOPENS, "{snap:?}");
    assert_eq!(snap.trial, snap.trials > 0, "{snap:?}");
    match snap.state {
        State::Closed => {
            assert!(snap.success_counter == 0 && !snap.trial && snap.opened_at.is_none());
            assert_eq!(snap.reopens, 0, "{snap:?}");
        }
        State::Open => {
            assert!(snap.success_counter == 0 && !snap.trial && snap.opened_at.is_some())
        }
        State::HalfOpen => {}
    }
    // Only the stored forms are accepted: ASCII, single spaces, no padding;
    // `v1` with 7 fields after the version, `v2` with 9 (trials, reopens).
    assert!(data.is_ascii(), "{data:?}");
    let text = std::str::from_utf8(data).unwrap();
    let fields = text.split(' ').count();
    assert!(
        (data.starts_with(b"v1 ") && fields == 8) || (data.starts_with(b"v2 ") && fields == 10),
        "{text:?}"
    );
    assert!(text.split(' ').all(|f| !f.is_empty()), "{text:?}");
});
