//! The reliability tests' sizes: short in the test command, long under
//! `scripts/soak` (CONSENTD_SOAK=1).

use std::time::Duration;

/// Whether the tests run as the soak (`CONSENTD_SOAK=1`).
pub fn soaking() -> bool {
    std::env::var("CONSENTD_SOAK").is_ok_and(|v| v == "1")
}

/// `test` in the test command, `soak` under scripts/soak.
pub fn pick<T>(test: T, soak: T) -> T {
    if soaking() { soak } else { test }
}

/// A duration in seconds, as `pick` chooses it.
pub fn seconds(test: u64, soak: u64) -> Duration {
    Duration::from_secs(pick(test, soak))
}
