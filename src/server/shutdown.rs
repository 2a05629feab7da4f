//! How a replica leaves without dropping a call.
//!
//! Kubernetes sends SIGTERM and removes the pod from the Service's
//! endpoints at about the same time, but clients and proxies learn of the
//! removal only some seconds later. So, on the signal:
//!
//! 1. readiness turns NOT_SERVING at once (liveness stays SERVING);
//! 2. the replica goes on serving, new connections too, for [`Drain::delay`],
//!    while the endpoint removal spreads;
//! 3. it stops accepting (the listening socket closes), sends GOAWAY on
//!    every connection and lets the calls and streams in flight finish;
//! 4. the RecordConsent queue is written out and answered;
//! 5. it exits 0.
//!
//! Steps 3 and 4 together take at most [`Drain::timeout`]; calls still
//! running then are cut off. The pod's `terminationGracePeriodSeconds`
//! must exceed `delay + timeout`, or SIGKILL comes first. A health `Watch`
//! stream never ends by itself, so a client that watches holds the drain
//! up to that timeout.

use std::time::Duration;

use crate::config::ShutdownConfig;

/// The timings of a shutdown.
#[derive(Clone, Copy, Debug)]
pub struct Drain {
    /// How long the replica serves on after the signal, NOT_SERVING.
    pub delay: Duration,
    /// Longest wait for calls in flight and queued writes once accepting
    /// has stopped.
    pub timeout: Duration,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(5),
            timeout: Duration::from_secs(20),
        }
    }
}

impl Drain {
    pub fn from_config(config: &ShutdownConfig) -> Self {
        Self {
            delay: config.shutdown_delay,
            timeout: config.drain_timeout,
        }
    }
}

/// Completes on SIGTERM (Kubernetes) or Ctrl-C. A second one ends the
/// process at once, without the shutdown delay and drain.
pub async fn signal() {
    termination().await;
    tokio::spawn(async {
        termination().await;
        eprintln!("consentd: second signal, exiting without draining");
        std::process::exit(1);
    });
}

async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
