//! The process-wide budget of memory held for requests in flight: the bytes of request bodies
//! being read and of the tensors decoded from them, reserved before they are allocated and
//! given back when the request is answered. Past the budget a request is refused at once (503,
//! gRPC `UNAVAILABLE`), so a burst of large bodies slows clients down instead of exhausting the
//! process's memory; one request alone is bounded by `--max-request-bytes`.
//!
//! A tokio [`Semaphore`] of KiB permits: reserving never blocks or locks, and a
//! [`Reservation`] gives its bytes back when dropped, on every path (errors and panics too).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per permit: reservations are rounded up to whole KiB.
const UNIT: usize = 1024;

/// The budget shared by every front-end of one server.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    /// The budget in permits.
    total: usize,
}

/// Bytes held against a [`MemoryBudget`] until dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    permit: Option<OwnedSemaphorePermit>,
}

/// A reservation the budget cannot grant now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server is holding {held} bytes for requests in flight and this request needs {wanted} more, over its budget of {limit} bytes (--max-inflight-bytes); retry shortly"
)]
pub struct OverBudget {
    /// Bytes asked for.
    pub wanted: usize,
    /// Bytes held by other requests when it was asked.
    pub held: usize,
    /// The budget.
    pub limit: usize,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least one KiB).
    pub fn new(bytes: usize) -> MemoryBudget {
        let total = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        MemoryBudget {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.total.saturating_mul(UNIT)
    }

    /// Bytes reserved now.
    pub fn held(&self) -> usize {
        (self.total - self.permits.available_permits()).saturating_mul(UNIT)
    }

    /// Reserves `bytes`, or says why not; never waits.
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, OverBudget> {
        let mut reservation = Reservation {
            budget: self.clone(),
            permit: None,
        };
        reservation.grow(bytes)?;
        Ok(reservation)
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, |p| p.num_permits().saturating_mul(UNIT))
    }

    /// Holds `bytes` more, or says why not (what was held stays held); never waits.
    pub fn grow(&mut self, bytes: usize) -> Result<(), OverBudget> {
        if bytes == 0 {
            return Ok(());
        }
        let over = || OverBudget {
            wanted: bytes,
            held: self.budget.held(),
            limit: self.budget.limit(),
        };
        let units = u32::try_from(bytes.div_ceil(UNIT)).map_err(|_| over())?;
        let more = Arc::clone(&self.budget.permits)
            .try_acquire_many_owned(units)
            .map_err(|_| over())?;
        match &mut self.permit {
            Some(permit) => permit.merge(more),
            None => self.permit = Some(more),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_refused_past_the_budget_and_returned_when_dropped() {
        let budget = MemoryBudget::new(10 * UNIT);
        let mut a = budget.reserve(4 * UNIT).unwrap();
        assert_eq!(budget.held(), 4 * UNIT);
        a.grow(UNIT + 1).unwrap();
        assert_eq!(a.bytes(), 6 * UNIT, "rounded up to whole KiB");
        let refused = budget.reserve(5 * UNIT).unwrap_err();
        assert_eq!(
            refused,
            OverBudget {
                wanted: 5 * UNIT,
                held: 6 * UNIT,
                limit: 10 * UNIT
            }
        );
        assert!(refused.to_string().contains("--max-inflight-bytes"));
        let b = budget.reserve(4 * UNIT).unwrap();
        assert_eq!(budget.held(), 10 * UNIT);
        assert!(a.grow(1).is_err());
        assert_eq!(a.bytes(), 6 * UNIT, "a refused growth keeps what was held");
        drop(a);
        drop(b);
        assert_eq!(budget.held(), 0);
        assert!(budget.reserve(usize::MAX).is_err());
        assert_eq!(budget.reserve(0).unwrap().bytes(), 0);
    }
}
