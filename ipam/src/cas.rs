//! The one compare-and-swap retry loop every IPAM write goes through: read,
//! decide, commit; on a conflict read again, at most `max_retries` times.

use crate::allocate::Ipam;
use crate::error::IpamError;
use crate::store::{IpamKey, IpamStore, StoreError, Write};

/// What one read-and-decide round of [`Ipam::cas_retry`] concluded.
pub(crate) enum Attempt<T> {
    /// Commit these writes all-or-none; on success the loop returns the value.
    Commit(Vec<Write>, T),
    /// Finished without writing anything.
    Done(T),
    /// Nothing to commit this round (e.g. a missing block was just claimed):
    /// read again. Counts as an attempt.
    Again,
}

/// True for the store errors another writer causes (the read is stale).
fn is_conflict(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Conflict(_) | StoreError::AlreadyExists(_) | StoreError::NotFound(_)
    )
}

impl<S: IpamStore> Ipam<S> {
    /// Runs `attempt` until its writes commit, it finishes without writing,
    /// or `max_retries` rounds have failed on conflicts (then
    /// [`IpamError::Contention`] naming `key`).
    pub(crate) fn cas_retry<T>(
        &self,
        key: &IpamKey,
        attempt: impl FnMut() -> Result<Attempt<T>, IpamError>,
    ) -> Result<T, IpamError> {
        self.cas_retry_with(key, attempt, |_| None)
    }

    /// As [`Ipam::cas_retry`], but a failed commit's conflict is first shown
    /// to `on_conflict`: `Some(value)` ends the loop with that value (e.g. the
    /// block vanished: nothing to take from it), `None` reads again.
    pub(crate) fn cas_retry_with<T>(
        &self,
        key: &IpamKey,
        mut attempt: impl FnMut() -> Result<Attempt<T>, IpamError>,
        mut on_conflict: impl FnMut(&StoreError) -> Option<T>,
    ) -> Result<T, IpamError> {
        for _ in 0..self.max_retries {
            match attempt()? {
                Attempt::Done(v) => return Ok(v),
                Attempt::Again => {}
                Attempt::Commit(writes, v) => match self.store.commit(&writes) {
                    Ok(_) => return Ok(v),
                    Err(e) if is_conflict(&e) => {
                        if let Some(v) = on_conflict(&e) {
                            return Ok(v);
                        }
                    }
                    Err(e) => return Err(e.into()),
                },
            }
        }
        Err(IpamError::Contention {
            key: key.clone(),
            attempts: self.max_retries,
        })
    }
}
