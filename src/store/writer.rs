//! The write path of RecordConsent: group commit.
//!
//! Handlers enqueue a validated decision and wait. Writer tasks take whatever
//! is queued (up to a cap) and write it with one multi-row statement in one
//! transaction, then answer each caller after COMMIT. A lone call is written
//! at once (no timer); under load, one commit's fsync serves many calls.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, SystemTime},
};

use deadpool_postgres::Object;
use tokio::{
    sync::{Mutex, OwnedMutexGuard, mpsc, oneshot},
    task::JoinSet,
};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{
    Error, Result, Store,
    consent_row::{joined_services, record_from_row, stored_status},
    row::micros,
    site::settings_from_row,
};
use crate::domain::{
    consent::{ConsentDecision, ConsentRecord},
    keyring::{EncryptedIp, Sealing, record_context},
    receipt::{self, Receipt},
    site::{ServerDefaults, SiteSettings},
};

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
}

/// A stored record with its receipt.
#[derive(Clone)]
pub struct Recorded {
    pub record: ConsentRecord,
    pub receipt: Option<Receipt>,
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
    /// decoding and answering: on 2 cores, its own thread measured about 5%
    /// more records/s at 64 callers, in batches of 16 instead of 13.
    pub async fn start(
        store: &Store,
        defaults: ServerDefaults,
        sealing: Sealing,
        config: WriterConfig,
    ) -> std::io::Result<(Self, WriterTasks)> {
        let writers = config.writers.max(1);
        let (jobs, queue) = mpsc::channel(config.max_batch * writers * 4);
        let queue = Arc::new(Mutex::new(queue));
        let sealing = Arc::new(sealing);
        // The pool's connections belong to the runtime that opens them, so
        // the writers' connections are opened on their thread.
        let store = store.with_pool_size(writers);
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
                runtime.block_on(async move {
                    let mut tasks = JoinSet::new();
                    for _ in 0..writers {
                        let (store, queue, sealing) =
                            (store.clone(), queue.clone(), sealing.clone());
                        tasks.spawn(async move {
                            while let Some((batch, turn)) =
                                next_batch(&queue, config.max_batch).await
                            {
                                store.write_batch(batch, turn, defaults, &sealing).await;
                            }
                        });
                    }
                    while tasks.join_next().await.is_some() {}
                })
            })?;
        running
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread stopped")))?;
        Ok((Self { jobs }, WriterTasks(thread)))
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
            })
            .await
            .map_err(|_| Error::Unavailable("the writer is shutting down".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("the writer dropped a call".into()))?
    }
}

/// The queue, and with it the turn to collect the next batch.
type Queue = Arc<Mutex<mpsc::Receiver<Job>>>;

/// A writer's turn to collect: held while it waits for a job, takes its
/// batch, gets its connection and makes its first round trip, and passed
/// on as it sends that batch's INSERT. The next writer then begins its
/// batch while this one's INSERT and COMMIT run, so the two round trips of
/// two batches overlap and each batch gathers the calls of a whole round
/// trip. First round trips take turns, so more than two writers add little.
struct Turn {
    _queue: OwnedMutexGuard<mpsc::Receiver<Job>>,
}

/// Longest a writer keeps the turn while it waits on its connection: getting
/// it, and the first round trip. That takes about a millisecond; a
/// connection that does not answer (being opened, a server that stopped
/// answering) would otherwise stop every writer, not only its own.
const TURN_LIMIT: Duration = Duration::from_millis(50);

/// Runs `work`, and passes the turn on if `work` is still running after
/// [`TURN_LIMIT`].
async fn passing_turn_after_limit<F: Future>(turn: &mut Option<Turn>, work: F) -> F::Output {
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
/// to `max`.
async fn next_batch(queue: &Queue, max: usize) -> Option<(Vec<Job>, Turn)> {
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

impl Store {
    async fn write_batch(
        &self,
        batch: Vec<Job>,
        turn: Turn,
        defaults: ServerDefaults,
        sealing: &Sealing,
    ) {
        let items: Vec<(Uuid, &ConsentDecision)> = batch
            .iter()
            .map(|job| (job.tenant_id, &job.decision))
            .collect();
        let outcome = self
            .insert_consents(&items, Some(turn), defaults, sealing)
            .await;
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
                        .insert_unique(&[(job.tenant_id, &job.decision)], None, defaults, sealing)
                        .await
                        .and_then(|mut answers| answers.remove(0));
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => {
                let shared = Arc::new(error);
                for job in batch {
                    let _ = job.reply.send(Err(shared_error(&shared)));
                }
            }
        }
    }

    /// Writes records in one transaction and answers each call, in input
    /// order. An error means nothing was committed. A call repeating a
    /// request id already in the batch gets the first one's answer: one
    /// row, one receipt, and no leaf in the signed tree for a record that
    /// is never stored.
    async fn insert_consents(
        &self,
        items: &[(Uuid, &ConsentDecision)],
        turn: Option<Turn>,
        defaults: ServerDefaults,
        sealing: &Sealing,
    ) -> Result<Vec<Result<Recorded>>> {
        let mut first_of: HashMap<(Uuid, &str), usize> = HashMap::new();
        let mut unique = Vec::with_capacity(items.len());
        let slots: Vec<usize> = items
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
        if unique.len() == items.len() {
            return self.insert_unique(items, turn, defaults, sealing).await;
        }
        let answers: Vec<Result<Recorded, Arc<Error>>> = self
            .insert_unique(&unique, turn, defaults, sealing)
            .await?
            .into_iter()
            .map(|answer| answer.map_err(Arc::new))
            .collect();
        Ok(slots
            .into_iter()
            .map(|slot| answers[slot].clone().map_err(|error| shared_error(&error)))
            .collect())
    }

    /// Writes records with distinct request ids in one transaction of two
    /// round trips: BEGIN with the batch's clock and settings, then the
    /// INSERT with COMMIT. An error means nothing was committed; once
    /// committed, each call gets its own answer in input order. A `turn`
    /// given is passed on as the INSERT goes out, or after [`TURN_LIMIT`].
    async fn insert_unique(
        &self,
        items: &[(Uuid, &ConsentDecision)],
        mut turn: Option<Turn>,
        defaults: ServerDefaults,
        sealing: &Sealing,
    ) -> Result<Vec<Result<Recorded>>> {
        let mut keys: Vec<(Uuid, &str)> = items
            .iter()
            .map(|(t, d)| (*t, d.site_id.as_ref()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let (tenants, sites): (Vec<Uuid>, Vec<&str>) = keys.into_iter().unzip();
        let (lifetime, retention) = (
            micros(defaults.consent_lifetime),
            micros(defaults.retention),
        );
        let begin_params: [&(dyn ToSql + Sync); 4] = [&tenants, &sites, &lifetime, &retention];
        let (transaction, insert, begun) = passing_turn_after_limit(&mut turn, async {
            let client = self.pool.get().await?;
            let begin = client
                .prepare_cached(include_str!("sql/begin_consent_batch.sql"))
                .await?;
            let insert = client
                .prepare_cached(include_str!("sql/insert_consents.sql"))
                .await?;
            let transaction = OpenTransaction(Some(client));
            let (began, begun) = tokio::join!(
                // The same two statements run for every batch: planning them
                // once, not per call, halves the server's work per batch.
                transaction
                    .client()
                    .batch_execute("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan"),
                transaction.client().query(&begin, &begin_params)
            );
            began?;
            Ok::<_, Error>((transaction, insert, begun?))
        })
        .await?;
        let record_time: SystemTime = begun
            .first()
            .ok_or_else(|| Error::Internal("no settings".into()))?
            .try_get("now")?;
        let mut settings: HashMap<(Uuid, &str), SiteSettings> = HashMap::new();
        for row in &begun {
            let key: (Uuid, &str) = (row.try_get("tenant_id")?, row.try_get("site_id")?);
            settings.insert(key, settings_from_row(row)?);
        }

        let mut done = Vec::with_capacity(items.len());
        for (tenant_id, decision) in items {
            let site = settings
                .get(&(*tenant_id, decision.site_id.as_ref()))
                .ok_or_else(|| Error::Internal("settings of a site missing".into()))?;
            done.push((
                *tenant_id,
                seal(*tenant_id, (*decision).clone(), record_time, site, sealing)?,
            ));
        }
        sign(&mut done, sealing);
        // Rows go in by request id, so two batches retrying the same ids take
        // their unique-index locks in one order and cannot deadlock.
        let mut order: Vec<usize> = (0..done.len()).collect();
        order.sort_by_key(|&i| {
            (
                done[i].0,
                done[i]
                    .1
                    .record
                    .decision
                    .request_id
                    .as_ref()
                    .map(AsRef::<str>::as_ref),
            )
        });
        let mut columns = Columns::default();
        for i in order {
            columns.push(done[i].0, &done[i].1);
        }
        let sealed: Vec<Recorded> = done
            .into_iter()
            .map(|(_, mut sealed)| {
                // Only its encrypted form is kept, as in a record read back.
                sealed.record.decision.full_ip = None;
                Recorded {
                    record: sealed.record,
                    receipt: sealed.receipt,
                }
            })
            .collect();
        let params = columns.params();
        let (rows, committed, ()) = tokio::join!(
            transaction.client().query(&insert, &params),
            transaction.client().batch_execute("COMMIT"),
            // Last, so the INSERT and COMMIT are queued before the next
            // writer runs.
            async { drop(turn) }
        );
        // After a failed INSERT the server answers this COMMIT with a
        // rollback: the INSERT's error is the one that tells.
        committed?;
        let client = transaction.ended();
        let rows = rows?;
        // Committed: from here a failure answers calls, never rewrites them.
        let inserted: HashSet<Uuid> =
            match rows.iter().map(|row| row.try_get("record_id")).collect() {
                Ok(inserted) => inserted,
                Err(error) => {
                    let shared = Arc::new(Error::from(error));
                    return Ok(items.iter().map(|_| Err(shared_error(&shared))).collect());
                }
            };

        // Request ids taken before inserted nothing: their callers get the
        // record stored first, read after COMMIT. A failure here fails only
        // those calls, never rewrites.
        let retried: Vec<(Uuid, &str)> = items
            .iter()
            .zip(&sealed)
            .filter(|(_, sealed)| !inserted.contains(&sealed.record.id))
            .filter_map(|((tenant_id, decision), _)| {
                Some((*tenant_id, decision.request_id.as_ref()?.as_ref()))
            })
            .collect();
        let earlier = if retried.is_empty() {
            Ok(HashMap::new())
        } else {
            earlier_records(&client, retried).await.map_err(Arc::new)
        };
        Ok(items
            .iter()
            .zip(sealed)
            .map(|((tenant_id, decision), sealed)| {
                if inserted.contains(&sealed.record.id) {
                    return Ok(sealed);
                }
                let earlier = earlier.as_ref().map_err(shared_error)?;
                let request_id = decision.request_id.as_ref().map(AsRef::<str>::as_ref);
                let record = request_id
                    .and_then(|r| earlier.get(&(*tenant_id, r.to_string())))
                    .cloned()
                    .ok_or_else(|| Error::Internal("retried record not found".into()))?;
                let receipt = receipt::receipt(*tenant_id, &record);
                Ok(Recorded { record, receipt })
            })
            .collect())
    }
}

/// The records stored under these request ids.
async fn earlier_records(
    client: &Object,
    keys: Vec<(Uuid, &str)>,
) -> Result<HashMap<(Uuid, String), ConsentRecord>> {
    let (tenants, request_ids): (Vec<Uuid>, Vec<&str>) = keys.into_iter().unzip();
    let mut earlier = HashMap::new();
    let statement = client
        .prepare_cached(include_str!("sql/consents_by_request_ids.sql"))
        .await?;
    for row in client.query(&statement, &[&tenants, &request_ids]).await? {
        earlier.insert(
            (row.try_get("tenant_id")?, row.try_get("request_id")?),
            record_from_row(&row)?,
        );
    }
    Ok(earlier)
}

/// A pooled connection in a transaction begun by hand, so that BEGIN and
/// COMMIT share a round trip with the statements next to them. Dropped
/// before it ends (an error, a cancelled task), the connection is closed
/// rather than returned to the pool mid-transaction.
struct OpenTransaction(Option<Object>);

impl OpenTransaction {
    fn client(&self) -> &Object {
        self.0.as_ref().expect("present until ended or dropped")
    }

    /// The transaction is over: the connection may go back to the pool.
    fn ended(mut self) -> Object {
        self.0.take().expect("present until ended or dropped")
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

/// Builds the record a decision becomes under its site's settings: minimal
/// without detailed logging, its full IP encrypted. [`sign`] seals it.
fn seal(
    tenant_id: Uuid,
    decision: ConsentDecision,
    record_time: SystemTime,
    settings: &SiteSettings,
    sealing: &Sealing,
) -> Result<Sealed> {
    let decision = if settings.detailed_logging {
        decision
    } else {
        decision.minimized()
    };
    let record = ConsentRecord {
        id: Uuid::now_v7(),
        status: decision.status(),
        record_time,
        // A lifetime is at most 100 years when set through the API; a row
        // edited by hand must not panic the writer.
        expire_time: record_time
            .checked_add(settings.consent_lifetime)
            .ok_or_else(|| Error::Internal("consent lifetime out of range".into()))?,
        seal: None,
        decision,
    };
    let encrypted = match (record.decision.full_ip, &sealing.ip_keys) {
        (Some(ip), Some(keys)) => {
            Some(keys.encrypt(ip.addr(), &record_context(tenant_id, record.id)))
        }
        _ => None,
    };
    Ok(Sealed {
        record,
        encrypted_ip: encrypted,
        receipt: None,
    })
}

/// Signs a batch: one signature per tenant over the Merkle root of its
/// records' claims, so no tenant's receipt carries another's hashes.
fn sign(batch: &mut [(Uuid, Sealed)], sealing: &Sealing) {
    let mut by_tenant: HashMap<Uuid, Vec<usize>> = HashMap::new();
    for (i, (tenant_id, _)) in batch.iter().enumerate() {
        by_tenant.entry(*tenant_id).or_default().push(i);
    }
    for (tenant_id, members) in by_tenant {
        let records: Vec<&ConsentRecord> = members.iter().map(|&i| &batch[i].1.record).collect();
        let receipts = receipt::sign_batch(&sealing.signing, tenant_id, &records);
        for (i, receipt) in members.into_iter().zip(receipts) {
            let sealed = &mut batch[i].1;
            sealed.record.seal = Some(receipt.to_seal());
            sealed.receipt = Some(receipt);
        }
    }
}

/// A record ready to store, with what is stored of its secrets.
struct Sealed {
    record: ConsentRecord,
    encrypted_ip: Option<EncryptedIp>,
    receipt: Option<Receipt>,
}

/// One error for every call of a failed batch.
fn shared_error(error: &Arc<Error>) -> Error {
    match error.as_ref() {
        Error::NotFound => Error::NotFound,
        Error::Unavailable(_) => Error::Unavailable(Box::new(SharedCause(error.clone()))),
        Error::Internal(_) => Error::Internal(Box::new(SharedCause(error.clone()))),
    }
}

#[derive(Debug)]
struct SharedCause(Arc<Error>);

impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch write failed: {}",
            crate::telemetry::error_chain(self.0.as_ref())
        )
    }
}

impl std::error::Error for SharedCause {}

/// The batch as insert_consents.sql takes it: one vector per column.
#[derive(Default)]
struct Columns {
    tenant_id: Vec<Uuid>,
    record_id: Vec<Uuid>,
    request_id: Vec<Option<String>>,
    site_id: Vec<String>,
    subject_id: Vec<String>,
    user_id: Vec<Option<String>>,
    action: Vec<i16>,
    status: Vec<i16>,
    granted_categories: Vec<String>,
    denied_categories: Vec<String>,
    granted_services: Vec<String>,
    denied_services: Vec<String>,
    banner_revision: Vec<Option<String>>,
    regime: Vec<i16>,
    gpc_detected: Vec<bool>,
    gpc_honoured: Vec<bool>,
    ccpa_opt_out: Vec<bool>,
    tcf_string: Vec<Option<String>>,
    gpp_string: Vec<Option<String>>,
    google_ac_string: Vec<Option<String>>,
    country_code: Vec<Option<String>>,
    language_code: Vec<Option<String>>,
    page_url: Vec<Option<String>>,
    user_agent: Vec<Option<String>>,
    device_type: Vec<Option<String>>,
    os: Vec<Option<String>>,
    browser: Vec<Option<String>>,
    anonymized_ip: Vec<Option<String>>,
    client_time: Vec<Option<SystemTime>>,
    record_time: Vec<SystemTime>,
    expire_time: Vec<SystemTime>,
    notice_version: Vec<Option<String>>,
    notice_sha256: Vec<Option<Vec<u8>>>,
    ip_ciphertext: Vec<Option<Vec<u8>>>,
    ip_key_id: Vec<Option<String>>,
    receipt_key_id: Vec<String>,
    receipt_signature: Vec<Vec<u8>>,
    receipt_proof: Vec<Option<Vec<u8>>>,
}

fn text(value: Option<&impl AsRef<str>>) -> Option<String> {
    value.map(|v| v.as_ref().to_string())
}

impl Columns {
    fn push(&mut self, tenant_id: Uuid, sealed: &Sealed) {
        let (record, encrypted_ip) = (&sealed.record, sealed.encrypted_ip.as_ref());
        let d = &record.decision;
        let join = |names: &[crate::domain::consent::Name]| {
            names
                .iter()
                .map(AsRef::as_ref)
                .collect::<Vec<&str>>()
                .join(",")
        };
        let (granted_services, denied_services) = joined_services(d.choices.services());
        self.tenant_id.push(tenant_id);
        self.record_id.push(record.id);
        self.request_id.push(text(d.request_id.as_ref()));
        self.site_id.push(d.site_id.as_ref().to_string());
        self.subject_id.push(d.subject_id.as_ref().to_string());
        self.user_id.push(text(d.user_id.as_ref()));
        self.action.push(d.action.number() as i16);
        self.status.push(stored_status(record.status));
        self.granted_categories.push(join(d.choices.granted()));
        self.denied_categories.push(join(d.choices.denied()));
        self.granted_services.push(granted_services.join(","));
        self.denied_services.push(denied_services.join(","));
        self.banner_revision.push(d.banner_revision.clone());
        self.regime.push(d.regime.number() as i16);
        self.gpc_detected.push(d.gpc_detected);
        self.gpc_honoured.push(d.gpc_honoured);
        self.ccpa_opt_out.push(d.ccpa_opt_out);
        self.tcf_string.push(d.tcf_string.clone());
        self.gpp_string.push(d.gpp_string.clone());
        self.google_ac_string.push(d.google_ac_string.clone());
        self.country_code.push(text(d.country.as_ref()));
        self.language_code.push(text(d.language.as_ref()));
        self.page_url.push(text(d.page_url.as_ref()));
        self.user_agent.push(text(d.user_agent.as_ref()));
        self.device_type
            .push(d.user_agent.as_ref().map(|ua| ua.device_type.clone()));
        self.os.push(d.user_agent.as_ref().map(|ua| ua.os.clone()));
        self.browser
            .push(d.user_agent.as_ref().map(|ua| ua.browser.clone()));
        self.anonymized_ip
            .push(d.anonymized_ip.map(|ip| ip.to_string()));
        self.client_time.push(d.client_time);
        self.record_time.push(record.record_time);
        self.expire_time.push(record.expire_time);
        self.notice_version.push(d.notice_version.clone());
        self.notice_sha256
            .push(d.notice_sha256.map(|hash| hash.as_bytes().to_vec()));
        self.ip_ciphertext
            .push(encrypted_ip.map(|e| e.ciphertext.clone()));
        self.ip_key_id.push(encrypted_ip.map(|e| e.key_id.clone()));
        let seal = record.seal.as_ref().expect("sealed records are signed");
        self.receipt_key_id.push(seal.key_id.clone());
        self.receipt_signature.push(seal.signature.to_vec());
        self.receipt_proof.push(
            seal.inclusion
                .as_ref()
                .map(|inclusion| inclusion.to_bytes()),
        );
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 38] {
        [
            &self.tenant_id,
            &self.record_id,
            &self.request_id,
            &self.site_id,
            &self.subject_id,
            &self.user_id,
            &self.action,
            &self.status,
            &self.granted_categories,
            &self.denied_categories,
            &self.granted_services,
            &self.denied_services,
            &self.banner_revision,
            &self.regime,
            &self.gpc_detected,
            &self.gpc_honoured,
            &self.ccpa_opt_out,
            &self.tcf_string,
            &self.gpp_string,
            &self.google_ac_string,
            &self.country_code,
            &self.language_code,
            &self.page_url,
            &self.user_agent,
            &self.device_type,
            &self.os,
            &self.browser,
            &self.anonymized_ip,
            &self.client_time,
            &self.record_time,
            &self.expire_time,
            &self.notice_version,
            &self.notice_sha256,
            &self.ip_ciphertext,
            &self.ip_key_id,
            &self.receipt_key_id,
            &self.receipt_signature,
            &self.receipt_proof,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Queue {
        Arc::new(Mutex::new(mpsc::channel(1).1))
    }

    #[tokio::test]
    async fn a_writer_stuck_in_its_first_round_trip_passes_the_turn_on() {
        let queue = queue();
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
        let queue = queue();
        let mut turn = Some(Turn {
            _queue: queue.clone().lock_owned().await,
        });
        assert_eq!(passing_turn_after_limit(&mut turn, async { 7 }).await, 7);
        assert!(turn.is_some());
        assert!(queue.try_lock().is_err(), "the turn is still held");
    }
}
