use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

#[circuit_breaker(name = "parse")]
fn parse<'a, T, const N: usize>(text: &'a str) -> Result<[T; N], DbError>
where
    T: std::str::FromStr + Default + Copy,
{
    let value: T = text.parse().map_err(|_| DbError)?;
    Ok([value; N])
}

#[circuit_breaker(name = "generic-error")]
fn generic_error<E>(fail: bool) -> Result<(), E>
where
    E: From<CircuitBreakerError> + std::fmt::Debug + 'static,
{
    if fail {
        return Err(E::from(breaker::registry::get("generic-error").call(|| Err::<(), _>(DbError)).map(|_| unreachable!()).unwrap_err().breaker_error().cloned().unwrap_or_else(|| unreachable!())));
    }
    Ok(())
}

fn main() {
    let _ = parse::<u8, 2>("1");
    let _ = generic_error::<DbError>(false);
}
