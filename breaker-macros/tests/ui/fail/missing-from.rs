use breaker::circuit_breaker;

#[derive(Debug)]
struct DbError;

#[circuit_breaker(name = "db")]
fn query() -> Result<(), DbError> {
    Ok(())
}

fn main() {}
