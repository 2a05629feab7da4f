//! The caller's deadline, and pooled connections that honour it.
//!
//! The server runs each call inside [`scope`], with the instant it gives
//! up on the call if the caller set a deadline. A connection taken from
//! the pool in that task gets a statement timeout a little beyond that
//! instant, so PostgreSQL stops on its own even if this process dies. A
//! call given up on before it finished (the deadline passed, or the client
//! cancelled it) may leave a statement running that would go on holding
//! its locks: its connections have their statement cancelled in
//! PostgreSQL and are closed, never pooled again.
//!
//! A task-local rather than a parameter: every query already takes its
//! connection in one place, and no signature has to carry a deadline.

use std::{
    future::Future,
    ops::{Deref, DerefMut},
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker, ready},
    time::Duration,
};

use deadpool_postgres::Object;
use tokio::time::Instant;
use tokio_postgres::NoTls;

use super::{Result, Store};

/// The call a task is serving.
#[derive(Clone)]
struct Call {
    deadline: Option<Instant>,
    /// Set once the call's future is dropped before it finished.
    abandoned: Arc<AtomicBool>,
}

tokio::task_local! {
    static CALL: Call;
}

/// How much longer than the call's deadline PostgreSQL lets a statement
/// run: the cancel sent at the deadline comes first, and the statement
/// timeout only counts when that cancel never leaves this process.
const STATEMENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(2);

/// Runs `work` as a call with `deadline` as the deadline of its SQL; if
/// `work` is dropped before it finishes, its statements are cancelled.
pub fn scope<F: Future>(deadline: Option<Instant>, work: F) -> impl Future<Output = F::Output> {
    let call = Call {
        deadline,
        abandoned: Arc::new(AtomicBool::new(false)),
    };
    Abandonable {
        abandoned: call.abandoned.clone(),
        work: Some(Box::pin(CALL.scope(call, work))),
    }
}

/// The deadline of the calling task, if it has one.
pub fn current() -> Option<Instant> {
    CALL.try_with(|call| call.deadline).ok().flatten()
}

/// Runs `work` until `deadline`, as [`scope`] does; `None` when the
/// deadline came first. For tasks a call spawns, such as exports.
pub async fn bounded<F: Future>(deadline: Option<Instant>, work: F) -> Option<F::Output> {
    let work = scope(deadline, work);
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        None => Some(work.await),
    }
}

/// Marks its call abandoned when dropped unfinished, before the work (and
/// the connections it holds) is dropped.
struct Abandonable<F> {
    abandoned: Arc<AtomicBool>,
    work: Option<Pin<Box<F>>>,
}

impl<F: Future> Future for Abandonable<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let work = this.work.as_mut().expect("polled after it finished");
        let output = ready!(work.as_mut().poll(cx));
        this.work = None;
        Poll::Ready(output)
    }
}

impl<F> Drop for Abandonable<F> {
    fn drop(&mut self) {
        if self.work.is_some() {
            self.abandoned.store(true, Ordering::SeqCst);
            self.work = None;
        }
    }
}

/// A pooled connection of the call that took it.
pub struct Connection {
    client: Option<Object>,
    /// Whether a statement timeout was set that must not outlive the call.
    timed: bool,
    abandoned: Option<Arc<AtomicBool>>,
}

impl Store {
    /// A connection from the pool, under the caller's deadline if any.
    pub(super) async fn connection(&self) -> Result<Connection> {
        let call = CALL.try_with(Call::clone).ok();
        let client = self.pool.get().await?;
        let deadline = call.as_ref().and_then(|call| call.deadline);
        if let Some(deadline) = deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let millis = (remaining + STATEMENT_TIMEOUT_MARGIN).as_millis();
            // An integer computed here: nothing from a caller is formatted
            // into the statement (SET takes no parameters).
            queue(&client, &format!("SET statement_timeout = {millis}"));
        }
        Ok(Connection {
            client: Some(client),
            timed: deadline.is_some(),
            abandoned: call.map(|call| call.abandoned),
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
        let Some(client) = self.client.take() else {
            return;
        };
        let abandoned = self
            .abandoned
            .as_ref()
            .is_some_and(|abandoned| abandoned.load(Ordering::SeqCst));
        if !abandoned {
            if self.timed {
                // The pool's next user may have no deadline.
                queue(&client, "RESET statement_timeout");
            }
            return;
        }
        // Maybe in the middle of a statement. The connection leaves the
        // pool first, so the cancel cannot reach a next user.
        let client = Object::take(client);
        let cancel = client.cancel_token();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = cancel.cancel_query(NoTls).await {
                    tracing::warn!(%error, "cannot cancel the statement of an abandoned call");
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

    #[tokio::test]
    async fn only_a_call_dropped_unfinished_is_abandoned_and_it_is_marked_first() {
        let flag = || CALL.with(|call| call.abandoned.clone());
        let finished = scope(None, async { flag() }).await;
        assert!(!finished.load(Ordering::SeqCst));

        /// Reports, when dropped, whether the call was marked by then.
        struct Witness(Arc<AtomicBool>, Arc<AtomicBool>);
        impl Drop for Witness {
            fn drop(&mut self) {
                self.1
                    .store(self.0.load(Ordering::SeqCst), Ordering::SeqCst);
            }
        }
        let seen = Arc::new(AtomicBool::new(false));
        let call = scope(None, {
            let seen = seen.clone();
            async move {
                let _witness = Witness(flag(), seen);
                std::future::pending::<()>().await
            }
        });
        let mut call = Box::pin(call);
        assert!(futures_poll_once(call.as_mut()).is_pending());
        drop(call);
        assert!(
            seen.load(Ordering::SeqCst),
            "marked before its work was dropped"
        );
    }

    fn futures_poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }
}
