//! Prometheus metrics: jobs by state, job durations, storage mode, stale writes, RPCs by method and
//! code. Served as text on `GET /metrics` of the metrics port.

use std::sync::Arc;

use noteflow_store::{JobState, JobStore, StorageMode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tonic::Code;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecoveryLabel {
    action: &'static str,
}

fn job_duration_histogram() -> Histogram {
    // 0.25 s .. ~2.3 h
    Histogram::new(exponential_buckets(0.25, 2.0, 16))
}

fn rpc_duration_histogram() -> Histogram {
    // 0.1 ms .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    jobs: Family<StateLabel, Gauge>,
    job_duration: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    stale_writes: Counter,
    rpcs: Family<RpcLabels, Counter>,
    rpc_duration: Family<RpcLabels, Histogram, fn() -> Histogram>,
    recovered: Family<RecoveryLabel, Counter>,
    uploads_in_progress: Gauge,
    uploads_refused: Family<ReasonLabel, Counter>,
}

/// Holds one upload in the `uploads_in_progress` gauge until dropped, however the upload ends.
pub struct UploadInProgress(Gauge);

impl Drop for UploadInProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn new(mode: StorageMode) -> Self {
        let mut registry = Registry::with_prefix("noteflow");
        let jobs = Family::<StateLabel, Gauge>::default();
        registry.register("jobs", "Diarization jobs in each state", jobs.clone());
        let storage_mode = Family::<ModeLabel, Gauge>::default();
        registry.register(
            "storage_mode",
            "Where jobs are kept (1 on the active mode); memory means nothing survives a restart",
            storage_mode.clone(),
        );
        for candidate in [
            StorageMode::Memory,
            StorageMode::Sqlite,
            StorageMode::Postgres,
        ] {
            storage_mode
                .get_or_create(&ModeLabel {
                    mode: candidate.as_str(),
                })
                .set(i64::from(candidate == mode));
        }
        let job_duration =
            Family::<OutcomeLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                job_duration_histogram,
            );
        registry.register(
            "job_duration_seconds",
            "Wall time of job runs, by how they ended",
            job_duration.clone(),
        );
        let stale_writes = Counter::default();
        registry.register(
            "stale_writes",
            "Writes by a worker whose claim was no longer valid (recovered, cancelled or deleted job); they changed nothing",
            stale_writes.clone(),
        );
        let rpcs = Family::<RpcLabels, Counter>::default();
        registry.register(
            "rpc_requests",
            "gRPC calls by method and final status code, counted when the call ends (Cancelled: the client went away first)",
            rpcs.clone(),
        );
        let rpc_duration = Family::<RpcLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            rpc_duration_histogram,
        );
        registry.register(
            "rpc_duration_seconds",
            "Time from a gRPC request's arrival until the server began its answer, by method and final status code (the whole call for unary and upload calls; for response streams such as WatchDiarizationJob, the time to set the stream up, not how long it stayed open)",
            rpc_duration.clone(),
        );
        let recovered = Family::<RecoveryLabel, Counter>::default();
        registry.register(
            "jobs_recovered",
            "Jobs found RUNNING under a previous process at start, by what was done with them",
            recovered.clone(),
        );
        let uploads_in_progress = Gauge::default();
        registry.register(
            "uploads_in_progress",
            "Audio uploads being received or checked now (each holds its audio in memory; bounded by the server's concurrent-upload limit)",
            uploads_in_progress.clone(),
        );
        let uploads_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "uploads_refused",
            "Uploads refused or ended by the server before storing anything, by reason: server_busy and caller_busy (no free slot, on the server or for this caller), idle_timeout (no chunk within the idle timeout), deadline (the whole upload took too long)",
            uploads_refused.clone(),
        );
        Self {
            registry,
            jobs,
            job_duration,
            stale_writes,
            rpcs,
            rpc_duration,
            recovered,
            uploads_in_progress,
            uploads_refused,
        }
    }

    pub fn upload_started(&self) -> UploadInProgress {
        self.uploads_in_progress.inc();
        UploadInProgress(self.uploads_in_progress.clone())
    }

    /// Counts an upload refused or ended for `reason` (see the metric's help).
    pub fn upload_refused(&self, reason: &'static str) {
        self.uploads_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn stale_write(&self) {
        self.stale_writes.inc();
    }

    pub fn stale_writes(&self) -> u64 {
        self.stale_writes.get()
    }

    pub fn job_finished(&self, outcome: &'static str, seconds: f64) {
        self.job_duration
            .get_or_create(&OutcomeLabel { outcome })
            .observe(seconds);
    }

    pub fn recovered(&self, action: &'static str, count: usize) {
        self.recovered
            .get_or_create(&RecoveryLabel { action })
            .inc_by(count as u64);
    }

    /// Counts one ended gRPC call; `answer_seconds` is how long the server took to begin its answer.
    /// The per-RPC layer (module `observe`) calls it for every call, so handlers never do.
    pub fn rpc_finished(&self, method: &str, code: Code, answer_seconds: f64) {
        let labels = RpcLabels {
            method: method.to_string(),
            code: format!("{code:?}"),
        };
        self.rpcs.get_or_create(&labels).inc();
        self.rpc_duration
            .get_or_create(&labels)
            .observe(answer_seconds);
    }

    /// The text exposition, with the job-state gauges read from the store now.
    pub async fn render(&self, store: &dyn JobStore) -> String {
        match store.count_by_state().await {
            Ok(counts) => {
                for state in JobState::ALL {
                    let n = counts.get(&state).copied().unwrap_or(0);
                    self.jobs
                        .get_or_create(&StateLabel {
                            state: state.as_str(),
                        })
                        .set(n as i64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count jobs by state"),
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics: encoding failed");
        }
        out
    }
}

/// Serves `GET /metrics` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    store: Arc<dyn JobStore>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            let store = store.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(store.as_ref()).await,
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
