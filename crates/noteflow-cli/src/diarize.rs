//! `noteflow diarize FILE`: the main job, end to end, through the resilient client. By default it
//! starts the job service in this process (embedded SQLite, bundled models, an ephemeral loopback
//! port); with `--server URL` it uses a running one. Either way the same client goes through the
//! lifecycle: create a meeting, upload the audio, start a job, follow it to the end (Ctrl-C cancels
//! it and reports its confirmed final state), print the turns. `--engine-only` calls the engine
//! directly instead.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::Args;
use noteflow_client::proto as pb;
use noteflow_client::{
    status_name, CancelOutcome, Client, ClientError, FollowConfig, JobOutcome, SpeakerRequest,
};
use noteflow_diarize::{Diarizer, SpeakerConstraints};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::connect;
use crate::exit;
use crate::local::LocalServer;
use crate::output::{self, EventDisplay, OutputFormat, ProgressBar};
use crate::{EngineArgs, SpeakerArgs};

#[derive(Args)]
pub struct DiarizeArgs {
    /// Audio file (WAV, FLAC, MP3, Ogg Vorbis).
    file: PathBuf,
    #[command(flatten)]
    speakers: SpeakerArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "rttm")]
    format: OutputFormat,
    /// Show progress on stderr (always shown with --server).
    #[arg(long)]
    progress: bool,
    /// Keep the job service's SQLite database here (default: a temporary directory, removed after).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run the engine directly, without the job service.
    #[arg(long, conflicts_with = "server")]
    engine_only: bool,
    /// Send the job to a running `noteflow serve` at this address instead (e.g.
    /// http://127.0.0.1:50051): upload, follow with retries, print the turns; Ctrl-C cancels it.
    #[arg(long, conflicts_with = "data_dir")]
    server: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
}

/// What to diarize and how to show it.
struct Request<'a> {
    file: &'a Path,
    speakers: SpeakerRequest,
    format: OutputFormat,
    display: EventDisplay,
}

/// Returns the process exit code (see [`crate::exit`]).
pub fn run(args: DiarizeArgs) -> Result<u8> {
    let constraints = args.speakers.constraints()?;
    let request = Request {
        file: &args.file,
        speakers: args.speakers.request(),
        format: args.format,
        display: if args.progress || args.server.is_some() {
            EventDisplay::Progress
        } else {
            EventDisplay::Quiet
        },
    };
    if let Some(server) = &args.server {
        return crate::runtime()?.block_on(async {
            let client = connect::client(server, FollowConfig::default())?;
            follow_to_output(&client, &request).await
        });
    }
    let diarizer = args.engine.load()?;
    if args.engine_only {
        return engine_only(&args, &diarizer, constraints);
    }
    crate::runtime()?.block_on(in_process(args.data_dir.as_deref(), diarizer, &request))
}

fn engine_only(
    args: &DiarizeArgs,
    diarizer: &Diarizer,
    constraints: SpeakerConstraints,
) -> Result<u8> {
    let audio = noteflow_diarize::decode_file(&args.file)
        .with_context(|| format!("cannot read audio from {}", args.file.display()))?;
    let mut bar = ProgressBar::default();
    let mut progress = |fraction: f32| {
        if args.progress {
            bar.show(fraction * 100.0, "diarizing");
        }
    };
    let result = diarizer.diarize(&audio, constraints, &mut progress, &AtomicBool::new(false));
    bar.end_line();
    output::print_turns(&args.file, args.format, &result?);
    Ok(exit::OK)
}

/// Runs the job service in this process for one job, on a loopback port, and goes through it.
async fn in_process(
    data_dir: Option<&Path>,
    diarizer: Diarizer,
    request: &Request<'_>,
) -> Result<u8> {
    let server = LocalServer::start(data_dir, diarizer).await?;
    // The client is dropped before the server stops, so no open connection holds the stop up.
    let code = async {
        let client = connect::client(server.address(), FollowConfig::default())?;
        follow_to_output(&client, request).await
    }
    .await;
    server.stop().await?;
    code
}

/// Upload, start, follow, print the turns; returns the exit code, after printing the error that
/// decided it if there was one.
async fn follow_to_output(client: &Client, request: &Request<'_>) -> Result<u8> {
    // Listening from the start, so a Ctrl-C during upload or start is not the default kill (which
    // could leave a job nobody follows); one pressed while the job is being started is acted on
    // as soon as its id is known.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    Ok(exit::report(diarize(client, request, &mut interrupt).await))
}

async fn diarize(
    client: &Client,
    request: &Request<'_>,
    interrupt: &mut Signal,
) -> Result<u8, ClientError> {
    let (meeting, uploaded) = tokio::select! {
        uploaded = client.upload_file(request.file) => uploaded?,
        _ = interrupt.recv() => {
            eprintln!("interrupted during the upload; no job was started");
            return Ok(exit::CANCELLED);
        }
    };
    for warning in &uploaded.warnings {
        eprintln!("warning: {warning}");
    }
    let started = client.start_job(&meeting, request.speakers).await?;
    if request.display == EventDisplay::Progress {
        eprintln!("job {} for {}", started.job_id, request.file.display());
    }
    let followed = output::print_events(client.follow(&started.job_id), request.display);
    let outcome = tokio::select! {
        outcome = followed => outcome?,
        _ = interrupt.recv() => match cancel(client, &started.job_id, interrupt).await? {
            Some(outcome) => outcome,
            None => return Ok(exit::ERROR),
        },
    };
    if let JobOutcome::Completed { result, .. } = &outcome {
        let turns = output::diarization(result, uploaded.duration_seconds);
        output::print_turns(request.file, request.format, &turns);
    }
    Ok(exit::of_outcome(&outcome))
}

/// Cancels the job on Ctrl-C and reports its confirmed final state; `None` when a second Ctrl-C
/// stopped the wait for it.
async fn cancel(
    client: &Client,
    job_id: &str,
    interrupt: &mut Signal,
) -> Result<Option<JobOutcome>, ClientError> {
    eprintln!("\ncancelling job {job_id} (Ctrl-C again to stop waiting) ...");
    let confirmed = tokio::select! {
        confirmed = client.cancel(job_id) => confirmed?,
        _ = interrupt.recv() => {
            eprintln!("stopped waiting; job {job_id} may still be running");
            return Ok(None);
        }
    };
    let job = confirmed.job();
    eprintln!("job {} is {}", job.job_id, status_name(job.status));
    Ok(Some(match confirmed {
        CancelOutcome::Cancelled(job) => JobOutcome::Cancelled { job },
        CancelOutcome::AlreadyEnded(job) if job.status == pb::JobStatus::Completed as i32 => {
            // It finished first: the turns are there, so print them.
            let result = client.result(&job.job_id).await?;
            JobOutcome::Completed { job, result }
        }
        CancelOutcome::AlreadyEnded(job) => JobOutcome::Failed { job },
    }))
}
