//! Faults under RecordConsent load (issue 14, items 1 and 2): PostgreSQL
//! killed with SIGKILL and restarted, and `consentd serve` killed with
//! SIGKILL or stopped with SIGTERM. Every acknowledged record must be in
//! PostgreSQL afterwards, and callers that retry with the same request id
//! must end with exactly one row per request.
//!
//! Sizes grow under scripts/soak (CONSENTD_SOAK=1).

use std::time::{Duration, Instant};

use consentd::{domain::auth::Scope, store::Store};
use tonic::Code;

use crate::{
    child::{Consentd, consent_client, free_addr, lazy_channel},
    helpers::{OwnCluster, TestApp, cluster_url, connect, fresh_database},
    load::{Load, Outcome, Tally},
    soak,
};

/// Callers in flight, as the issue asks.
const CALLERS: usize = 64;
/// Each call's deadline (grpc-timeout).
const DEADLINE: Duration = Duration::from_secs(5);
/// How long callers keep retrying their last call once the load stops.
const DRAIN: Duration = Duration::from_secs(30);

/// Every call answered, every acknowledged record stored, one row per
/// request.
fn assert_nothing_lost(outcome: &Outcome, tally: &Tally) {
    assert!(
        outcome.unfinished.is_empty(),
        "calls never answered: {:?}",
        outcome.unfinished
    );
    assert!(
        tally.lost.is_empty(),
        "acknowledged, not stored: {:?}",
        tally.lost
    );
    assert!(tally.repeated.is_empty(), "two rows: {:?}", tally.repeated);
    assert_eq!(
        tally.rows, tally.acknowledged,
        "one row per request, each acknowledged"
    );
}

/// Waits until every caller has made progress again, before `next`.
async fn progress_before(load: &Load, next: impl std::fmt::Display) {
    assert!(
        load.progress(CALLERS, Duration::from_secs(20))
            .await
            .is_some(),
        "no progress before {next}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_under_load_loses_no_acknowledged_record() {
    let crashes = soak::pick(1, 3);
    let run_for = soak::seconds(8, 30);
    // scripts/pg --fast runs the cluster with synchronous_commit = off, as
    // an operator may: consentd must still answer only what a crash keeps.
    let cluster = OwnCluster::start();
    let app = TestApp::spawn_on(&cluster.url).await;
    let client = app.tenant_client("acme").await;

    let started = Instant::now();
    let load = Load::start(&client, "shop", "pg", CALLERS, DEADLINE);
    let mut recoveries = Vec::new();
    for crash in 1..=crashes {
        progress_before(&load, format!("crash {crash}")).await;
        load.phase("PostgreSQL down");
        cluster.crash();
        assert!(
            load.a_failure(Duration::from_secs(10)).await,
            "no call failed while PostgreSQL was down"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.restart();
        let restarted = Instant::now();
        // consentd is not restarted: it must find PostgreSQL again itself.
        load.progress(CALLERS, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("consentd did not recover after restart {crash}"));
        recoveries.push(restarted.elapsed());
        load.phase("load");
        let next = run_for * crash / crashes;
        if let Some(rest) = next.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let outcome = load.finish(DRAIN).await;
    let tally = outcome.tally(&app.sql().await, "shop").await;
    println!(
        "database faults: {crashes} SIGKILLs of PostgreSQL in {:?}: {tally}; \
         answering again {recoveries:?} after each restart",
        started.elapsed()
    );

    assert_nothing_lost(&outcome, &tally);
    for failure in &outcome.failures {
        assert_eq!(failure.code, Some(Code::Unavailable), "{failure:?}");
        assert!(failure.elapsed < DEADLINE, "{failure:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consentd_killed_or_stopped_under_load_loses_no_acknowledged_record() {
    let rounds = soak::pick(1, 3);
    let run_for = soak::seconds(4, 30);
    let database = fresh_database(&cluster_url()).await;
    let store = Store::new(&database, 2).unwrap();
    store.migrate().await.unwrap();
    let key = store.create_key("acme", &Scope::ALL).await.unwrap();
    let addr = free_addr();
    let mut consentd = Consentd::start(&database, addr, &[]).await;
    // One channel for the whole test: it reconnects to each new process.
    let client = consent_client(lazy_channel(addr), key.secret.expose());

    let started = Instant::now();
    let until = |part: u32| async move {
        let at = run_for * part / (2 * rounds);
        if let Some(rest) = at.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    };
    let load = Load::start(&client, "shop", "proc", CALLERS, DEADLINE);
    let mut restarts = Vec::new();
    for round in 1..=rounds {
        until(2 * round - 1).await;
        progress_before(&load, format!("SIGKILL {round}")).await;
        load.phase("SIGKILL");
        consentd.kill();
        let killed = Instant::now();
        consentd = Consentd::spawn(&database, addr, &[]);
        let serving = consentd.wait_serving(Duration::from_secs(30)).await;
        load.progress(CALLERS, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "the restarted consentd answers no call; its log:\n{}",
                    consentd.log()
                )
            });
        restarts.push((serving, killed.elapsed()));
        load.phase("load");
        assert!(
            serving < Duration::from_secs(5),
            "a restarted consentd serves at once, not after {serving:?}"
        );

        until(2 * round).await;
        progress_before(&load, format!("SIGTERM {round}")).await;
        load.phase("SIGTERM");
        let exit = consentd.terminate(Duration::from_secs(40)).await;
        assert!(
            exit.success(),
            "SIGTERM ends consentd cleanly: {exit:?}; its log:\n{}",
            consentd.log()
        );
        consentd = Consentd::start(&database, addr, &[]).await;
        load.progress(CALLERS, Duration::from_secs(20)).await;
        load.phase("load");
    }
    let outcome = load.finish(DRAIN).await;
    let tally = outcome.tally(&connect(&database).await, "shop").await;
    println!(
        "process faults: {rounds} SIGKILLs and {rounds} SIGTERMs of consentd in {:?}: {tally}; \
         (serving, answering) after each SIGKILL {restarts:?}",
        started.elapsed()
    );

    assert_nothing_lost(&outcome, &tally);
    consentd.terminate(Duration::from_secs(40)).await;
}
