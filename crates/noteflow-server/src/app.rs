//! Building and running the whole service: open the store (or refuse to start), recover jobs a
//! previous process left RUNNING, bind the ports, then serve gRPC (with health and reflection) and
//! metrics while the runner works the queue, until shut down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use noteflow_proto::v1::diarization_service_server::DiarizationServiceServer;
use noteflow_proto::v1::meeting_service_server::MeetingServiceServer;
use noteflow_store::{
    now_millis, JobStore, MemoryStore, Millis, Recovery, SqliteStore, StorageMode, StoreError,
    WorkerId,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::{DatabaseConfig, ServerConfig};
use crate::diarizer::SpeakerDiarizer;
use crate::events::JobEvents;
use crate::metrics::{self, Metrics};
use crate::observe::ObserveLayer;
use crate::runner::Runner;
use crate::service::jobs::Jobs;
use crate::service::meetings::Meetings;
use crate::service::{ServiceState, MEMORY_MODE_WARNING};
use crate::uploads::UploadSlots;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{source}\n(the server will not start without its database; pass --fallback-to-memory to run on memory instead, losing every job on restart)")]
    Database {
        #[source]
        source: StoreError,
    },
    /// The data directory is held by another server. Said separately because --fallback-to-memory
    /// never applies here, so telling the operator to pass it would be wrong.
    #[error("{source}\n(the server will not start while another server uses its data directory, even with --fallback-to-memory: running on memory would hide that server's jobs and lose new ones; stop the other server, or give this one another --data-dir)")]
    DataDirInUse {
        #[source]
        source: StoreError,
    },
    #[error("cannot recover the jobs a previous run left behind: {0}")]
    Recovery(#[source] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot set up gRPC reflection: {0}")]
    Reflection(String),
    #[error("the compiled-in gRPC descriptors cannot be read: {0}")]
    Descriptors(#[from] prost::DecodeError),
}

/// The descriptors of NoteFlow's services and of health, which reflection publishes (it adds its
/// own).
const API_DESCRIPTORS: [&[u8]; 2] = [
    noteflow_proto::v1::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
];

/// The descriptors of both reflection versions served.
const REFLECTION_DESCRIPTORS: [&[u8]; 2] = [
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    API_DESCRIPTORS.into_iter().fold(
        tonic_reflection::server::Builder::configure(),
        |builder, descriptors| builder.register_encoded_file_descriptor_set(descriptors),
    )
}

/// A built, bound server, not yet serving. Tests build it on port 0 with a fresh data directory.
pub struct Application {
    config: ServerConfig,
    state: Arc<ServiceState>,
    runner: Arc<Runner>,
    grpc: TcpListener,
    metrics_listener: Option<TcpListener>,
    recovery: Recovery,
    stop: watch::Sender<bool>,
}

/// Opens the configured store; on failure, falls back to memory only when allowed.
fn open_store(config: &ServerConfig) -> Result<Arc<dyn JobStore>, StartError> {
    match &config.database {
        DatabaseConfig::Memory => Ok(Arc::new(MemoryStore::new())),
        DatabaseConfig::Sqlite { data_dir } => match SqliteStore::open(data_dir) {
            Ok(store) => {
                tracing::info!(path = %store.path().display(), "jobs are kept in SQLite");
                Ok(Arc::new(store))
            }
            // Another server holding the directory is not a broken database: falling back would
            // hide that server's jobs and lose new ones, so this always refuses.
            Err(e) if config.fallback_to_memory && !matches!(e, StoreError::Locked { .. }) => {
                tracing::error!(error = %e, "cannot open the database; falling back to memory as --fallback-to-memory allows");
                Ok(Arc::new(MemoryStore::new()))
            }
            Err(source @ StoreError::Locked { .. }) => Err(StartError::DataDirInUse { source }),
            Err(source) => Err(StartError::Database { source }),
        },
    }
}

impl Application {
    pub async fn build(
        config: ServerConfig,
        diarizer: Arc<dyn SpeakerDiarizer>,
    ) -> Result<Self, StartError> {
        let store = open_store(&config)?;
        let mode = store.mode();
        let warnings = if mode.is_durable() {
            Vec::new()
        } else {
            tracing::warn!("{MEMORY_MODE_WARNING}");
            vec![MEMORY_MODE_WARNING.to_string()]
        };
        let metrics = Arc::new(Metrics::new(mode));
        let worker = WorkerId::generate();

        // A single-process store holds its data directory's lock, so every claim by another worker
        // is from a dead process; a shared store takes over only claims whose lease has lapsed.
        let cutoff: Millis = match mode {
            StorageMode::Postgres => now_millis(),
            StorageMode::Memory | StorageMode::Sqlite => Millis::MAX,
        };
        let recovery = store
            .recover_abandoned(&worker, config.runner.max_attempts, cutoff)
            .await
            .map_err(StartError::Recovery)?;
        report_recovery(&recovery, &metrics);

        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.grpc_addr,
                source,
            })?;
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };

        let (stop, stopping) = watch::channel(false);
        let events = JobEvents::default();
        let runner = Runner::new(
            store.clone(),
            diarizer,
            worker,
            config.runner.clone(),
            events.clone(),
            metrics.clone(),
        );
        let state = Arc::new(ServiceState {
            store,
            runner: runner.clone(),
            events,
            metrics,
            mode,
            warnings,
            max_upload_bytes: config.max_upload_bytes,
            max_queued: config.max_queued,
            cancel_wait: config.cancel_wait,
            uploads: UploadSlots::new(config.max_concurrent_uploads, config.max_uploads_per_caller),
            upload_idle_timeout: config.upload_idle_timeout,
            upload_deadline: config.upload_deadline,
            page_tokens: crate::service::page_token::PageTokens::new(),
            stopping,
        });
        Ok(Self {
            config,
            state,
            runner,
            grpc,
            metrics_listener,
            recovery,
            stop,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn storage_mode(&self) -> StorageMode {
        self.state.mode
    }

    pub fn worker_id(&self) -> &WorkerId {
        self.runner.worker()
    }

    /// What start-up recovery did with jobs a previous process left RUNNING.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Serves until `shutdown` resolves, then stops taking requests, asks running jobs to stop and
    /// waits for them (bounded by the configured grace period).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let stop_tx = self.stop;
        let stop_rx = stop_tx.subscribe();
        let runner_task = tokio::spawn(
            self.runner
                .clone()
                .run(stop_rx.clone(), self.config.shutdown_grace),
        );

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<MeetingServiceServer<Meetings>>().await;
        health.set_serving::<DiarizationServiceServer<Jobs>>().await;
        let reflection = reflection_builder()
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let reflection_alpha = reflection_builder()
            .build_v1alpha()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;

        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let metrics_task = self.metrics_listener.map(|listener| {
            tokio::spawn(metrics::serve(
                listener,
                self.state.metrics.clone(),
                self.state.store.clone(),
                stopped(stop_rx.clone()),
            ))
        });

        tracing::info!(
            grpc = %self.grpc.local_addr().map_or("?".into(), |a| a.to_string()),
            storage = self.state.mode.as_str(),
            worker = %self.runner.worker(),
            concurrency = self.config.runner.concurrency,
            "serving"
        );
        // Every call, whichever service answers it, is counted and gets its span here.
        let observe = ObserveLayer::new(
            self.state.metrics.clone(),
            &[API_DESCRIPTORS, REFLECTION_DESCRIPTORS].concat(),
        )?;
        let server = tonic::transport::Server::builder()
            .layer(observe)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(MeetingServiceServer::new(Meetings::new(self.state.clone())))
            .add_service(DiarizationServiceServer::new(Jobs::new(self.state.clone())))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(self.grpc),
                stopped(stop_rx.clone()),
            );
        tokio::pin!(server);
        let result = tokio::select! {
            result = &mut server => result,
            _ = shutdown => {
                tracing::info!("shutting down");
                health.set_not_serving::<DiarizationServiceServer<Jobs>>().await;
                health.set_not_serving::<MeetingServiceServer<Meetings>>().await;
                health
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
                // Stops the runner, open watch streams, the metrics server, and new connections.
                let _ = stop_tx.send(true);
                // In-flight calls get the grace period to finish; connections a client keeps open
                // past it are dropped.
                match tokio::time::timeout(self.config.shutdown_grace, &mut server).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!("client connections still open after the grace period; closing them");
                        Ok(())
                    }
                }
            }
        };
        let _ = stop_tx.send(true);
        let _ = runner_task.await;
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        tracing::info!("stopped");
        result.map_err(ServeError::from)
    }
}

fn report_recovery(recovery: &Recovery, metrics: &Metrics) {
    if !recovery.requeued.is_empty() {
        tracing::warn!(jobs = ?recovery.requeued, "re-queued jobs a previous run left RUNNING");
    }
    if !recovery.failed.is_empty() {
        tracing::warn!(jobs = ?recovery.failed, "jobs interrupted too many times are now FAILED");
    }
    if !recovery.cancelled.is_empty() {
        tracing::info!(jobs = ?recovery.cancelled, "jobs whose cancel was pending are now CANCELLED");
    }
    metrics.recovered("requeued", recovery.requeued.len());
    metrics.recovered("failed", recovery.failed.len());
    metrics.recovered("cancelled", recovery.cancelled.len());
}
