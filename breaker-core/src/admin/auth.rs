//! Who may change a breaker: the bearer token, compared in constant time.

use axum::http::{header, HeaderMap, StatusCode};

/// Why a mutation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token is configured: the router allows no changes (403).
    NoTokenConfigured,
    /// The request has no token, a malformed `Authorization` header, or the
    /// wrong token (401).
    Unauthorised,
}

impl Refusal {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Refusal::NoTokenConfigured => StatusCode::FORBIDDEN,
            Refusal::Unauthorised => StatusCode::UNAUTHORIZED,
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::NoTokenConfigured => {
                "this admin endpoint has no token configured, so it allows no changes"
            }
            Refusal::Unauthorised => "missing, malformed or wrong `Authorization: Bearer <token>`",
        }
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>` for `expected`.
pub(crate) fn check(expected: Option<&str>, headers: &HeaderMap) -> Result<(), Refusal> {
    let expected = expected.ok_or(Refusal::NoTokenConfigured)?;
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Refusal::Unauthorised);
    };
    let given = value
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .filter(|token| !token.is_empty())
        .ok_or(Refusal::Unauthorised)?;
    if !expected.is_empty() && same(given, expected.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::Unauthorised)
    }
}

/// `a == b` in time that depends on the lengths only, not on where they
/// differ: every byte of the longer is looked at.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    // Keep the optimiser from stopping at the first difference.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn tokens_compare_by_every_byte() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret1"));
        assert!(!same(b"", b"x"));
        assert!(same(b"", b""));
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        assert_eq!(check(Some("t0k"), &with("Bearer t0k")), Ok(()));
        assert_eq!(
            check(Some("t0k"), &with("Bearer t0K")),
            Err(Refusal::Unauthorised)
        );
        assert_eq!(
            check(Some("t0k"), &with("bearer t0k")),
            Err(Refusal::Unauthorised)
        );
        assert_eq!(
            check(Some("t0k"), &with("Basic dDBr")),
            Err(Refusal::Unauthorised)
        );
        assert_eq!(
            check(Some("t0k"), &with("Bearer ")),
            Err(Refusal::Unauthorised)
        );
        assert_eq!(
            check(Some("t0k"), &HeaderMap::new()),
            Err(Refusal::Unauthorised)
        );
        assert_eq!(
            check(Some(""), &with("Bearer x")),
            Err(Refusal::Unauthorised)
        );
        assert_eq!(
            check(None, &with("Bearer t0k")),
            Err(Refusal::NoTokenConfigured)
        );
    }
}
