//! The `#[circuit_breaker]` attribute (in progress).
