use breaker::circuit_breaker;

#[circuit_breaker(name = "files")]
fn read() -> Result<Vec<u8>, std::io::Error> {
    Ok(Vec::new())
}

fn main() {}
