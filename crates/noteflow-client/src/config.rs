//! Client settings and their defaults.

use std::time::Duration;

use crate::retry::RetryPolicy;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Deadline of every single call (sent to the server as the gRPC timeout, and enforced here).
    pub call_timeout: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// HTTP/2 pings on an open connection every this often (also while idle), and the time an
    /// answer may take: a connection that stopped answering (a half-dead network path) is closed
    /// and the next call opens a new one, instead of every retry waiting on the dead one.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub retry: RetryPolicy,
    pub follow: FollowConfig,
    /// Bytes per upload message.
    pub upload_chunk_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            follow: FollowConfig::default(),
            upload_chunk_bytes: 1 << 20,
        }
    }
}

/// How a job is followed to its end.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Prefer the server's WatchDiarizationJob stream; polling is the fallback when it breaks.
    pub use_watch: bool,
    /// Time between status polls (and, while watching, the unit of "no change").
    pub poll_interval: Duration,
    /// Each poll interval is scaled by a random factor in `1 ± poll_jitter`.
    pub poll_jitter: f64,
    /// Give up on a job whose status and progress did not change over this many polls (or poll
    /// intervals of a silent watch stream): 60 × 2 s = 2 minutes by default.
    pub max_unchanged_polls: u32,
    /// Give up when the job has not ended this long after following began. `None`: no limit.
    pub overall_deadline: Option<Duration>,
    /// How long a cancel waits for the job to reach its final state.
    pub cancel_confirm_timeout: Duration,
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            use_watch: true,
            poll_interval: Duration::from_secs(2),
            poll_jitter: 0.1,
            max_unchanged_polls: 60,
            overall_deadline: None,
            cancel_confirm_timeout: Duration::from_secs(30),
        }
    }
}
