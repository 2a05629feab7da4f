//! Request ids (AIP-155) are remembered for a window, then forgotten: a
//! consent record loses its request id, a stored preference response goes.
//! A retry after that is a new request.

use std::time::SystemTime;

use super::{Result, Store, run};

/// What one run of [`Store::forget_request_ids`] forgot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub consent_request_ids: u64,
    pub preference_responses: u64,
}

impl Store {
    /// Forgets up to `batch` request ids of consent records recorded before
    /// `before`, and up to `batch` preference responses stored before it.
    /// Safe to run on every replica at once: each id is forgotten once.
    pub async fn forget_request_ids(&self, before: SystemTime, batch: i64) -> Result<Forgotten> {
        let client = self.pool.get().await?;
        // Two statements, each its own transaction: neither waits for the
        // other's locks.
        let consent_request_ids = run::execute(
            &client,
            include_str!("sql/forget_consent_request_ids.sql"),
            &[&before, &batch],
        )
        .await?;
        let preference_responses = run::execute(
            &client,
            include_str!("sql/forget_preference_requests.sql"),
            &[&before, &batch],
        )
        .await?;
        Ok(Forgotten {
            consent_request_ids,
            preference_responses,
        })
    }
}
