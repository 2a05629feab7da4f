//! How many exports may run at once. An export holds a pooled connection
//! for as long as its client takes to read it, which may be forever: without
//! a limit, a client that opens exports and reads none takes the whole pool,
//! and every other call waits for a connection until it times out.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Notify;
use uuid::Uuid;

use super::{Error, ExportScope, Result};

/// Exports of all tenants together may hold half the pool, so the other
/// half always serves the other calls; one tenant may hold half of that, so
/// one tenant's exports never shut out another's.
pub(super) struct ExportLimit {
    total: usize,
    per_tenant: usize,
    running: Mutex<Running>,
    /// Told whenever an export ends.
    ended: Notify,
}

#[derive(Default)]
struct Running {
    total: usize,
    by_tenant: HashMap<Uuid, usize>,
}

/// A running export's place; dropping it frees the place.
pub(super) struct ExportSlot {
    limit: Arc<ExportLimit>,
    tenant_id: Uuid,
}

impl ExportLimit {
    pub fn for_pool(pool_size: usize) -> Self {
        let total = (pool_size / 2).max(1);
        Self {
            total,
            per_tenant: (total / 2).max(1),
            running: Mutex::default(),
            ended: Notify::new(),
        }
    }

    /// A place for an export of `tenant_id`, waiting at most `wait` for
    /// one to free; then TooManyExports. The wait is short: a client that
    /// left an export learns nothing of when the server frees its place, and
    /// should not be refused for opening the next one at once; a longer
    /// wait would hold the call behind exports that may never end.
    pub async fn start(self: &Arc<Self>, tenant_id: Uuid, wait: Duration) -> Result<ExportSlot> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so an end in between is not missed.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match self.try_start(tenant_id) {
                Ok(slot) => return Ok(slot),
                Err(full) => {
                    if tokio::time::timeout_at(deadline, ended).await.is_err() {
                        return Err(full);
                    }
                }
            }
        }
    }

    fn try_start(self: &Arc<Self>, tenant_id: Uuid) -> Result<ExportSlot> {
        let mut running = self.running.lock().expect("no panic while counting");
        let of_tenant = running.by_tenant.get(&tenant_id).copied().unwrap_or(0);
        if of_tenant >= self.per_tenant {
            return Err(Error::TooManyExports {
                limit: self.per_tenant,
                scope: ExportScope::Tenant,
            });
        }
        if running.total >= self.total {
            return Err(Error::TooManyExports {
                limit: self.total,
                scope: ExportScope::Server,
            });
        }
        running.total += 1;
        *running.by_tenant.entry(tenant_id).or_default() += 1;
        Ok(ExportSlot {
            limit: self.clone(),
            tenant_id,
        })
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut running = self.limit.running.lock().expect("no panic while counting");
        running.total -= 1;
        if let Some(count) = running.by_tenant.get_mut(&self.tenant_id) {
            *count -= 1;
            if *count == 0 {
                running.by_tenant.remove(&self.tenant_id);
            }
        }
        drop(running);
        self.limit.ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit and its scope that refused a start; None if it started.
    fn refusal(started: Result<ExportSlot>) -> Option<(usize, ExportScope)> {
        match started {
            Err(Error::TooManyExports { limit, scope }) => Some((limit, scope)),
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => None,
        }
    }

    #[test]
    fn a_tenant_takes_at_most_a_quarter_of_the_pool_and_all_exports_half() {
        let limit = Arc::new(ExportLimit::for_pool(16));
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let of_a: Vec<_> = (0..4).map(|_| limit.try_start(a).unwrap()).collect();
        assert_eq!(refusal(limit.try_start(a)), Some((4, ExportScope::Tenant)));
        let of_b: Vec<_> = (0..4).map(|_| limit.try_start(b).unwrap()).collect();
        assert_eq!(refusal(limit.try_start(c)), Some((8, ExportScope::Server)));
        drop(of_a);
        limit.try_start(c).unwrap();
        drop(of_b);
        assert_eq!(limit.running.lock().unwrap().total, 0);
    }

    #[test]
    fn even_the_smallest_pool_lets_one_export_run() {
        let limit = Arc::new(ExportLimit::for_pool(1));
        let tenant = Uuid::now_v7();
        let slot = limit.try_start(tenant).unwrap();
        assert!(limit.try_start(tenant).is_err());
        drop(slot);
        limit.try_start(tenant).unwrap();
    }

    #[tokio::test]
    async fn a_start_waits_briefly_for_an_export_to_end() {
        let limit = Arc::new(ExportLimit::for_pool(2));
        let tenant = Uuid::now_v7();
        let running = limit.try_start(tenant).unwrap();
        let wait = Duration::from_millis(50);
        assert!(limit.start(tenant, wait).await.is_err(), "none ended");
        let ending = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(running);
        });
        limit.start(tenant, Duration::from_secs(5)).await.unwrap();
        ending.await.unwrap();
    }
}
