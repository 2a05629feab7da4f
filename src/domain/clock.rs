//! Where time-driven work reads the time, so tests can move it.

use std::{sync::Arc, time::SystemTime};

pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}
