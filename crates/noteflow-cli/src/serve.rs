//! `noteflow serve`: the diarization job service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use noteflow_server::{Application, DatabaseConfig, RunnerConfig, ServerConfig};

use crate::EngineArgs;

#[derive(Clone, Copy, ValueEnum)]
enum Database {
    /// Embedded SQLite in --data-dir: jobs survive restarts.
    Sqlite,
    /// Process memory: every meeting and job is lost when the server stops.
    Memory,
}

#[derive(Args)]
pub struct ServeArgs {
    /// gRPC listen address.
    #[arg(long, env = "NOTEFLOW_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Prometheus metrics listen address (GET /metrics).
    #[arg(
        long,
        env = "NOTEFLOW_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    metrics_listen: SocketAddr,
    /// Do not serve metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Where jobs are kept.
    #[arg(long, value_enum, default_value = "sqlite")]
    database: Database,
    /// Data directory of the SQLite database.
    #[arg(long, env = "NOTEFLOW_DATA_DIR", default_value = "noteflow-data")]
    data_dir: PathBuf,
    /// If the database cannot be opened, run on memory (losing every job on restart) instead of
    /// refusing to start.
    #[arg(long)]
    fallback_to_memory: bool,
    /// Jobs run at once [default: half the cores, at least 1].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Most jobs waiting in the queue; more starts get RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 1000)]
    max_queued: u64,
    /// Largest accepted audio upload, in MiB.
    #[arg(long, default_value_t = 512)]
    max_upload_mb: usize,
    /// Uploads received at once, and how many of them one caller (client address) may hold.
    #[arg(long, default_value_t = 4)]
    max_uploads: usize,
    #[arg(long, default_value_t = 2)]
    max_uploads_per_caller: usize,
    /// An upload with no chunk for this many seconds is ended, nothing stored ...
    #[arg(long, default_value_t = 30.0)]
    upload_idle_timeout: f64,
    /// ... and one that takes longer than this many seconds in all.
    #[arg(long, default_value_t = 600.0)]
    upload_deadline: f64,
    /// Runs a job gets before restarts that interrupt it make it FAILED.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    max_attempts: u32,
    /// Time limit of a run: this many seconds ...
    #[arg(long, default_value_t = 120.0)]
    job_timeout_base: f64,
    /// ... plus this many seconds per second of audio.
    #[arg(long, default_value_t = 1.0)]
    job_timeout_per_audio_second: f64,
    /// How long a cancel of a running job waits for it to stop, in seconds.
    #[arg(long, default_value_t = 5.0)]
    cancel_wait: f64,
    #[command(flatten)]
    engine: EngineArgs,
}

fn seconds(name: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{name} must be a non-negative number of seconds, got {value}"))
}

pub fn run(mut args: ServeArgs) -> Result<()> {
    let mut runner = RunnerConfig::default();
    if let Some(n) = args.concurrency {
        anyhow::ensure!(n >= 1, "--concurrency must be at least 1");
        runner.concurrency = n;
    }
    runner.max_attempts = args.max_attempts;
    runner.timeout_base = seconds("job-timeout-base", args.job_timeout_base)?;
    anyhow::ensure!(
        args.job_timeout_per_audio_second.is_finite() && args.job_timeout_per_audio_second >= 0.0,
        "--job-timeout-per-audio-second must be a non-negative number"
    );
    runner.timeout_per_audio_second = args.job_timeout_per_audio_second;
    if args.engine.threads == 0 {
        // Share the cores between the jobs that run at once.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        args.engine.threads = (cores / runner.concurrency).max(1);
    }
    let database = match args.database {
        Database::Sqlite => DatabaseConfig::Sqlite {
            data_dir: args.data_dir.clone(),
        },
        Database::Memory => DatabaseConfig::Memory,
    };
    let mut config = ServerConfig::new(database);
    config.grpc_addr = args.listen;
    config.metrics_addr = (!args.no_metrics).then_some(args.metrics_listen);
    config.fallback_to_memory = args.fallback_to_memory;
    config.runner = runner;
    config.max_queued = args.max_queued;
    anyhow::ensure!(
        args.max_upload_mb >= 1,
        "--max-upload-mb must be at least 1"
    );
    config.max_upload_bytes = args.max_upload_mb.saturating_mul(1024 * 1024);
    config.cancel_wait = seconds("cancel-wait", args.cancel_wait)?;
    anyhow::ensure!(
        args.max_uploads >= 1 && args.max_uploads_per_caller >= 1,
        "--max-uploads and --max-uploads-per-caller must be at least 1"
    );
    config.max_concurrent_uploads = args.max_uploads;
    config.max_uploads_per_caller = args.max_uploads_per_caller;
    config.upload_idle_timeout = seconds("upload-idle-timeout", args.upload_idle_timeout)?;
    config.upload_deadline = seconds("upload-deadline", args.upload_deadline)?;

    let diarizer = args.engine.load()?;
    let grace = config.shutdown_grace;
    let runtime = crate::runtime()?;
    let served = runtime.block_on(async move {
        let app = Application::build(config, Arc::new(diarizer)).await?;
        // One line on stdout that scripts and tests can wait for.
        println!(
            "noteflow serving gRPC on {} (metrics: {}) storage={} worker={}",
            app.grpc_addr(),
            app.metrics_addr()
                .map_or("off".into(), |a| format!("http://{a}/metrics")),
            app.storage_mode().as_str(),
            app.worker_id()
        );
        app.run_until(noteflow_server::shutdown::signal()).await?;
        anyhow::Ok(())
    });
    // A diarizer thread that has not seen its cancel flag yet must not hold the exit up for long.
    runtime.shutdown_timeout(grace);
    served
}
