use breaker::circuit_breaker;

#[circuit_breaker(name = "db")]
struct Db;

fn main() {}
