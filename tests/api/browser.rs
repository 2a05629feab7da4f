//! End to end in a real browser: CookieConsent 3 (npm
//! `vanilla-cookieconsent`) on a test page with the README's
//! `logConsent()`, in Debian's Chromium (headless, driven by playwright-core
//! through `tests/browser/drive.cjs`), posting to the public listener.
//!
//! Chromium and the npm packages are installed by `scripts/browser-deps`
//! when missing; when that fails, so does this test: it never skips.

use std::{path::PathBuf, process::Command};

use axum::{Router, http::header, routing::get};
use consentd::api::proto::{ConsentAction, ConsentStatus, DeclaredCategories};
use consentd::domain::auth::Scope;
use serde_json::Value;

use crate::{
    declared::{category, declare},
    public::{DEFAULT, site_key, spawn},
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command of the project to its end; its stdout, or the test
/// fails with its stderr.
fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Serves the test page, with `consentd` as its endpoint, and the banner's
/// script and style from npm; on `listener`, which the page's origin is.
fn serve_page(listener: std::net::TcpListener, consentd: String) {
    let page = include_str!("../browser/page.html").replace("{{CONSENTD}}", &consentd);
    let dist = root().join("target/tools/node_modules/vanilla-cookieconsent/dist");
    let file = |name: &str, kind: &'static str| {
        let text = std::fs::read_to_string(dist.join(name)).expect("vanilla-cookieconsent");
        get(move || async move { ([(header::CONTENT_TYPE, kind)], text) })
    };
    let app = Router::new()
        .route(
            "/",
            get(move || async move { ([(header::CONTENT_TYPE, "text/html")], page) }),
        )
        .route(
            "/cookieconsent.umd.js",
            file("cookieconsent.umd.js", "text/javascript"),
        )
        .route("/cookieconsent.css", file("cookieconsent.css", "text/css"));
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
}

#[tokio::test]
async fn cookieconsent_in_chromium_logs_each_change_and_a_foreign_origin_stores_nothing() {
    let chromium = run(&mut Command::new(root().join("scripts/browser-deps")));
    let chromium = chromium
        .lines()
        .last()
        .expect("chromium's path")
        .to_string();

    let app = spawn(DEFAULT).await;
    let pages = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = pages.local_addr().unwrap().port();
    // The same page from two origins: the key allows only the first.
    let allowed = format!("http://127.0.0.1:{port}");
    let refused = format!("http://localhost:{port}");
    let key = site_key(&app.app, "acme", "shop", &allowed).await;
    serve_page(
        pages,
        format!("http://{}/v1/consents?key={key}", app.public),
    );
    // The banner's own categories and services, declared: what it sends
    // passes the checks.
    let admin = app.app.key("acme", &Scope::ALL).await;
    let categories = vec![
        category("necessary", true, &[]),
        category("analytics", false, &["ga", "matomo"]),
        category("marketing", false, &[]),
    ];
    let categories = DeclaredCategories {
        categories,
        ..Default::default()
    };
    declare(&app.app, &admin, "shop", categories).await;

    let driver = root().join("tests/browser/drive.cjs");
    let (allowed_url, refused_url) = (format!("{allowed}/"), format!("{refused}/"));
    let output = tokio::task::spawn_blocking(move || {
        run(Command::new("node")
            .arg(driver)
            .args([&chromium, &allowed_url, &refused_url]))
    })
    .await
    .unwrap();
    let visits: Value = serde_json::from_str(output.trim()).expect("drive.cjs prints JSON");

    // Two changes on the allowed origin, each answered with its record.
    let logged = visits["allowed"]["logged"].as_array().unwrap();
    assert_eq!(logged.len(), 2, "{visits}");
    for log in logged {
        assert!(log["answer"]["id"].is_string(), "{visits}");
        assert!(log["answer"]["receipt"].is_string(), "{visits}");
    }
    let consent_id = visits["allowed"]["consentId"].as_str().unwrap();
    let records = app.listed("shop").await;
    assert_eq!(records.len(), 2, "{records:?}");
    let (first, second) = (&records[0], &records[1]);
    assert_eq!(first.id, logged[0]["answer"]["id"].as_str().unwrap());
    assert_eq!(second.id, logged[1]["answer"]["id"].as_str().unwrap());
    for record in &records {
        assert_eq!(record.subject_id, consent_id);
        assert_eq!(record.banner_revision, "3", "the banner's revision");
        assert_eq!(record.anonymized_ip, "127.0.0.0/24");
        assert!(record.browser.contains("Chrom"), "{}", record.browser);
        assert_eq!(record.page_url, format!("{allowed}/"));
    }
    assert_eq!(first.action, ConsentAction::AcceptAll as i32);
    assert_eq!(first.status, ConsentStatus::Accepted as i32);
    assert_eq!(
        first.granted_categories,
        ["necessary", "analytics", "marketing"]
    );
    assert_eq!(second.action, ConsentAction::Custom as i32);
    assert_eq!(second.granted_categories, ["necessary", "marketing"]);
    assert_eq!(second.denied_categories, ["analytics"]);
    let denied: Vec<(&str, &str)> = second
        .services
        .iter()
        .filter(|s| !s.granted)
        .map(|s| (s.category.as_str(), s.service.as_str()))
        .collect();
    assert_eq!(denied, [("analytics", "ga"), ("analytics", "matomo")]);

    // From the other origin: the browser blocks the answer, nothing stored.
    let logged = visits["refused"]["logged"].as_array().unwrap();
    assert_eq!(logged.len(), 1, "{visits}");
    assert!(
        logged[0]["error"].as_str().unwrap().contains("TypeError"),
        "{visits}"
    );
    let cors = visits["refused"]["corsErrors"].as_array().unwrap();
    assert!(
        cors.iter()
            .any(|e| e.as_str().unwrap().contains(refused.as_str())),
        "the browser reports the CORS failure: {visits}"
    );
    assert_eq!(app.listed("shop").await.len(), 2);
    app.app.stop().await;
}

#[test]
fn the_test_pages_log_consent_is_the_readmes() {
    let page = include_str!("../browser/page.html");
    let (_, rest) = page.split_once("// logConsent: begin\n").unwrap();
    let (snippet, _) = rest.split_once("// logConsent: end").unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(snippet),
        "README.md's logConsent() differs from tests/browser/page.html's:\n{snippet}"
    );
}

#[test]
fn the_node_tools_refuse_a_node_older_than_20_saying_what_to_install() {
    // A `node` of Debian bookworm's version, first on PATH.
    let bin = std::env::temp_dir().join(format!("consentd-node18-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&bin).unwrap();
    let node = bin.join("node");
    std::fs::write(&node, "#!/bin/sh\necho 18.19.0\n").unwrap();
    let mut permissions = std::fs::metadata(&node).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&node, permissions).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let output = Command::new("bash")
        .args(["-c", ". scripts/node-tools && node_tools_install"])
        .current_dir(root())
        .env("PATH", path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&bin).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("node 18.19.0 is too old") && stderr.contains("Node.js 20 or newer"),
        "{stderr}"
    );
}
