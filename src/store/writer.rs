//! The write path of RecordConsent: group commit.
//!
//! Handlers enqueue a validated decision and wait. Writer tasks take whatever
//! is queued (up to a cap) and write it with one multi-row statement in one
//! transaction, then answer each caller after COMMIT. A lone call is written
//! at once (no timer); under load, one commit's fsync serves many calls.
//!
//! This module runs the writers and answers their calls: the queue and the
//! turn to collect from it are in [`turn`], what a record becomes is
//! `domain::seal`, and the SQL of a batch is `store::consent_batch`.

mod turn;

use std::{collections::HashMap, sync::Arc};

use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
};
use tracing::Instrument;
use uuid::Uuid;

use super::{Error, Result, Store, consent_batch::Committed};
use crate::{
    domain::{
        consent::{ConsentDecision, ConsentRecord},
        keyring::Sealing,
        receipt::{self, Receipt},
        seal::{self, Pending},
        site::ServerDefaults,
    },
    metrics::metrics,
    telemetry::{TraceLink, batch_span},
};
use turn::{Queue, Turn, next_batch, passing_turn_after_limit};

/// How the writers batch.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    /// Writer tasks, each with a connection of its own.
    pub writers: usize,
    /// Most records in one transaction.
    pub max_batch: usize,
}

struct Job {
    tenant_id: Uuid,
    decision: ConsentDecision,
    reply: oneshot::Sender<Result<Recorded>>,
    /// The call's span, which the batch's span links to.
    trace: TraceLink,
}

/// A stored record with its receipt.
#[derive(Clone)]
pub struct Recorded {
    pub record: ConsentRecord,
    pub receipt: Option<Receipt>,
}

impl Recorded {
    /// A record stored by an earlier call with the same request id.
    fn earlier(tenant_id: Uuid, record: ConsentRecord) -> Self {
        Self {
            receipt: receipt::receipt(tenant_id, &record),
            record,
        }
    }
}

/// Enqueues decisions for the writer tasks. Cheap to clone; the writers
/// drain the queue and stop once every clone is dropped.
#[derive(Clone)]
pub struct ConsentWriter {
    jobs: mpsc::Sender<Job>,
}

/// The writers' thread.
pub struct WriterTasks(std::thread::JoinHandle<()>);

impl WriterTasks {
    /// Waits until the queue is drained and every writer has stopped, which
    /// happens once every [`ConsentWriter`] is dropped.
    pub async fn finish(self) {
        let _ = tokio::task::spawn_blocking(move || self.0.join()).await;
    }
}

impl ConsentWriter {
    /// Starts the writers on a thread of their own, each with a connection
    /// of its own. A writer's batch waits on Postgres twice, and each time
    /// it resumes it would otherwise queue behind the calls the server is
    /// decoding and answering.
    pub async fn start(
        store: &Store,
        defaults: ServerDefaults,
        sealing: Sealing,
        config: WriterConfig,
    ) -> std::io::Result<(Self, WriterTasks)> {
        let writers = config.writers.max(1);
        let (jobs, queue) = mpsc::channel(config.max_batch * writers * 4);
        let queue = turn::queue(queue);
        let writer = Arc::new(BatchWriter {
            // The pool's connections belong to the runtime that opens them,
            // so the writers' connections are opened on their thread.
            store: store.with_pool_size(writers),
            defaults,
            sealing,
        });
        let (started, running) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("consentd-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                runtime.block_on(run_writers(writer, queue, writers, config.max_batch));
            })?;
        running
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread stopped")))?;
        Ok((Self { jobs }, WriterTasks(thread)))
    }

    /// Reads how many calls wait for a writer; `None` once the writers
    /// stopped. Holds no sender, so it never keeps the writers running.
    pub fn queue_depth(&self) -> impl Fn() -> Option<usize> + Send + Sync + 'static {
        let jobs = self.jobs.downgrade();
        move || {
            jobs.upgrade()
                .map(|jobs| jobs.max_capacity() - jobs.capacity())
        }
    }

    /// Stores a decision under its site's settings, sealed, and returns the
    /// record once it is committed; with a request id seen before, the
    /// record stored then.
    pub async fn record(&self, tenant_id: Uuid, decision: ConsentDecision) -> Result<Recorded> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                tenant_id,
                decision,
                reply,
                trace: TraceLink::current(),
            })
            .await
            .map_err(|_| Error::Unavailable("the writer is shutting down".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("the writer dropped a call".into()))?
    }
}

/// Runs `writers` tasks that take turns collecting batches until the queue
/// is closed and drained.
async fn run_writers(writer: Arc<BatchWriter>, queue: Queue<Job>, writers: usize, max: usize) {
    let mut tasks = JoinSet::new();
    for _ in 0..writers {
        let (writer, queue) = (writer.clone(), queue.clone());
        tasks.spawn(async move {
            while let Some((batch, turn)) = next_batch(&queue, max).await {
                metrics().writer_batch_size.observe(batch.len() as f64);
                let span = batch_span(
                    "consent_records",
                    batch.len(),
                    batch.iter().map(|job| &job.trace),
                );
                writer.write(batch, turn).instrument(span).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// What every writer task shares.
struct BatchWriter {
    store: Store,
    defaults: ServerDefaults,
    sealing: Sealing,
}

impl BatchWriter {
    /// Writes a batch and answers each of its calls.
    async fn write(&self, batch: Vec<Job>, turn: Turn<Job>) {
        let items: Vec<(Uuid, &ConsentDecision)> = batch
            .iter()
            .map(|job| (job.tenant_id, &job.decision))
            .collect();
        let outcome = self.write_merging_repeats(&items, turn).await;
        match outcome {
            Ok(answers) => {
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            // A row the database refuses fails only its own call: write the
            // batch again one row at a time, each in its own transaction.
            // Only an uncommitted batch gets here.
            Err(Error::Internal(_)) if batch.len() > 1 => {
                for job in batch {
                    let answer = self
                        .write_unique(&[(job.tenant_id, &job.decision)], None)
                        .await
                        .and_then(|mut answers| answers.remove(0));
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => {
                let shared = Arc::new(error);
                for job in batch {
                    let _ = job.reply.send(Err(Error::shared(&shared)));
                }
            }
        }
    }

    /// Writes records in one transaction and answers each call, in input
    /// order. An error means nothing was committed. A call repeating a
    /// request id already in the batch gets the first one's answer: one
    /// row, one receipt, and no leaf in the signed tree for a record that
    /// is never stored.
    async fn write_merging_repeats(
        &self,
        items: &[(Uuid, &ConsentDecision)],
        turn: Turn<Job>,
    ) -> Result<Vec<Result<Recorded>>> {
        let (unique, slots) = merge_repeats(items);
        if unique.len() == items.len() {
            return self.write_unique(items, Some(turn)).await;
        }
        let answers: Vec<Result<Recorded, Arc<Error>>> = self
            .write_unique(&unique, Some(turn))
            .await?
            .into_iter()
            .map(|answer| answer.map_err(Arc::new))
            .collect();
        Ok(slots
            .into_iter()
            .map(|slot| answers[slot].clone().map_err(|error| Error::shared(&error)))
            .collect())
    }

    /// Writes records with distinct request ids in one transaction of two
    /// round trips (see `consent_batch`), sealed in between. An error means
    /// nothing was committed; once committed, each call gets its own answer
    /// in input order. A `turn` given is passed on as the INSERT goes out,
    /// or after [`turn::TURN_LIMIT`].
    ///
    /// A request id stored before is answered with that record, and only
    /// records the batch stores are sealed, so every leaf of a signed tree
    /// is a stored record. A concurrent batch may still store one of the
    /// ids between our first round trip and our INSERT: then nothing is
    /// stored, and the batch begins again and finds that record.
    async fn write_unique(
        &self,
        items: &[(Uuid, &ConsentDecision)],
        mut turn: Option<Turn<Job>>,
    ) -> Result<Vec<Result<Recorded>>> {
        for _ in 0..ATTEMPTS {
            let begun = passing_turn_after_limit(
                &mut turn,
                self.store.begin_consent_batch(items, self.defaults),
            )
            .await?;
            let record_time = begun.record_time()?;
            let settings = begun.settings()?;
            let mut earlier = begun.earlier()?;
            // A request id stored before gets that record; a decision its
            // site's declaration refuses is answered here. Neither is
            // sealed: no row, no leaf in the signed tree.
            let mut answers: Vec<Option<Result<Recorded>>> = Vec::with_capacity(items.len());
            let mut pending = Vec::with_capacity(items.len());
            for &(tenant_id, decision) in items {
                let stored = decision
                    .request_id
                    .as_ref()
                    .and_then(|r| earlier.remove(&(tenant_id, r.as_ref().to_string())));
                // Before the declaration: a refused retry of a request stored
                // before the declaration changed gets its first answer, as
                // every retry does (AIP-155).
                if let Some(record) = stored {
                    answers.push(Some(Ok(Recorded::earlier(tenant_id, record))));
                    continue;
                }
                let in_force = settings
                    .get(&(tenant_id, decision.site_id.as_ref()))
                    .ok_or_else(|| Error::Internal("settings of a site missing".into()))?;
                let declined = in_force
                    .declaration
                    .as_ref()
                    .map(|d| d.check(decision.action, &decision.choices))
                    .unwrap_or_default();
                if declined.is_empty() {
                    answers.push(None);
                    pending.push(Pending {
                        tenant_id,
                        decision: decision.clone(),
                        settings: in_force.settings,
                    });
                } else {
                    answers.push(Some(Err(Error::Declined(declined))));
                }
            }
            drop(settings);
            if pending.is_empty() {
                drop(turn);
                begun.commit_nothing().await?;
                return Ok(answers.into_iter().flatten().collect());
            }
            let sealed = seal::seal_batch(pending, record_time, &self.sealing)
                .map_err(|error| Error::Internal(error.into()))?;
            let turn = turn.take();
            match begun.insert_and_commit(&sealed, move || drop(turn)).await? {
                Committed::RequestIdTaken => continue,
                Committed::All => {}
            }
            let mut sealed = sealed.into_iter();
            return Ok(answers
                .into_iter()
                .map(|answer| {
                    answer.unwrap_or_else(|| {
                        sealed
                            .next()
                            .map(|sealed| Recorded {
                                record: sealed.record,
                                receipt: Some(sealed.receipt),
                            })
                            .ok_or_else(|| Error::Internal("a sealed record missing".into()))
                    })
                })
                .collect());
        }
        Err(Error::Unavailable(
            "request ids kept being taken by concurrent batches".into(),
        ))
    }
}

/// How often a batch begins again when concurrent batches took its request
/// ids first. Each time, the ids taken are found stored, so only new
/// concurrent retries of the batch's other ids can make it begin again.
const ATTEMPTS: usize = 4;

/// The calls of a batch with repeated request ids merged: the first call
/// of each (tenant, request id), and for every call the index among those
/// of the one whose answer it gets.
fn merge_repeats<'a>(
    items: &[(Uuid, &'a ConsentDecision)],
) -> (Vec<(Uuid, &'a ConsentDecision)>, Vec<usize>) {
    let mut first_of: HashMap<(Uuid, &str), usize> = HashMap::new();
    let mut unique = Vec::with_capacity(items.len());
    let slots = items
        .iter()
        .map(|&(tenant_id, decision)| {
            let fresh = unique.len();
            let slot = match decision.request_id.as_ref() {
                Some(request_id) => *first_of
                    .entry((tenant_id, request_id.as_ref()))
                    .or_insert(fresh),
                None => fresh,
            };
            if slot == fresh {
                unique.push((tenant_id, decision));
            }
            slot
        })
        .collect();
    (unique, slots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::seal::tests::decision;

    #[test]
    fn a_request_id_repeated_in_a_batch_is_written_once_and_answers_both() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let decisions = [
            decision("v0", Some("r1")),
            decision("v1", None),
            decision("v2", Some("r1")),
            decision("v3", None),
            decision("v4", Some("r2")),
        ];
        let items: Vec<(Uuid, &ConsentDecision)> =
            [a, a, a, a, b].into_iter().zip(&decisions).collect();
        let (unique, slots) = merge_repeats(&items);
        let subjects: Vec<&str> = unique.iter().map(|(_, d)| d.subject_id.as_ref()).collect();
        assert_eq!(subjects, ["v0", "v1", "v3", "v4"]);
        assert_eq!(slots, [0, 1, 0, 2, 3]);
    }

    #[test]
    fn the_same_request_id_of_two_tenants_is_two_records() {
        let decisions = [decision("v0", Some("r1")), decision("v1", Some("r1"))];
        let items = [
            (Uuid::now_v7(), &decisions[0]),
            (Uuid::now_v7(), &decisions[1]),
        ];
        let (unique, slots) = merge_repeats(&items);
        assert_eq!(unique.len(), 2);
        assert_eq!(slots, [0, 1]);
    }

    #[test]
    fn calls_without_request_ids_are_never_merged() {
        let decisions = [decision("v", None), decision("v", None)];
        let tenant = Uuid::now_v7();
        let items = [(tenant, &decisions[0]), (tenant, &decisions[1])];
        assert_eq!(merge_repeats(&items).1, [0, 1]);
    }
}
