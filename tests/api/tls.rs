//! TLS and mutual TLS from files, and files replaced while serving.

use std::{net::SocketAddr, path::Path, sync::Arc};

use consentd::server::TlsFiles;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    rustls::{
        ClientConfig, RootCertStore,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    },
};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use uuid::Uuid;

use crate::helpers::{TestApp, cluster_url, settings};

struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A certificate and its key, in PEM.
struct Leaf {
    cert: String,
    key: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    fn issue(&self, name: &str, purpose: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &self.0).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    fn server(&self) -> Leaf {
        self.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self) -> Leaf {
        self.issue("billing-service", ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// Writes `text` to `path` the way a Secret volume does: a new file moved
/// over the old one.
fn replace(path: &Path, text: &str) {
    let fresh = path.with_extension(format!("new-{}", Uuid::new_v4().simple()));
    std::fs::write(&fresh, text).unwrap();
    std::fs::rename(&fresh, path).unwrap();
}

fn connector(ca: &Ca, identity: Option<&Leaf>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca.0.der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// The certificate a new connection is served.
async fn served_certificate(addr: SocketAddr, connector: &TlsConnector) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

fn channel(addr: SocketAddr, connector: TlsConnector) -> Channel {
    Endpoint::from_static("http://localhost").connect_with_connector_lazy(tower::service_fn(
        move |_| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        },
    ))
}

async fn liveness(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "liveness".into(),
        })
        .await?;
    Ok(ServingStatus::try_from(response.into_inner().status).unwrap())
}

fn files_in(dir: &Path, client_ca: bool) -> TlsFiles {
    TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        client_ca: client_ca.then(|| dir.join("ca.crt")),
    }
}

#[tokio::test]
async fn tls_is_served_and_replaced_certificate_files_are_used_without_a_restart() {
    let dir = tempdir();
    let ca = Ca::new("consentd test CA");
    let first = ca.server();
    let files = files_in(&dir, false);
    std::fs::write(&files.cert, &first.cert).unwrap();
    std::fs::write(&files.key, &first.key).unwrap();
    let mut settings = settings();
    settings.tls = Some(files.clone());
    let app = TestApp::spawn_with(&cluster_url(), settings).await;
    let connector = connector(&ca, None);

    let open = channel(app.addr, connector.clone());
    assert_eq!(
        liveness(open.clone()).await.unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(served_certificate(app.addr, &connector).await, first.der);
    let plain = Channel::from_shared(format!("http://{}", app.addr)).unwrap();
    let plaintext = match plain.connect().await {
        Ok(plain) => liveness(plain).await.is_ok(),
        Err(_) => false,
    };
    assert!(!plaintext, "no plaintext gRPC on a TLS port");

    let second = ca.server();
    replace(&files.cert, &second.cert);
    replace(&files.key, &second.key);
    assert_eq!(
        served_certificate(app.addr, &connector).await,
        second.der,
        "a new connection gets the new certificate"
    );
    assert_eq!(
        liveness(open.clone()).await.unwrap(),
        ServingStatus::Serving,
        "an open connection goes on"
    );

    // A certificate without its key yet: the previous pair stays in use
    // until the key arrives.
    let third = ca.server();
    replace(&files.cert, &third.cert);
    assert_eq!(served_certificate(app.addr, &connector).await, second.der);
    replace(&files.key, &third.key);
    assert_eq!(served_certificate(app.addr, &connector).await, third.der);
    app.stop().await;
}

#[tokio::test]
async fn mutual_tls_lets_in_only_clients_with_a_certificate_from_the_client_ca() {
    let dir = tempdir();
    let ca = Ca::new("consentd test CA");
    let clients = Ca::new("consentd clients CA");
    let server = ca.server();
    let files = files_in(&dir, true);
    std::fs::write(&files.cert, &server.cert).unwrap();
    std::fs::write(&files.key, &server.key).unwrap();
    std::fs::write(files.client_ca.as_ref().unwrap(), clients.pem()).unwrap();
    let mut settings = settings();
    settings.tls = Some(files);
    let app = TestApp::spawn_with(&cluster_url(), settings).await;

    let admitted = channel(app.addr, connector(&ca, Some(&clients.client())));
    assert_eq!(liveness(admitted).await.unwrap(), ServingStatus::Serving);

    let anonymous = channel(app.addr, connector(&ca, None));
    assert!(liveness(anonymous).await.is_err());
    let stranger = channel(
        app.addr,
        connector(&ca, Some(&Ca::new("other CA").client())),
    );
    assert!(liveness(stranger).await.is_err());
    app.stop().await;
}

/// A directory of the test's own, removed at the end.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("consentd-tls-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}
