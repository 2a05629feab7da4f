//! `consentd checkpoint`, run as an outside witness would on a schedule:
//! it keeps the latest signed checkpoint and refuses one that does not
//! extend the checkpoint it kept, leaving that note as it was.

use base64::{Engine, engine::general_purpose::STANDARD};
use consentd::{
    api::proto::GetCheckpointRequest,
    domain::{auth::Scope, checkpoint::Checkpoint},
};

use crate::{
    export_cli::consentd,
    helpers::{TestApp, served_key},
    tlog::record_logged,
    verify::{Files, other_key},
};

/// Runs `consentd checkpoint ARGS`: whether it exited 0, and what it said.
async fn witness(app: &TestApp, key: &str, args: &[&str]) -> (bool, String) {
    let output = consentd(app, key, &[&["checkpoint"], args].concat()).await;
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (code == Some(0), said)
}

#[tokio::test]
async fn a_witness_keeps_checkpoints_that_extend_its_own_and_refuses_a_log_changed_behind_consentd()
{
    let app = TestApp::spawn().await;
    let mut client = app.tenant_client("acme").await;
    let key = app.key("acme", &[Scope::ConsentRead]).await;
    let (_, tenant_id) = record_logged(&app, &client, 5).await;
    let files = Files::new();
    let keys = files.put(
        "key.pub",
        STANDARD.encode(served_key(&mut client, "sig-1").await),
    );
    let kept = files.put("witness.txt", "");
    let read_kept = || std::fs::read_to_string(&kept).unwrap();

    let (ok, said) = witness(&app, &key, &["--out", &kept, "--public-key", &keys]).await;
    assert!(ok, "{said}");
    let served = client
        .get_checkpoint(GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap()
        .into_inner()
        .checkpoint
        .unwrap();
    assert_eq!(read_kept(), served.note);
    assert!(said.contains("checkpoint of 5 leaves"), "{said}");

    record_logged(&app, &client, 8).await;
    let follow = ["--since", &kept, "--out", &kept, "--public-key", &keys];
    let (ok, said) = witness(&app, &key, &follow).await;
    assert!(ok, "{said}");
    assert!(said.contains("the tree of 5 leaves"), "{said}");
    let thirteen = read_kept();
    assert_eq!(Checkpoint::read_unverified(&thirteen).unwrap().size, 13);
    // Nothing new: the same checkpoint again holds.
    let (ok, said) = witness(&app, &key, &follow).await;
    assert!(ok, "{said}");

    // Keys the log does not sign with: nothing verifies, nothing is written.
    let wrong = files.put("other.pub", other_key());
    let args = ["--since", &kept, "--out", &kept, "--public-key", &wrong];
    let (ok, said) = witness(&app, &key, &args).await;
    assert!(
        !ok && said.contains("the served checkpoint: no signature"),
        "{said}"
    );
    assert_eq!(read_kept(), thirteen);

    // Another tenant's log is not the one kept.
    let other = app.tenant_client("globex").await;
    let other_key = app.key("globex", &[Scope::ConsentRead]).await;
    record_logged(&app, &other, 13).await;
    let elsewhere = files.put("elsewhere.txt", "");
    let args = ["--since", &kept, "--out", &elsewhere, "--public-key", &keys];
    let (ok, said) = witness(&app, &other_key, &args).await;
    assert!(!ok && said.contains("is not the kept one"), "{said}");

    // A leaf changed in PostgreSQL behind consentd's back: the next
    // checkpoint's consistency proof no longer starts with the kept tree.
    app.sql()
        .await
        .execute(
            "UPDATE log_leaves SET leaf_hash = sha256('forged') WHERE tenant_id = $1 AND leaf_index = 2",
            &[&tenant_id],
        )
        .await
        .unwrap();
    record_logged(&app, &client, 3).await;
    let (ok, said) = witness(&app, &key, &follow).await;
    assert!(!ok, "{said}");
    assert!(
        said.contains("the log does not extend the kept checkpoint"),
        "{said}"
    );
    assert_eq!(read_kept(), thirteen, "the kept note stays as it was");
    // An older, smaller checkpoint the server still serves is refused too.
    let args = [
        "--size",
        "5",
        "--since",
        &kept,
        "--out",
        &elsewhere,
        "--public-key",
        &keys,
    ];
    let (ok, said) = witness(&app, &key, &args).await;
    assert!(!ok && said.contains("fewer than the 13"), "{said}");
}
