//! Clocks: a clock shared through `Arc`, `Box` or `&'static` is the same
//! clock, all its readings included.

use std::sync::Arc;
use std::time::Duration;

use breaker::clock::Clock;

/// A clock whose three readings differ, to see which one a wrapper gives.
struct Distinct;

impl Clock for Distinct {
    fn now(&self) -> Duration {
        Duration::from_secs(10)
    }
    fn now_coarse(&self) -> Duration {
        Duration::from_secs(9)
    }
    fn coarse_lag(&self) -> Duration {
        Duration::from_secs(1)
    }
}

fn readings(clock: &impl Clock) -> [Duration; 3] {
    [clock.now(), clock.now_coarse(), clock.coarse_lag()]
}

#[test]
fn a_wrapped_clock_forwards_every_reading() {
    let own = readings(&Distinct);
    assert_eq!(own, [10, 9, 1].map(Duration::from_secs));
    // `impl Clock for Arc<C>` forwarded only `now`: the coarse reading fell
    // back to the precise one and the lag to zero.
    assert_eq!(readings(&Arc::new(Distinct)), own);
    assert_eq!(readings(&Box::new(Distinct)), own);
    static SHARED: Distinct = Distinct;
    assert_eq!(readings(&&SHARED), own);
}
