//! Server settings, with defaults sized for a small (2-core) machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where jobs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// Embedded SQLite in this directory (created if missing). The default.
    Sqlite { data_dir: PathBuf },
    /// Process memory: everything is lost when the server stops. Chosen explicitly only.
    Memory,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// gRPC listen address; port 0 picks a free port.
    pub grpc_addr: SocketAddr,
    /// Prometheus `/metrics` listen address; `None` disables it.
    pub metrics_addr: Option<SocketAddr>,
    pub database: DatabaseConfig,
    /// If the configured database cannot be opened, run on memory (with loud warnings) instead of
    /// refusing to start.
    pub fallback_to_memory: bool,
    pub runner: RunnerConfig,
    /// Largest accepted audio upload.
    pub max_upload_bytes: usize,
    /// Most jobs that may wait in the queue; more starts get RESOURCE_EXHAUSTED.
    pub max_queued: u64,
    /// How long CancelDiarizationJob waits for a running job to stop.
    pub cancel_wait: Duration,
    /// How long a graceful shutdown waits for running jobs to stop after asking them to.
    pub shutdown_grace: Duration,
    /// Uploads received and checked at once; more get RESOURCE_EXHAUSTED. Each holds its audio in
    /// memory while it is checked, so this bounds the memory uploads can take.
    pub max_concurrent_uploads: usize,
    /// How many of those slots one caller (peer address) may hold, so one client cannot lock the
    /// others out.
    pub max_uploads_per_caller: usize,
    /// An upload that sends no chunk for this long is ended (DEADLINE_EXCEEDED, nothing stored),
    /// so a stalled client does not hold its slot.
    pub upload_idle_timeout: Duration,
    /// The longest a whole upload may take, however steadily it trickles in.
    pub upload_deadline: Duration,
}

impl ServerConfig {
    /// Defaults with the given database, listening on 127.0.0.1 (gRPC on 50051, metrics on 9464).
    pub fn new(database: DatabaseConfig) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            database,
            fallback_to_memory: false,
            runner: RunnerConfig::default(),
            max_upload_bytes: 512 * 1024 * 1024,
            max_queued: 1000,
            cancel_wait: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            max_concurrent_uploads: 4,
            max_uploads_per_caller: 2,
            upload_idle_timeout: Duration::from_secs(30),
            upload_deadline: Duration::from_secs(600),
        }
    }

    /// For tests: ephemeral ports on loopback.
    pub fn ephemeral(database: DatabaseConfig) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Self::new(database)
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Jobs run at once. The engine already uses every core for one job, so on 2 cores one job at a
    /// time gives the same throughput with half the memory.
    pub concurrency: usize,
    /// A run's time limit is `timeout_base + timeout_per_audio_second × audio seconds`, so long
    /// meetings get time in proportion (the engine needs ~0.04 s per audio second on 2 cores).
    pub timeout_base: Duration,
    pub timeout_per_audio_second: f64,
    /// Runs a job gets before restarts that interrupt it make it FAILED.
    pub max_attempts: u32,
    /// How often a running job's progress and lease are written (progress writes are throttled to
    /// this), and how often a cancel asked for by another process is noticed.
    pub heartbeat_interval: Duration,
    /// How long a claim stays valid without a heartbeat (for stores shared by several processes).
    pub lease: Duration,
    /// How often the queue is checked when nothing woke the runner (jobs queued by another process).
    pub poll_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            concurrency: (cores / 2).max(1),
            timeout_base: Duration::from_secs(120),
            timeout_per_audio_second: 1.0,
            max_attempts: 3,
            heartbeat_interval: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl RunnerConfig {
    /// The time limit for a run over `audio_seconds` of audio (saturating: absurd settings mean no
    /// practical limit rather than a panic).
    pub fn timeout_for(&self, audio_seconds: f64) -> Duration {
        let scaled =
            Duration::try_from_secs_f64(self.timeout_per_audio_second * audio_seconds.max(0.0))
                .unwrap_or(Duration::MAX);
        self.timeout_base.saturating_add(scaled)
    }
}
