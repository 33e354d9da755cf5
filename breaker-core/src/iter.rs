//! A guarded iterator: the whole iteration is one call through the breaker.

use std::error::Error as StdError;
use std::fmt;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::admission::Ticket;
use crate::breaker::CircuitBreaker;
use crate::error::{CircuitBreakerError, Error};
use crate::recording::CancelOnDrop;

/// The breaker a guarded iterator or stream calls through: borrowed (a
/// declared breaker, `&'static`), or owned (a keyed breaker's handle, which
/// keeps its key from eviction while the iteration runs).
#[derive(Debug)]
pub enum Held<'cb> {
    /// Borrowed for the iteration.
    Lent(&'cb CircuitBreaker),
    /// Owned by the iteration.
    Owned(Arc<CircuitBreaker>),
}

impl Deref for Held<'_> {
    type Target = CircuitBreaker;

    #[inline(always)]
    fn deref(&self) -> &CircuitBreaker {
        match self {
            Held::Lent(cb) => cb,
            Held::Owned(cb) => cb,
        }
    }
}

impl<'cb> From<&'cb CircuitBreaker> for Held<'cb> {
    fn from(cb: &'cb CircuitBreaker) -> Self {
        Held::Lent(cb)
    }
}

impl From<Arc<CircuitBreaker>> for Held<'_> {
    fn from(cb: Arc<CircuitBreaker>) -> Self {
        Held::Owned(cb)
    }
}

/// An iterator of `Result`s run as one call through a breaker: admitted when
/// it was made, failed by its first `Err` item that is not excluded (or by a
/// panic in its `next`), succeeded by reaching its end, and neither if
/// dropped before either.
///
/// Items are `Result<T, Error<E>>`: a rejected call yields one
/// `Error::Open` and ends; the failing item is `Error::Tripped` when it
/// opened the circuit (with `throw_new_error_on_trip` on), else
/// `Error::Inner`.
pub struct GuardedIter<'cb, I, V, X> {
    cb: Held<'cb>,
    state: IterState<I>,
    view: V,
    excluded: X,
}

enum IterState<I> {
    Rejected(Option<CircuitBreakerError>),
    Running(I, Ticket),
    Reported(I),
}

impl<'cb, I, V, X> GuardedIter<'cb, I, V, X> {
    pub(crate) fn rejected(
        cb: impl Into<Held<'cb>>,
        error: CircuitBreakerError,
        view: V,
        excluded: X,
    ) -> Self {
        GuardedIter {
            cb: cb.into(),
            state: IterState::Rejected(Some(error)),
            view,
            excluded,
        }
    }

    pub(crate) fn running(
        cb: impl Into<Held<'cb>>,
        inner: I,
        ticket: Ticket,
        view: V,
        excluded: X,
    ) -> Self {
        GuardedIter {
            cb: cb.into(),
            state: IterState::Running(inner, ticket),
            view,
            excluded,
        }
    }
}

impl<I, T, E, V, X> Iterator for GuardedIter<'_, I, V, X>
where
    I: Iterator<Item = Result<T, E>>,
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
{
    type Item = Result<T, Error<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (inner, ticket) = match &mut self.state {
            IterState::Rejected(error) => return error.take().map(|e| Err(Error::Open(e))),
            IterState::Reported(inner) => {
                return inner.next().map(|item| item.map_err(Error::Inner))
            }
            IterState::Running(inner, ticket) => (inner, *ticket),
        };
        // A panic in the guarded iterator, or in deciding whether its error
        // is excluded, is the call's failure: recorded, then continued.
        let item = match catch_unwind(AssertUnwindSafe(|| inner.next())) {
            Ok(item) => item,
            Err(panic) => {
                self.state = IterState::Rejected(None);
                self.cb.fail_with_panic(ticket, panic)
            }
        };
        let report = match &item {
            None => Some(Ok(())),
            Some(Ok(_)) => None,
            Some(Err(e)) => {
                let excluded = catch_unwind(AssertUnwindSafe(|| {
                    self.cb.excludes(e, &self.view, &self.excluded)
                }));
                match excluded {
                    Ok(excluded) => (!excluded).then_some(Err(())),
                    Err(panic) => {
                        self.state = IterState::Rejected(None);
                        self.cb.fail_with_panic(ticket, panic)
                    }
                }
            }
        };
        let Some(report) = report else {
            return item.map(|item| item.map_err(Error::Inner));
        };
        let IterState::Running(inner, _) =
            std::mem::replace(&mut self.state, IterState::Rejected(None))
        else {
            unreachable!("checked above");
        };
        self.state = IterState::Reported(inner);
        match (report, item) {
            (Ok(()), item) => {
                self.cb.finish_ok(ticket);
                item.map(|item| item.map_err(Error::Inner))
            }
            (Err(()), Some(Err(e))) => Some(Err(self.cb.finish_failure(ticket, e, &self.view))),
            (Err(()), _) => unreachable!("a failure report comes from an Err item"),
        }
    }
}

impl<I, V, X> Drop for GuardedIter<'_, I, V, X> {
    fn drop(&mut self) {
        // The inner iterator is dropped first, while a trial place is still
        // held: what it holds for the trial is gone before the next trial
        // can be admitted.
        let state = std::mem::replace(&mut self.state, IterState::Rejected(None));
        if let IterState::Running(inner, ticket) = state {
            let _cancel = CancelOnDrop(&self.cb, ticket);
            drop(inner);
        }
    }
}

impl<I, V, X> fmt::Debug for GuardedIter<'_, I, V, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            IterState::Rejected(_) => "rejected",
            IterState::Running(..) => "running",
            IterState::Reported(_) => "reported",
        };
        f.debug_struct("GuardedIter")
            .field("breaker", &self.cb.name())
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
