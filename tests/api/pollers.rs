//! Pollers under concurrent writers (issue 14, item 5): a consumer follows
//! `next_page_token` to the end, then resumes from `resume_page_token` every
//! 50 ms while 16 writers insert, some in long transactions; once writing
//! has stopped it catches up once more, and must have received every
//! committed record exactly once.
//!
//! Long transactions come two ways: a writer of "another replica" (a plain
//! connection that labels itself and takes its record time as consentd's
//! writers do, then holds its transaction open), and consentd's own writer
//! kept waiting on a lock held by the test while later rows commit.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use consentd::{
    api::proto::{
        ListConsentsRequest, ListPreferenceHistoryRequest, PreferenceChange, PreferenceChangeType,
        PreferenceOption, UpdatePreferencesRequest,
    },
    domain::auth::Scope,
};
use rand::RngExt;
use tokio::task::JoinHandle;

use crate::{
    helpers::{
        ConsentClient, PreferenceClient, TestApp, answer, decision, first_column, recorded,
        shop_list,
    },
    soak,
};

/// Writers inserting at once, as the issue asks.
const WRITERS: usize = 16;
/// How often the poller resumes.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// Small, so that a catch-up takes several pages.
const PAGE_SIZE: i32 = 50;

/// What the poller received, against what was committed.
struct Received {
    expected: usize,
    seen: usize,
    skipped: usize,
    duplicated: usize,
    /// Seen, but not committed (never expected).
    unknown: usize,
    polls: usize,
    long_transactions: usize,
}

impl Received {
    fn of(committed: &[String], seen: &[String], polls: usize, long_transactions: usize) -> Self {
        let committed: HashSet<&String> = committed.iter().collect();
        let mut times: HashMap<&String, usize> = HashMap::new();
        for id in seen {
            *times.entry(id).or_default() += 1;
        }
        Self {
            expected: committed.len(),
            seen: seen.len(),
            skipped: committed
                .iter()
                .filter(|id| !times.contains_key(*id))
                .count(),
            duplicated: times.values().map(|n| n - 1).sum(),
            unknown: times.keys().filter(|id| !committed.contains(*id)).count(),
            polls,
            long_transactions,
        }
    }

    fn assert_exactly_once(&self) {
        assert_eq!(
            (self.skipped, self.duplicated, self.unknown),
            (0, 0, 0),
            "{self}"
        );
        assert_eq!(self.seen, self.expected, "{self}");
    }
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {} seen {} skipped {} duplicated {} unknown {} in {} polls, {} long transactions",
            self.expected,
            self.seen,
            self.skipped,
            self.duplicated,
            self.unknown,
            self.polls,
            self.long_transactions
        )
    }
}

/// How long a long transaction stays open.
fn hold() -> Duration {
    Duration::from_millis(rand::rng().random_range(200..1200))
}

/// A list a poller follows, page by page.
trait Polled: Clone + Send + 'static {
    /// The page at `token`: its ids, the next page token and the resume
    /// token.
    fn page(&mut self, token: String)
    -> impl Future<Output = (Vec<String>, String, String)> + Send;
}

impl Polled for ConsentClient {
    async fn page(&mut self, page_token: String) -> (Vec<String>, String, String) {
        let request = ListConsentsRequest {
            page_token,
            ..shop_list(PAGE_SIZE)
        };
        let page = answer(self.list_consents(request)).await;
        let ids = page.records.into_iter().map(|r| r.id).collect();
        (ids, page.next_page_token, page.resume_page_token)
    }
}

/// Follows `next_page_token` from `token` to the end; returns the resume
/// token of the last page.
async fn catch_up(client: &mut impl Polled, mut token: String, seen: &mut Vec<String>) -> String {
    loop {
        let (ids, next, resume) = client.page(token).await;
        seen.extend(ids);
        if next.is_empty() {
            return resume;
        }
        token = next;
    }
}

/// Resumes every POLL_EVERY while `writers` write (5 s, 20 s under
/// scripts/soak); then stops
/// them and, writing over, catches up once more to the end. What the poller
/// saw must be exactly the ids `committed` (a query, run once writing is
/// over) returns, each once, with long transactions among the writes.
async fn poll_while_writing(
    name: &str,
    client: &impl Polled,
    stop: &Arc<AtomicBool>,
    writers: Vec<JoinHandle<usize>>,
    committed: impl Future<Output = Vec<String>>,
) {
    let poller = tokio::spawn({
        let (mut client, stop) = (client.clone(), stop.clone());
        async move {
            let (mut seen, mut token, mut polls) = (Vec::new(), String::new(), 0);
            while !stop.load(Ordering::SeqCst) {
                token = catch_up(&mut client, token, &mut seen).await;
                polls += 1;
                tokio::time::sleep(POLL_EVERY).await;
            }
            (seen, token, polls)
        }
    });

    let started = Instant::now();
    tokio::time::sleep(soak::seconds(5, 20)).await;
    stop.store(true, Ordering::SeqCst);
    let mut long_transactions = 0;
    for writer in writers {
        long_transactions += writer.await.unwrap();
    }
    let (mut seen, token, polls) = poller.await.unwrap();
    // Writing has stopped: once more to the end.
    catch_up(&mut client.clone(), token, &mut seen).await;

    let received = Received::of(&committed.await, &seen, polls, long_transactions);
    println!("{name} over {:?}: {received}", started.elapsed());
    assert!(long_transactions > 0);
    received.assert_exactly_once();
}

/// A copy of the row `template` written the way consentd's writers write:
/// labelled, with the record time taken after the label.
const SLOW_CONSENT: &str = "\
WITH began AS MATERIALIZED (SELECT consentd_begin_write() AS now)
INSERT INTO consent_records
SELECT r.* FROM consent_records c, began,
     jsonb_populate_record(NULL::consent_records, to_jsonb(c) || jsonb_build_object(
         'record_id', gen_random_uuid(), 'subject_id', $2::text,
         'request_id', $3::text, 'record_time', began.now)) AS r
WHERE c.record_id = $1::text::uuid
RETURNING record_id::text";

/// Writes a copy of the record `template` with SLOW_CONSENT in
/// `transaction`, for `subject` with `request_id`; the copy's id.
async fn slow_copy(
    transaction: &tokio_postgres::Transaction<'_>,
    template: &str,
    subject: &str,
    request_id: Option<&str>,
) -> String {
    transaction
        .query_one(SLOW_CONSENT, &[&template, &subject, &request_id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_poller_receives_every_committed_record_exactly_once() {
    let app = Arc::new(TestApp::spawn().await);
    let client = app.tenant_client("acme").await;
    let template = recorded(&mut client.clone(), decision("shop", "template")).await;
    let stop = Arc::new(AtomicBool::new(false));

    let mut writers: Vec<JoinHandle<usize>> = (0..WRITERS)
        .map(|w| {
            let (mut client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    recorded(&mut client, decision("shop", &format!("w{w}-{n}"))).await;
                    n += 1;
                }
                0
            })
        })
        .collect();
    // Another replica's writer, slow between its record time and COMMIT.
    writers.push(tokio::spawn({
        let (app, stop, template) = (app.clone(), stop.clone(), template.id.clone());
        async move {
            let mut sql = app.sql().await;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let transaction = sql.transaction().await.unwrap();
                slow_copy(&transaction, &template, &format!("replica-{n}"), None).await;
                tokio::time::sleep(hold()).await;
                transaction.commit().await.unwrap();
                n += 1;
            }
            n
        }
    }));
    // consentd's own writer waiting: the test holds an uncommitted row with
    // the request id of a RecordConsent, whose batch (with whatever else it
    // took) waits on the unique index until the test commits or rolls back.
    writers.push(tokio::spawn({
        let (app, stop, template) = (app.clone(), stop.clone(), template.id.clone());
        let client = client.clone();
        async move {
            let mut sql = app.sql().await;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let transaction = sql.transaction().await.unwrap();
                let request_id = format!("held-{n}");
                let held = slow_copy(&transaction, &template, &request_id, Some(&request_id)).await;
                let call = tokio::spawn({
                    let mut client = client.clone();
                    let mut request = decision("shop", &request_id);
                    request.request_id = request_id.clone();
                    async move { recorded(&mut client, request).await }
                });
                tokio::time::sleep(hold()).await;
                let committed = n % 2 == 0;
                if committed {
                    transaction.commit().await.unwrap();
                } else {
                    transaction.rollback().await.unwrap();
                }
                let answered = call.await.unwrap();
                // Committed first, the test's row is the request's record;
                // rolled back, consentd's waiting batch wrote its own.
                assert_eq!(answered.id == held, committed);
                n += 1;
            }
            n
        }
    }));

    let sql = app.sql().await;
    let committed = first_column(
        &sql,
        "SELECT record_id::text FROM consent_records WHERE site_id = 'shop'",
        &[],
    );
    poll_while_writing("consent poller", &client, &stop, writers, committed).await;
}

const WIDGET: &str = "centre";
const USER: &str = "polled-user";

fn change(kind: PreferenceChangeType, topic: &str, option: &str) -> PreferenceChange {
    PreferenceChange {
        r#type: kind.into(),
        topic_id: topic.into(),
        topic_title_en: format!("{topic} title"),
        topic_title_translated: format!("{topic} Titel"),
        options: vec![PreferenceOption {
            option_id: option.into(),
            title_en: format!("{option} (en)"),
            title_translated: format!("{option} (de)"),
        }],
    }
}

async fn update(client: &mut PreferenceClient, changes: Vec<PreferenceChange>) -> usize {
    answer(client.update_preferences(UpdatePreferencesRequest {
        widget_id: WIDGET.into(),
        user_id: USER.into(),
        language_code: "de".into(),
        changes,
        ..Default::default()
    }))
    .await
    .events
    .len()
}

impl Polled for PreferenceClient {
    async fn page(&mut self, page_token: String) -> (Vec<String>, String, String) {
        let page = answer(self.list_preference_history(ListPreferenceHistoryRequest {
            widget_id: WIDGET.into(),
            user_id: USER.into(),
            page_size: PAGE_SIZE,
            page_token,
            ..Default::default()
        }))
        .await;
        let ids = page.events.into_iter().map(|e| e.id).collect();
        (ids, page.next_page_token, page.resume_page_token)
    }
}

/// A copy of the event `template`, written as consentd's writers write:
/// labelled, with the event time of a later statement.
const SLOW_EVENT: &str = "\
INSERT INTO preference_events
SELECT r.* FROM preference_events e,
     jsonb_populate_record(NULL::preference_events, to_jsonb(e) || jsonb_build_object(
         'event_id', gen_random_uuid(), 'event_time', statement_timestamp())) AS r
WHERE e.event_id = $1::text::uuid";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preference_history_poller_receives_every_committed_event_exactly_once() {
    use PreferenceChangeType::{Added as Add, Removed as Remove};
    let app = Arc::new(TestApp::spawn().await);
    let key = app.key("acme", &Scope::ALL).await;
    let client = app.preference_client(Some(&key)).await;
    let template = {
        let mut client = client.clone();
        update(&mut client, vec![change(Add, "template", "o")]).await;
        let mut first = Vec::new();
        catch_up(&mut client, String::new(), &mut first).await;
        first.remove(0)
    };
    let stop = Arc::new(AtomicBool::new(false));

    // Each writer adds and removes an option of a topic of its own: every
    // update is a change, with its event.
    let mut writers: Vec<JoinHandle<usize>> = (0..WRITERS)
        .map(|w| {
            let (mut client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let topic = format!("topic-{w}");
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let kind = if n % 2 == 0 { Add } else { Remove };
                    assert_eq!(
                        update(&mut client, vec![change(kind, &topic, "o")]).await,
                        1
                    );
                    n += 1;
                }
                0
            })
        })
        .collect();
    writers.push(tokio::spawn({
        let (app, stop, template) = (app.clone(), stop.clone(), template.clone());
        async move {
            let mut sql = app.sql().await;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let transaction = sql.transaction().await.unwrap();
                transaction
                    .batch_execute(include_str!("../../src/store/sql/mark_writer.sql"))
                    .await
                    .unwrap();
                transaction.execute(SLOW_EVENT, &[&template]).await.unwrap();
                tokio::time::sleep(hold()).await;
                transaction.commit().await.unwrap();
                n += 1;
            }
            n
        }
    }));
    // consentd's own update waiting: its first change writes an event, its
    // second removes a selection the test holds locked.
    writers.push(tokio::spawn({
        let (app, stop) = (app.clone(), stop.clone());
        let mut client = client.clone();
        async move {
            let mut sql = app.sql().await;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                update(&mut client, vec![change(Add, "locked", "o")]).await;
                let transaction = sql.transaction().await.unwrap();
                let locked = transaction
                    .execute(
                        "SELECT 1 FROM preference_selections WHERE topic_id = 'locked' FOR UPDATE",
                        &[],
                    )
                    .await
                    .unwrap();
                assert_eq!(locked, 1);
                let call = tokio::spawn({
                    let mut client = client.clone();
                    let changes = vec![
                        change(Add, &format!("early-{n}"), "o"),
                        change(Remove, "locked", "o"),
                    ];
                    async move { update(&mut client, changes).await }
                });
                tokio::time::sleep(hold()).await;
                transaction.commit().await.unwrap();
                assert_eq!(call.await.unwrap(), 2);
                n += 1;
            }
            n
        }
    }));

    let sql = app.sql().await;
    let committed = first_column(
        &sql,
        "SELECT event_id::text FROM preference_events WHERE widget_id = $1 AND user_id = $2",
        &[&WIDGET, &USER],
    );
    poll_while_writing(
        "preference history poller",
        &client,
        &stop,
        writers,
        committed,
    )
    .await;
}
