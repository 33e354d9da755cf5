//! Errors for the exclusion tests: one that is excluded by type, and one
//! that carries it as its `source()`.

use std::error::Error as StdError;

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("invalid input")]
pub struct Validation;

#[derive(Debug, thiserror::Error)]
#[error("query failed")]
pub struct QueryError(#[source] pub Validation);

/// The view that lets `call_with_view` search a `QueryError`'s sources.
pub fn query_view(e: &QueryError) -> Option<&(dyn StdError + 'static)> {
    Some(e)
}
