//! The caller's deadline, and pooled connections that honour it.
//!
//! The server runs each call inside [`scope`] with the instant it gives
//! up on the call. A connection taken from the pool in that task gets a
//! statement timeout a little beyond it, so PostgreSQL stops on its own
//! even if this process dies. A connection dropped after that instant
//! belongs to an abandoned call, possibly mid-statement: its statement is
//! cancelled in PostgreSQL and it is closed, never pooled again.
//!
//! A task-local rather than a parameter: every query already takes its
//! connection in one place, and no signature has to carry a deadline.

use std::{
    future::Future,
    ops::{Deref, DerefMut},
    pin::pin,
    task::{Context, Waker},
    time::Duration,
};

use deadpool_postgres::Object;
use tokio::time::Instant;
use tokio_postgres::NoTls;

use super::{Result, Store};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// How much longer than the call's deadline PostgreSQL lets a statement
/// run: the cancel sent at the deadline comes first, and the statement
/// timeout only counts when that cancel never leaves this process.
const STATEMENT_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// Runs `work` with `deadline` as the deadline of the SQL it runs.
pub async fn scope<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, work).await,
        None => work.await,
    }
}

/// The deadline of the calling task, if it has one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Runs `work` until `deadline`, with it as the deadline of its SQL; `None`
/// when the deadline came first. For tasks a call spawns, such as exports.
pub async fn bounded<F: Future>(deadline: Option<Instant>, work: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, DEADLINE.scope(deadline, work))
            .await
            .ok(),
        None => Some(work.await),
    }
}

/// A pooled connection under the deadline of the task that took it.
pub struct Connection {
    client: Option<Object>,
    deadline: Option<Instant>,
}

impl Store {
    /// A connection from the pool, under the caller's deadline if any.
    pub(super) async fn connection(&self) -> Result<Connection> {
        let deadline = current();
        let client = self.pool.get().await?;
        if let Some(deadline) = deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let millis = (remaining + STATEMENT_TIMEOUT_MARGIN).as_millis();
            // An integer computed here: nothing from a caller is formatted
            // into the statement (SET takes no parameters).
            queue(&client, &format!("SET statement_timeout = {millis}"));
        }
        Ok(Connection {
            client: Some(client),
            deadline,
        })
    }
}

/// Sends `sql` without waiting for its answer. tokio-postgres sends a
/// request when its future is first polled and discards the answer of a
/// request whose future is gone; requests go out in order, so whatever the
/// connection runs next runs after this.
fn queue(client: &tokio_postgres::Client, sql: &str) {
    let mut sent = pin!(client.batch_execute(sql));
    let _ = sent.as_mut().poll(&mut Context::from_waker(Waker::noop()));
}

impl Deref for Connection {
    type Target = Object;

    fn deref(&self) -> &Object {
        self.client.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Object {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let (Some(client), Some(deadline)) = (self.client.take(), self.deadline) else {
            return;
        };
        if Instant::now() < deadline {
            // The pool's next user may have no deadline.
            queue(&client, "RESET statement_timeout");
            return;
        }
        // The call was given up on, maybe in the middle of a statement that
        // would otherwise run on, holding its locks. The connection leaves
        // the pool first, so the cancel cannot reach its next user.
        let client = Object::take(client);
        let cancel = client.cancel_token();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = cancel.cancel_query(NoTls).await {
                    tracing::warn!(%error, "cannot cancel the statement of a call past its deadline");
                }
                drop(client);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_sets_the_deadline_and_bounded_stops_at_it() {
        assert_eq!(current(), None);
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            scope(Some(deadline), async { current() }).await,
            Some(deadline)
        );
        assert_eq!(scope(None, async { current() }).await, None);
        let stopped = bounded(Some(deadline), async {
            assert_eq!(current(), Some(deadline));
            std::future::pending::<()>().await
        })
        .await;
        assert!(stopped.is_none());
        assert_eq!(bounded(None, async { 7 }).await, Some(7));
    }
}
