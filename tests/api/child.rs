//! `consentd serve` as a child process, for the tests that kill it, stop it
//! or measure its memory: what an operator runs, not the library in process.

use std::{
    fs::File,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use uuid::Uuid;

use crate::helpers::{AUDIT_KEY, ConsentClient, SIGNING_KEYS, WithKey};

/// `consentd serve` on `database_url` with the tests' audit and signing
/// keys; no setting of the environment the tests run in leaks in.
pub fn serve_command(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_consentd"));
    for (name, _) in std::env::vars() {
        if name.starts_with("CONSENTD_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env(
            "CONSENTD_AUDIT_KEY",
            std::str::from_utf8(AUDIT_KEY).unwrap(),
        )
        .env("CONSENTD_SIGNING_KEYS", SIGNING_KEYS);
    command
}

/// A running `consentd serve`; killed when dropped.
pub struct Consentd {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

/// A loopback address nothing listens on now.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Consentd {
    /// Starts `consentd serve` on `database_url` at `addr`, with `env` on
    /// top of what serve needs; returns at once.
    pub fn spawn(database_url: &str, addr: SocketAddr, env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("consentd-child-{}.log", Uuid::new_v4()));
        let mut command = serve_command(database_url);
        command
            .env("CONSENTD_LISTEN", addr.to_string())
            .env("CONSENTD_HEALTH_CHECK_INTERVAL", "100ms")
            // Short, so a SIGTERM test does not wait the default 5 s; calls
            // are still served meanwhile.
            .env("CONSENTD_SHUTDOWN_DELAY", "200ms")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        Self {
            child: command.spawn().unwrap(),
            addr,
            log,
        }
    }

    /// Starts it and waits until its health is SERVING.
    pub async fn start(database_url: &str, addr: SocketAddr, env: &[(&str, &str)]) -> Self {
        let consentd = Self::spawn(database_url, addr, env);
        consentd.wait_serving(Duration::from_secs(30)).await;
        consentd
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How long until health says SERVING; panics after `within`.
    pub async fn wait_serving(&self, within: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < within {
            if health(self.addr, "").await == Some(ServingStatus::Serving) {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("consentd never served; its log:\n{}", self.log());
    }

    /// A channel that reconnects by itself, across restarts on this address.
    pub fn channel(&self) -> Channel {
        lazy_channel(self.addr)
    }

    /// The resident set size of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits up to `within` for the process to exit.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        signal(self.pid(), "TERM");
        let log = self.log.clone();
        exited(&mut self.child, within, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        })
        .await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Consentd {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Waits up to `within` for `child` to exit; past that, fails with its
/// `log`.
pub async fn exited(child: &mut Child, within: Duration, log: impl Fn() -> String) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < within,
            "consentd still running after {within:?}; its log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `SIG<name>` to `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

pub fn lazy_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

/// A ConsentService client over `channel` sending `key`.
pub fn consent_client(channel: Channel, key: &str) -> ConsentClient {
    consentd::api::proto::consent_service_client::ConsentServiceClient::with_interceptor(
        channel,
        WithKey(Some(key.parse().unwrap())),
    )
}

/// The health of `service` at `addr`, or None when nothing answers.
pub async fn health(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let mut client = HealthClient::new(lazy_channel(addr));
    let request = HealthCheckRequest {
        service: service.into(),
    };
    let response = tokio::time::timeout(Duration::from_secs(2), client.check(request))
        .await
        .ok()?
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}
