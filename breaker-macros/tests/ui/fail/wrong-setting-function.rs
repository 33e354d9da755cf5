use breaker::circuit_breaker;

fn make_storage() -> u32 {
    1
}

fn make_listener() -> &'static str {
    "log"
}

fn make_clock() -> u64 {
    0
}

#[circuit_breaker(name = "db", storage = make_storage, listeners = [make_listener], clock = make_clock)]
fn query() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

fn main() {}
