//! The queue of calls, and the turn to collect the next batch from it.

use std::{sync::Arc, time::Duration};

use tokio::sync::{Mutex, OwnedMutexGuard, mpsc};

/// The queue, and with it the turn to collect the next batch.
pub(super) type Queue<J> = Arc<Mutex<mpsc::Receiver<J>>>;

pub(super) fn queue<J>(receiver: mpsc::Receiver<J>) -> Queue<J> {
    Arc::new(Mutex::new(receiver))
}

/// A writer's turn to collect: held while it waits for a job, takes its
/// batch, gets its connection and makes its first round trip, and passed
/// on as it sends that batch's INSERT. The next writer then begins its
/// batch while this one's INSERT and COMMIT run, so the two round trips of
/// two batches overlap and each batch gathers the calls of a whole round
/// trip. First round trips take turns, so more than two writers add little.
pub(super) struct Turn<J> {
    _queue: OwnedMutexGuard<mpsc::Receiver<J>>,
}

/// Longest a writer keeps the turn while it waits on its connection:
/// getting it, and the first round trip. Both are short; a connection that
/// does not answer (being opened, a server that stopped answering) would
/// otherwise stop every writer, not only its own.
pub(super) const TURN_LIMIT: Duration = Duration::from_millis(50);

/// Runs `work`, and passes the turn on if `work` is still running after
/// [`TURN_LIMIT`].
pub(super) async fn passing_turn_after_limit<J, F: Future>(
    turn: &mut Option<Turn<J>>,
    work: F,
) -> F::Output {
    let mut work = std::pin::pin!(work);
    if turn.is_some() {
        tokio::select! {
            biased;
            output = &mut work => return output,
            () = tokio::time::sleep(TURN_LIMIT) => *turn = None,
        }
    }
    work.await
}

/// Waits for the turn and one job, then takes whatever else is queued, up
/// to `max`. None once the queue is closed and drained.
pub(super) async fn next_batch<J>(queue: &Queue<J>, max: usize) -> Option<(Vec<J>, Turn<J>)> {
    let mut queue = queue.clone().lock_owned().await;
    let first = queue.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some((batch, Turn { _queue: queue }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_queue() -> Queue<()> {
        queue(mpsc::channel(1).1)
    }

    #[tokio::test]
    async fn a_writer_stuck_in_its_first_round_trip_passes_the_turn_on() {
        let queue = empty_queue();
        let mut turn = Some(Turn {
            _queue: queue.clone().lock_owned().await,
        });
        // Work that can finish only once another writer has had the turn:
        // without the limit, this would wait forever.
        let other_writer = queue.clone();
        let work = async move {
            drop(other_writer.lock().await);
            "done"
        };
        let output =
            tokio::time::timeout(TURN_LIMIT * 20, passing_turn_after_limit(&mut turn, work)).await;
        assert_eq!(output, Ok("done"));
        assert!(turn.is_none());
    }

    #[tokio::test]
    async fn a_quick_first_round_trip_keeps_the_turn() {
        let queue = empty_queue();
        let mut turn = Some(Turn {
            _queue: queue.clone().lock_owned().await,
        });
        assert_eq!(passing_turn_after_limit(&mut turn, async { 7 }).await, 7);
        assert!(turn.is_some());
        assert!(queue.try_lock().is_err(), "the turn is still held");
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_up_to_the_most() {
        let (jobs, receiver) = mpsc::channel(10);
        let queue = queue(receiver);
        for job in 0..5 {
            jobs.send(job).await.unwrap();
        }
        let (batch, turn) = next_batch(&queue, 3).await.unwrap();
        assert_eq!(batch, vec![0, 1, 2]);
        drop(turn);
        let (batch, _turn) = next_batch(&queue, 3).await.unwrap();
        assert_eq!(batch, vec![3, 4], "no waiting for a full batch");
    }

    #[tokio::test]
    async fn the_next_batch_waits_for_the_turn() {
        let (jobs, receiver) = mpsc::channel(10);
        let queue = queue(receiver);
        jobs.send(1).await.unwrap();
        let (_, turn) = next_batch(&queue, 10).await.unwrap();
        jobs.send(2).await.unwrap();
        let mut next = std::pin::pin!(next_batch(&queue, 10));
        let waited = tokio::time::timeout(TURN_LIMIT, &mut next).await;
        assert!(
            waited.is_err(),
            "collected while another writer held the turn"
        );
        drop(turn);
        let (batch, _) = next.await.unwrap();
        assert_eq!(batch, vec![2]);
    }

    #[tokio::test]
    async fn a_closed_and_drained_queue_ends_the_writers() {
        let (jobs, receiver) = mpsc::channel(10);
        let queue = queue(receiver);
        jobs.send(1).await.unwrap();
        drop(jobs);
        let (batch, turn) = next_batch(&queue, 10).await.unwrap();
        assert_eq!(batch, vec![1], "what was queued is still written");
        drop(turn);
        assert!(next_batch(&queue, 10).await.is_none());
    }
}
