//! RecordConsent load for the fault tests: callers that each send calls
//! with a request id of their own and retry a failed call with the same id
//! until it is answered, as AIP-155 clients do. What every caller was told
//! is kept, to compare with what PostgreSQL holds afterwards.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;
use tonic::{Code, Request};

use crate::helpers::{ConsentClient, decision};

/// A failed call, as its caller saw it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// None: no answer at all within the deadline and a margin.
    pub code: Option<Code>,
    pub elapsed: Duration,
    pub message: String,
    /// What the test was doing then (see [`Load::phase`]).
    pub phase: &'static str,
}

#[derive(Default)]
struct CallerLog {
    acknowledged: Vec<(String, String)>,
    failures: Vec<Failure>,
    unfinished: Option<String>,
}

/// Callers running until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    give_up_at: Arc<OnceLock<Instant>>,
    acknowledged: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    phase: Arc<Mutex<&'static str>>,
    callers: Vec<JoinHandle<CallerLog>>,
}

/// What the callers were told.
pub struct Outcome {
    /// Request id -> record id of every acknowledged call.
    pub acknowledged: HashMap<String, String>,
    pub failures: Vec<Failure>,
    /// Request ids still failing when the callers gave up.
    pub unfinished: Vec<String>,
}

impl Load {
    /// `callers` callers recording on `site`, each call with `deadline`
    /// (sent as grpc-timeout); request ids start with `prefix`.
    pub fn start(
        client: &ConsentClient,
        site: &str,
        prefix: &str,
        callers: usize,
        deadline: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let give_up_at = Arc::new(OnceLock::new());
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let phase = Arc::new(Mutex::new("load"));
        let callers = (0..callers)
            .map(|caller| {
                let mut client = client.clone();
                let (stop, give_up_at) = (stop.clone(), give_up_at.clone());
                let (acknowledged, failed) = (acknowledged.clone(), failed.clone());
                let phase = phase.clone();
                let (site, prefix) = (site.to_string(), prefix.to_string());
                tokio::spawn(async move {
                    let mut log = CallerLog::default();
                    let mut n = 0;
                    'calls: while !stop.load(Ordering::SeqCst) {
                        let request_id = format!("{prefix}-{caller}-{n}");
                        n += 1;
                        let mut body = decision(&site, &request_id);
                        body.request_id = request_id.clone();
                        loop {
                            let mut request = Request::new(body.clone());
                            request.set_timeout(deadline);
                            let sent = Instant::now();
                            let answer = tokio::time::timeout(
                                deadline + Duration::from_secs(2),
                                client.record_consent(request),
                            )
                            .await;
                            let elapsed = sent.elapsed();
                            let phase = *phase.lock().unwrap();
                            let failure = match answer {
                                Ok(Ok(response)) => {
                                    let record = response.into_inner().record.unwrap();
                                    log.acknowledged.push((request_id, record.id));
                                    acknowledged.fetch_add(1, Ordering::SeqCst);
                                    break;
                                }
                                Ok(Err(status)) => Failure {
                                    code: Some(status.code()),
                                    elapsed,
                                    message: status.message().to_string(),
                                    phase,
                                },
                                Err(_) => Failure {
                                    code: None,
                                    elapsed,
                                    message: "no answer".into(),
                                    phase,
                                },
                            };
                            log.failures.push(failure);
                            failed.fetch_add(1, Ordering::SeqCst);
                            if give_up_at.get().is_some_and(|at| Instant::now() > *at) {
                                log.unfinished = Some(request_id);
                                break 'calls;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    log
                })
            })
            .collect();
        Self {
            stop,
            give_up_at,
            acknowledged,
            failed,
            phase,
            callers,
        }
    }

    /// Names what happens from now on, for the failures seen meanwhile.
    pub fn phase(&self, name: &'static str) {
        *self.phase.lock().unwrap() = name;
    }

    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    /// Waits until `more` further calls are acknowledged; returns how long
    /// that took, or None after `within`.
    pub async fn progress(&self, more: usize, within: Duration) -> Option<Duration> {
        let (start, from) = (Instant::now(), self.acknowledged());
        while start.elapsed() < within {
            if self.acknowledged() >= from + more {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Waits until some call fails (the fault is seen), at most `within`.
    pub async fn a_failure(&self, within: Duration) -> bool {
        let (start, from) = (Instant::now(), self.failed());
        while start.elapsed() < within {
            if self.failed() > from {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Stops sending new calls; each caller retries its last call for at
    /// most `drain` more.
    pub async fn finish(self, drain: Duration) -> Outcome {
        let _ = self.give_up_at.set(Instant::now() + drain);
        self.stop.store(true, Ordering::SeqCst);
        let mut outcome = Outcome {
            acknowledged: HashMap::new(),
            failures: Vec::new(),
            unfinished: Vec::new(),
        };
        for caller in self.callers {
            let log = caller.await.unwrap();
            outcome.acknowledged.extend(log.acknowledged);
            outcome.failures.extend(log.failures);
            outcome.unfinished.extend(log.unfinished);
        }
        outcome
    }
}

/// What a site's rows say of the calls made.
#[derive(Debug)]
pub struct Tally {
    pub acknowledged: usize,
    /// Acknowledged, but no row has the record id the caller was given.
    pub lost: Vec<String>,
    /// Request ids with more than one row.
    pub repeated: Vec<String>,
    pub rows: usize,
    pub failures: usize,
    /// Failures by what happened, status and message.
    pub statuses: BTreeMap<String, usize>,
    /// The slowest failure.
    pub slowest_failure: Duration,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acknowledged {} lost {} rows {} repeated request ids {} failed calls {} {:?} slowest failure {:?}",
            self.acknowledged,
            self.lost.len(),
            self.rows,
            self.repeated.len(),
            self.failures,
            self.statuses,
            self.slowest_failure
        )
    }
}

impl Outcome {
    /// Compares with the rows of `site` (request id, record id).
    pub async fn tally(&self, sql: &tokio_postgres::Client, site: &str) -> Tally {
        let rows = sql
            .query(
                "SELECT request_id, record_id::text FROM consent_records WHERE site_id = $1",
                &[&site],
            )
            .await
            .unwrap();
        let mut stored: HashMap<String, Vec<String>> = HashMap::new();
        for row in &rows {
            let request_id: Option<String> = row.get(0);
            stored
                .entry(request_id.unwrap_or_default())
                .or_default()
                .push(row.get(1));
        }
        let lost = self
            .acknowledged
            .iter()
            .filter(|(request, record)| {
                stored
                    .get(*request)
                    .is_none_or(|records| !records.contains(record))
            })
            .map(|(request, _)| request.clone())
            .collect();
        let repeated = stored
            .iter()
            .filter(|(_, records)| records.len() > 1)
            .map(|(request, _)| request.clone())
            .collect();
        let mut statuses = BTreeMap::new();
        for failure in &self.failures {
            let name = match failure.code {
                Some(code) => format!("{}: {code:?}: {}", failure.phase, failure.message),
                None => format!("{}: {}", failure.phase, failure.message),
            };
            *statuses.entry(name).or_insert(0) += 1;
        }
        Tally {
            acknowledged: self.acknowledged.len(),
            lost,
            repeated,
            rows: rows.len(),
            failures: self.failures.len(),
            statuses,
            slowest_failure: self
                .failures
                .iter()
                .map(|f| f.elapsed)
                .max()
                .unwrap_or_default(),
        }
    }
}
