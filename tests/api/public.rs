//! The public listener over real HTTP: what a CookieConsent `logConsent()`
//! sends, with fetch and with sendBeacon, and every way it is refused.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use consentd::{
    api::proto::{ConsentAction, ConsentRecord, ListConsentsRequest},
    domain::{
        auth::{Origin, Scope},
        ids::SiteId,
    },
    public::{PublicSettings, limit::Rate},
};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode, body::Bytes, header::HeaderValue};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{TestApp, cluster_url, decision, settings};

pub(crate) const SHOP: &str = "https://shop.example";
pub(crate) const CONSENT_ID: &str = "0b4c7a5e-54d4-4c4a-9d6b-0c1f3b1f6e2a";
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

pub(crate) struct PublicApp {
    pub app: TestApp,
    pub public: SocketAddr,
    /// A publishable key of tenant "acme" for site "shop" from SHOP.
    pub key: String,
}

pub(crate) struct Limits {
    pub trusted_hops: usize,
    pub network_burst: u32,
}

pub(crate) const DEFAULT: Limits = Limits {
    trusted_hops: 0,
    network_burst: 1000,
};

pub(crate) async fn spawn(limits: Limits) -> PublicApp {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let public = listener.local_addr().unwrap();
    let mut settings = settings();
    settings.public = Some(PublicSettings {
        listener: Arc::new(listener),
        trusted_hops: limits.trusted_hops,
        key_rate: Rate {
            burst: 1000,
            period: Duration::from_secs(1),
        },
        network_rate: Rate {
            burst: limits.network_burst,
            period: Duration::from_secs(3600),
        },
    });
    let app = TestApp::spawn_with(&cluster_url(), settings).await;
    let key = site_key(&app, "acme", "shop", SHOP).await;
    PublicApp { app, public, key }
}

pub(crate) async fn site_key(app: &TestApp, tenant: &str, site: &str, origin: &str) -> String {
    app.store
        .create_site_key(
            tenant,
            &SiteId::parse(site.into()).unwrap(),
            &[Origin::parse(origin).unwrap()],
        )
        .await
        .unwrap()
        .secret
        .expose()
        .to_string()
}

/// What CookieConsent's `getCookie()` and `getUserPreferences()` give after
/// "Accept all" then rejecting analytics.
pub(crate) fn payload(last: &str) -> Value {
    json!({
        "consentId": CONSENT_ID,
        "acceptType": "custom",
        "acceptedCategories": ["necessary", "marketing"],
        "rejectedCategories": ["analytics"],
        "acceptedServices": {"necessary": [], "marketing": ["ads"]},
        "rejectedServices": {"analytics": ["ga"]},
        "revision": 3,
        "consentTimestamp": "2026-01-01T10:00:00.000Z",
        "lastConsentTimestamp": last,
        "language": "en",
        "pageUrl": "https://shop.example/cart",
    })
}

pub(crate) const LAST: &str = "2026-01-02T10:00:00.000Z";

pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn fields(&self) -> Vec<String> {
        self.body["error"]["fieldViolations"]
            .as_array()
            .map(|violations| {
                violations
                    .iter()
                    .map(|v| v["field"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// One HTTP/1.1 request to the public listener.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, HeaderValue::from_str(value).unwrap());
    }
    let response = client
        .request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer {
        status,
        headers,
        body,
    }
}

impl PublicApp {
    /// Posts the decision made at `LAST`, with `extra` headers.
    pub async fn post_last(&self, extra: &[(&str, &str)]) -> Answer {
        self.fetch(json_bytes(&payload(LAST)), extra).await
    }

    /// What `fetch` with a JSON body sends, the key in the header.
    pub async fn fetch(&self, body: impl Into<Bytes>, extra: &[(&str, &str)]) -> Answer {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("origin", SHOP),
            ("x-consentd-key", self.key.as_str()),
        ];
        headers.retain(|(name, _)| extra.iter().all(|(other, _)| other != name));
        headers.extend_from_slice(extra);
        send(self.public, Method::POST, "/v1/consents", &headers, body).await
    }

    /// Asserts that no record was stored, and none lists on `sites`.
    pub async fn stored_nothing(&self, sites: &[&str]) {
        for site in sites {
            assert!(self.listed(site).await.is_empty(), "{site}");
        }
        assert_eq!(self.app.stored_records().await, 0);
    }

    /// The records of `site` as ListConsents returns them to a secret key.
    pub async fn listed(&self, site: &str) -> Vec<ConsentRecord> {
        self.app
            .tenant_client("acme")
            .await
            .list_consents(ListConsentsRequest {
                site_id: site.into(),
                page_size: 100,
                page_token: String::new(),
                filter: None,
                view: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .records
    }
}

pub(crate) fn json_bytes(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[tokio::test]
async fn a_beacon_is_recorded_as_a_decision_of_the_keys_site() {
    let app = spawn(DEFAULT).await;
    let path = format!("/v1/consents?key={}", app.key);
    // navigator.sendBeacon(url, JSON.stringify(data)): a plain string, sent
    // as text/plain with credentials and no custom header.
    let answer = send(
        app.public,
        Method::POST,
        &path,
        &[
            ("content-type", "text/plain;charset=UTF-8"),
            ("origin", SHOP),
            ("user-agent", CHROME),
            ("sec-gpc", "1"),
        ],
        json_bytes(&payload(LAST)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("access-control-allow-origin"), Some(SHOP));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(answer.header("vary"), Some("Origin"));
    assert_eq!(answer.body["status"], "PARTIAL");
    assert!(answer.body["receipt"].as_str().unwrap().len() > 20);

    let records = app.listed("shop").await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.id, answer.body["id"].as_str().unwrap());
    assert_eq!(record.subject_id, CONSENT_ID);
    assert_eq!(record.action, ConsentAction::Custom as i32);
    assert_eq!(record.granted_categories, ["necessary", "marketing"]);
    assert_eq!(record.denied_categories, ["analytics"]);
    assert_eq!(record.banner_revision, "3");
    assert_eq!(record.anonymized_ip, "127.0.0.0/24");
    assert_eq!(record.browser, "Chrome");
    assert_eq!(record.language_code, "en");
    assert_eq!(record.page_url, "https://shop.example/cart");
    assert!(record.gpc_detected, "Sec-GPC: 1 is the GPC signal");
    let client_time = record.client_time.unwrap();
    assert_eq!(
        client_time.seconds,
        humantime::parse_rfc3339(LAST)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    );
    assert_ne!(
        record.record_time.unwrap().seconds,
        client_time.seconds,
        "the record time is the server's"
    );
    app.app.stop().await;
}

#[tokio::test]
async fn a_page_that_logs_twice_stores_one_record() {
    let app = spawn(DEFAULT).await;
    let first = app.post_last(&[]).await;
    let again = app.post_last(&[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(first.body["id"], again.body["id"]);
    assert_eq!(app.listed("shop").await.len(), 1);

    let changed = app
        .fetch(json_bytes(&payload("2026-01-03T10:00:00.000Z")), &[])
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.body["id"], first.body["id"]);
    assert_eq!(app.listed("shop").await.len(), 2);
    app.app.stop().await;
}

#[tokio::test]
async fn bad_payloads_get_a_400_naming_the_field_and_store_nothing() {
    let app = spawn(DEFAULT).await;
    let future =
        humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(3600))
            .to_string();
    let mut bad_id = payload(LAST);
    bad_id["consentId"] = json!("not-a-uuid");
    let mut unknown = payload(LAST);
    unknown["acceptedCategorys"] = json!(["analytics"]);
    let mut bad_type = payload(LAST);
    bad_type["acceptType"] = json!("everything");
    let mut oversize = payload(LAST);
    oversize["pageUrl"] = json!(format!("https://shop.example/?{}", "a".repeat(17 * 1024)));
    for (body, field) in [
        (json_bytes(&payload(&future)), "lastConsentTimestamp"),
        (json_bytes(&bad_id), "consentId"),
        (json_bytes(&unknown), "acceptedCategorys"),
        (json_bytes(&bad_type), "acceptType"),
        (json_bytes(&oversize), "body"),
        (b"{\"consentId\": ".to_vec(), "body"),
        (b"[1, 2]".to_vec(), "body"),
    ] {
        let answer = app.fetch(body, &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(answer.body["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(answer.fields(), [field], "{}", answer.body);
        // A page may read why it was refused.
        assert_eq!(answer.header("access-control-allow-origin"), Some(SHOP));
    }
    let form = app
        .post_last(&[("content-type", "application/x-www-form-urlencoded")])
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    app.stored_nothing(&["shop"]).await;
    app.app.stop().await;
}

#[tokio::test]
async fn keys_and_origins_not_allowed_are_refused_and_store_nothing() {
    let app = spawn(DEFAULT).await;
    let body = json_bytes(&payload(LAST));
    let secret = app.app.key("acme", &Scope::ALL).await;
    let blog = site_key(&app.app, "acme", "blog", "https://blog.example").await;
    let post = |key: String, origin: Option<&'static str>| {
        let body = body.clone();
        let public = app.public;
        async move {
            let mut headers = vec![("content-type", "application/json")];
            if let Some(origin) = origin {
                headers.push(("origin", origin));
            }
            headers.push(("x-consentd-key", key.as_str()));
            send(public, Method::POST, "/v1/consents", &headers, body).await
        }
    };
    for (answer, status) in [
        (
            post(secret.clone(), Some(SHOP)).await,
            StatusCode::UNAUTHORIZED,
        ),
        (
            post(String::new(), Some(SHOP)).await,
            StatusCode::UNAUTHORIZED,
        ),
        (
            post("cdp_made_up".into(), Some(SHOP)).await,
            StatusCode::UNAUTHORIZED,
        ),
        // The blog's key records for the blog only, from the blog only.
        (post(blog.clone(), Some(SHOP)).await, StatusCode::FORBIDDEN),
        (
            post(app.key.clone(), Some("https://evil.example")).await,
            StatusCode::FORBIDDEN,
        ),
        (post(app.key.clone(), None).await, StatusCode::FORBIDDEN),
    ] {
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.header("access-control-allow-origin"), None);
    }

    // A publishable key is no key at all on the gRPC listener.
    let mut grpc = app.app.client(Some(&app.key)).await;
    let refused = grpc
        .record_consent(decision("shop", "subject-1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = grpc
        .list_consents(ListConsentsRequest {
            site_id: "shop".into(),
            page_size: 10,
            page_token: String::new(),
            filter: None,
            view: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // Refusals are counted by reason (other tests may count too).
    let scraped = consentd::metrics::metrics().encode();
    for reason in ["UNAUTHENTICATED", "ORIGIN_NOT_ALLOWED"] {
        let series = format!("consentd_public_requests_total{{outcome=\"{reason}\"}} ");
        assert!(scraped.contains(&series), "{series} in {scraped}");
    }

    app.stored_nothing(&["shop", "blog"]).await;
    app.app.stop().await;
}

#[tokio::test]
async fn a_preflight_is_answered_for_the_keys_origins_only() {
    let app = spawn(DEFAULT).await;
    let path = format!("/v1/consents?key={}", app.key);
    let preflight = |origin: &'static str| {
        let path = path.clone();
        let public = app.public;
        async move {
            let headers = [
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ];
            send(public, Method::OPTIONS, &path, &headers, Bytes::new()).await
        }
    };
    let allowed = preflight(SHOP).await;
    assert_eq!(allowed.status, StatusCode::NO_CONTENT);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(SHOP));
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(allowed.header("access-control-allow-methods"), Some("POST"));
    assert!(
        allowed
            .header("access-control-allow-headers")
            .unwrap()
            .contains("content-type")
    );
    assert_eq!(allowed.header("vary"), Some("Origin"));

    let other = preflight("https://evil.example").await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(other.header("access-control-allow-origin"), None);
    app.app.stop().await;
}

#[tokio::test]
async fn a_client_network_past_its_budget_gets_429_with_retry_after() {
    let app = spawn(Limits {
        trusted_hops: 0,
        network_burst: 3,
    })
    .await;
    for n in 0..3 {
        let answer = app
            .fetch(
                json_bytes(&payload(&format!("2026-01-0{}T10:00:00.000Z", n + 1))),
                &[],
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let limited = app
        .fetch(json_bytes(&payload("2026-01-05T10:00:00.000Z")), &[])
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["error"]["code"], "RATE_LIMITED");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=1200).contains(&retry), "{retry}");
    assert_eq!(app.listed("shop").await.len(), 3);
    app.app.stop().await;
}

#[tokio::test]
async fn x_forwarded_for_counts_only_through_trusted_hops() {
    let forwarded = [("x-forwarded-for", "198.51.100.7")];
    let untrusting = spawn(DEFAULT).await;
    let answer = untrusting.post_last(&forwarded).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        untrusting.listed("shop").await[0].anonymized_ip,
        "127.0.0.0/24"
    );
    untrusting.app.stop().await;

    let behind_proxy = spawn(Limits {
        trusted_hops: 1,
        network_burst: 1000,
    })
    .await;
    // The client wrote the first entry itself; the proxy appended the second.
    let answer = behind_proxy
        .post_last(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7")])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        behind_proxy.listed("shop").await[0].anonymized_ip,
        "198.51.100.0/24"
    );
    behind_proxy.app.stop().await;
}

#[tokio::test]
async fn other_paths_and_methods_are_not_served() {
    let app = spawn(DEFAULT).await;
    let list = send(app.public, Method::GET, "/v1/consents", &[], Bytes::new()).await;
    assert_eq!(list.status, StatusCode::METHOD_NOT_ALLOWED);
    let other = send(app.public, Method::GET, "/v1/records", &[], Bytes::new()).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    app.app.stop().await;
}

/// More than one key in a request is no key, whatever the keys and
/// wherever they come: two headers, two `key` parameters, or one of each.
#[tokio::test]
async fn a_request_with_two_keys_is_refused_and_stores_nothing() {
    let app = spawn(DEFAULT).await;
    let blog = site_key(&app.app, "acme", "blog", SHOP).await;
    let body = json_bytes(&payload(LAST));
    let json = ("content-type", "application/json");
    let origin = ("origin", SHOP);
    let (key, bad) = (app.key.as_str(), "cdp_made_up");
    for (path, keys) in [
        ("/v1/consents".to_string(), [key, key]),
        ("/v1/consents".to_string(), [key, blog.as_str()]),
        ("/v1/consents".to_string(), [key, bad]),
        ("/v1/consents".to_string(), [bad, key]),
        (format!("/v1/consents?key={key}"), [key, ""]),
        (format!("/v1/consents?key={key}&key={bad}"), ["", ""]),
        (format!("/v1/consents?key={bad}&key={key}"), ["", ""]),
    ] {
        let mut headers = vec![json, origin];
        for key in keys.into_iter().filter(|key| !key.is_empty()) {
            headers.push(("x-consentd-key", key));
        }
        let answer = send(app.public, Method::POST, &path, &headers, body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path} {keys:?}");
    }
    assert_eq!(app.app.stored_records().await, 0);
    app.app.stop().await;
}

#[tokio::test]
async fn a_site_that_drops_query_strings_stores_posted_urls_without_them() {
    let app = spawn(DEFAULT).await;
    let admin = app.app.key("acme", &Scope::ALL).await;
    app.app
        .admin_client(&admin)
        .await
        .update_site_settings(consentd::api::proto::UpdateSiteSettingsRequest {
            site_id: "shop".into(),
            drop_query_strings: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut sent = payload(LAST);
    sent["pageUrl"] = "https://shop.example/cart?email=x@y.example".into();
    let answer = app.fetch(json_bytes(&sent), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let stored: String = app
        .app
        .sql()
        .await
        .query_one("SELECT page_url FROM consent_records", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "https://shop.example/cart");
    app.app.stop().await;
}
