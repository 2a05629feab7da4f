//! TLS, and mutual TLS, from PEM files that may be replaced while serving.
//!
//! cert-manager and Kubernetes Secret volumes replace certificate files in
//! place. Before each handshake the files' metadata is compared with what
//! was loaded; when it changed, they are read again and new connections
//! get the new certificate, key and client CA. Connections already open
//! keep theirs. Files that do not load (say a key written before its
//! certificate) leave the previous ones in use until the files change again.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        RootCertStore, ServerConfig,
        crypto::{CryptoProvider, ring},
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::WebPkiClientVerifier,
    },
};

use crate::config::{LimitsConfig, setting_name};

/// Where the server's certificate chain and key are, and the CA that
/// client certificates must chain to (mutual TLS) when set.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// Which of the files a problem is with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
    ClientCa,
}

#[derive(Debug)]
pub struct TlsError {
    pub file: TlsFile,
    pub path: PathBuf,
    pub problem: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.file {
            TlsFile::Cert => "TLS certificate",
            TlsFile::Key => "TLS key",
            TlsFile::ClientCa => "TLS client CA",
        };
        write!(f, "{what} file {}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for TlsError {}

impl TlsFiles {
    /// The files configured, if any, loaded once so that a bad one stops
    /// the start with the setting named.
    pub fn from_config(config: &LimitsConfig) -> Result<Option<Self>, String> {
        let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
            return Ok(None);
        };
        let files = Self {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.tls_client_ca_file.clone(),
        };
        files.check().map_err(|error| {
            let flag = match error.file {
                TlsFile::Cert => "tls-cert-file",
                TlsFile::Key => "tls-key-file",
                TlsFile::ClientCa => "tls-client-ca-file",
            };
            format!("{}: {error}", setting_name(flag))
        })?;
        Ok(Some(files))
    }

    /// Loads the files once, to report a problem before serving.
    pub fn check(&self) -> Result<(), TlsError> {
        server_config(self).map(drop)
    }

    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }
}

/// Hands out an acceptor with the files' current contents.
pub struct ReloadingTls {
    files: TlsFiles,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    seen: Vec<Option<Fingerprint>>,
    acceptor: TlsAcceptor,
}

/// What tells a replaced file from the one loaded. A Secret volume swaps
/// a symlink to a new file, so the inode changes even when the times do not.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Fingerprint {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode,
    })
}

impl ReloadingTls {
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let seen = files.paths().map(fingerprint).collect();
        let acceptor = TlsAcceptor::from(server_config(&files)?);
        Ok(Arc::new(Self {
            files,
            loaded: Mutex::new(Loaded { seen, acceptor }),
        }))
    }

    /// The acceptor for the next handshake, reloaded if the files changed.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let seen: Vec<_> = self.files.paths().map(fingerprint).collect();
        if seen != loaded.seen {
            loaded.seen = seen;
            match server_config(&self.files) {
                Ok(config) => {
                    loaded.acceptor = TlsAcceptor::from(config);
                    tracing::info!("TLS files changed: new connections use them");
                }
                Err(error) => {
                    tracing::warn!(%error, "TLS files changed but do not load; the previous ones stay in use");
                }
            }
        }
        loaded.acceptor.clone()
    }
}

fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let fail = |file, path: &Path| {
        let path = path.to_path_buf();
        move |problem: String| TlsError {
            file,
            path,
            problem,
        }
    };
    let cert_error = fail(TlsFile::Cert, &files.cert);
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(TlsFile::Cert, &files.cert)(
            "no certificate in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| fail(TlsFile::Key, &files.key)(e.to_string()))?;

    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(TlsFile::Cert, &files.cert)(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(
            client_verifier(path, provider).map_err(fail(TlsFile::ClientCa, path))?,
        ),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        fail(TlsFile::Key, &files.key)(format!("does not fit the certificate: {e}"))
    })?;
    // gRPC runs over HTTP/2 only, and clients insist on hearing it in ALPN.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn tokio_rustls::rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no CA certificate in it".into());
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())
}
