//! The commands that talk to a running `noteflow serve`: `diarize FILE --server URL` and
//! `jobs start|status|watch|cancel|list`, through the resilient client.
//!
//! Exit codes (also for scripts): 0 success, 1 error (bad input, refused request), 2 the job failed,
//! 3 the job was cancelled, 4 timed out (the job stopped making progress or the deadline passed),
//! 5 the server is unreachable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use noteflow_client::proto as pb;
use noteflow_client::{
    CancelOutcome, Client, ClientConfig, ClientError, JobEvent, JobHandle, JobOutcome,
    SpeakerRequest,
};
use noteflow_diarize::{Diarization, Turn};
use serde_json::json;

use crate::diarize::OutputFormat;
use crate::SpeakerArgs;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_JOB_FAILED: u8 = 2;
pub const EXIT_CANCELLED: u8 = 3;
pub const EXIT_TIMED_OUT: u8 = 4;
pub const EXIT_UNREACHABLE: u8 = 5;

/// Where the server is and how patiently to follow jobs.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The job service's address.
    #[arg(
        long,
        global = true,
        env = "NOTEFLOW_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Seconds between status polls (when the watch stream is not available).
    #[arg(long, global = true, default_value_t = 2.0)]
    poll_interval: f64,
    /// Give up on a job whose status and progress did not change over this many polls.
    #[arg(long, global = true, default_value_t = 60)]
    max_unchanged_polls: u32,
    /// Give up on a job not finished after this many seconds (default: no limit).
    #[arg(long, global = true)]
    deadline: Option<f64>,
    /// Follow by polling only (no watch stream).
    #[arg(long, global = true)]
    no_watch: bool,
}

impl ServerArgs {
    /// The defaults, for the server at `server`.
    pub fn at(server: &str) -> Self {
        Self {
            server: server.to_string(),
            poll_interval: 2.0,
            max_unchanged_polls: 60,
            deadline: None,
            no_watch: false,
        }
    }

    pub fn client(&self) -> Result<Client> {
        let mut config = ClientConfig::default();
        config.follow.poll_interval = Duration::try_from_secs_f64(self.poll_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .context("--poll-interval must be a positive number of seconds")?;
        config.follow.max_unchanged_polls = self.max_unchanged_polls.max(1);
        config.follow.overall_deadline = match self.deadline {
            Some(s) => Some(
                Duration::try_from_secs_f64(s)
                    .context("--deadline must be a positive number of seconds")?,
            ),
            None => None,
        };
        config.follow.use_watch = !self.no_watch;
        Ok(Client::new(&self.server, config)?)
    }
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Upload an audio file (or use an existing meeting) and start a diarization job.
    Start(StartArgs),
    /// Print a job's status.
    Status(JobArgs),
    /// Follow a job to its end, printing its progress.
    Watch(JobArgs),
    /// Cancel a job and print its confirmed final state.
    Cancel(JobArgs),
    /// List jobs, newest first.
    List(ListArgs),
}

#[derive(Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: JobsCommand,
    #[command(flatten)]
    server: ServerArgs,
    /// Machine-readable output (one JSON document, or one JSON object per line for `watch`).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args)]
pub struct StartArgs {
    /// Audio file to upload as a new meeting.
    #[arg(required_unless_present = "meeting", conflicts_with = "meeting")]
    file: Option<PathBuf>,
    /// An existing meeting with audio.
    #[arg(long)]
    meeting: Option<String>,
    #[command(flatten)]
    speakers: SpeakerArgs,
}

#[derive(Args)]
pub struct JobArgs {
    job_id: String,
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    meeting: Option<String>,
    /// queued, running, completed, failed or cancelled.
    #[arg(long)]
    status: Option<String>,
    #[arg(long, default_value_t = 50)]
    page_size: u32,
    #[arg(long)]
    page_token: Option<String>,
}

fn speaker_request(args: &SpeakerArgs) -> SpeakerRequest {
    SpeakerRequest {
        exactly: args.speakers.map(|n| n as u32),
        min: args.min_speakers.map(|n| n as u32),
        max: args.max_speakers.map(|n| n as u32),
    }
}

fn status_name(status: i32) -> &'static str {
    match pb::JobStatus::try_from(status) {
        Ok(pb::JobStatus::Queued) => "QUEUED",
        Ok(pb::JobStatus::Running) => "RUNNING",
        Ok(pb::JobStatus::Completed) => "COMPLETED",
        Ok(pb::JobStatus::Failed) => "FAILED",
        Ok(pb::JobStatus::Cancelled) => "CANCELLED",
        _ => "UNKNOWN",
    }
}

fn timestamp(t: &Option<prost_types::Timestamp>) -> serde_json::Value {
    t.as_ref().map_or(serde_json::Value::Null, |t| {
        json!(t.seconds as f64 + t.nanos as f64 / 1e9)
    })
}

pub fn job_json(job: &pb::DiarizationJob) -> serde_json::Value {
    json!({
        "job_id": job.job_id,
        "meeting_id": job.meeting_id,
        "status": status_name(job.status),
        "progress_percent": job.progress_percent,
        "speaker_ids": job.speaker_ids,
        "segments_updated": job.segments_updated,
        "error_message": job.error_message,
        "attempt": job.attempt,
        "created_at": timestamp(&job.created_at),
        "started_at": timestamp(&job.started_at),
        "finished_at": timestamp(&job.finished_at),
        "storage_mode": pb::StorageMode::try_from(job.storage_mode).map_or("UNKNOWN", |m| m.as_str_name()),
        "warnings": job.warnings,
        "cancel_requested": job.cancel_requested,
    })
}

fn event_json(event: &JobEvent) -> serde_json::Value {
    match event {
        JobEvent::Progress { job, .. } => json!({"event": "progress", "job": job_json(job)}),
        JobEvent::Retrying {
            attempt,
            error,
            wait,
        } => {
            json!({"event": "retrying", "attempt": attempt, "error": error, "wait_seconds": wait.as_secs_f64()})
        }
        JobEvent::Warning(text) => json!({"event": "warning", "message": text}),
        JobEvent::SwitchedToPolling { reason } => json!({"event": "polling", "reason": reason}),
        JobEvent::Completed(result) => json!({
            "event": "completed",
            "speaker_ids": result.speaker_ids,
            "turns": result.turns.iter().map(|t| json!({"start": t.start_seconds, "end": t.end_seconds, "speaker": t.speaker})).collect::<Vec<_>>(),
        }),
        JobEvent::Failed { message } => json!({"event": "failed", "message": message}),
        JobEvent::Cancelled => json!({"event": "cancelled"}),
        JobEvent::TimedOut { message } => json!({"event": "timed_out", "message": message}),
        JobEvent::GaveUp { error } => json!({"event": "gave_up", "error": error}),
    }
}

/// The exit code for a client error.
pub fn error_exit(error: &ClientError) -> u8 {
    match error {
        ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
        ClientError::Stalled { .. }
        | ClientError::DeadlineExceeded { .. }
        | ClientError::CancelUnconfirmed { .. } => EXIT_TIMED_OUT,
        _ => EXIT_ERROR,
    }
}

fn outcome_exit(outcome: &JobOutcome) -> u8 {
    match outcome {
        JobOutcome::Completed { .. } => EXIT_OK,
        JobOutcome::Failed { .. } => EXIT_JOB_FAILED,
        JobOutcome::Cancelled { .. } => EXIT_CANCELLED,
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs the command; returns the process exit code.
pub fn jobs(args: JobsArgs) -> Result<u8> {
    let json = args.json;
    runtime()?.block_on(async move {
        // Made inside the runtime: its connection is opened lazily by a task of this runtime.
        let client = args.server.client()?;
        let result: Result<u8, ClientError> = async { match args.command {
            JobsCommand::Start(start) => {
                let meeting = match (&start.file, &start.meeting) {
                    (Some(file), _) => client.upload_file(file).await?.0,
                    (None, Some(meeting)) => meeting.clone(),
                    (None, None) => unreachable!("clap requires one"),
                };
                let started = client.start_job(&meeting, speaker_request(&start.speakers)).await?;
                if json {
                    println!("{}", json!({"job_id": started.job_id, "meeting_id": meeting, "created": started.created, "request_id": started.request_id, "warnings": started.warnings, "job": job_json(&started.job)}));
                } else {
                    for warning in &started.warnings {
                        eprintln!("warning: {warning}");
                    }
                    println!("{}", started.job_id);
                }
                Ok(EXIT_OK)
            }
            JobsCommand::Status(job) => {
                let status = client.status(&job.job_id).await?;
                if json {
                    println!("{}", job_json(&status));
                } else {
                    print_status(&status);
                }
                Ok(EXIT_OK)
            }
            JobsCommand::Watch(job) => {
                let handle = client.follow(&job.job_id);
                let outcome = follow_printing(handle, json, false).await;
                match outcome {
                    Ok(outcome) => Ok(outcome_exit(&outcome)),
                    Err(e) => Err(e),
                }
            }
            JobsCommand::Cancel(job) => {
                let outcome = client.cancel(&job.job_id).await?;
                let confirmed = outcome.job();
                if json {
                    println!("{}", json!({"cancelled": matches!(outcome, CancelOutcome::Cancelled(_)), "job": job_json(confirmed)}));
                } else {
                    println!("{} {}", confirmed.job_id, status_name(confirmed.status));
                }
                Ok(match outcome {
                    CancelOutcome::Cancelled(_) => EXIT_CANCELLED,
                    CancelOutcome::AlreadyEnded(job) if job.status == pb::JobStatus::Failed as i32 => EXIT_JOB_FAILED,
                    CancelOutcome::AlreadyEnded(_) => EXIT_OK,
                })
            }
            JobsCommand::List(list) => {
                let status = match list.status.as_deref().map(str::to_ascii_uppercase).as_deref() {
                    None => pb::JobStatus::Unspecified,
                    Some(name) => pb::JobStatus::from_str_name(&format!("JOB_STATUS_{name}")).ok_or_else(|| ClientError::BadConfig(
                        format!("--status '{name}' is not one of queued, running, completed, failed, cancelled"),
                    ))?,
                };
                let page = client
                    .list(pb::ListDiarizationJobsRequest {
                        meeting_id: list.meeting.unwrap_or_default(),
                        status: status as i32,
                        page_size: list.page_size,
                        page_token: list.page_token.unwrap_or_default(),
                    })
                    .await?;
                if json {
                    println!("{}", json!({"jobs": page.jobs.iter().map(job_json).collect::<Vec<_>>(), "next_page_token": page.next_page_token}));
                } else {
                    for job in &page.jobs {
                        println!("{}  {:<9} {:>5.1}%  meeting {}  attempt {}", job.job_id, status_name(job.status), job.progress_percent, job.meeting_id, job.attempt);
                    }
                    if !page.next_page_token.is_empty() {
                        println!("(more: --page-token {})", page.next_page_token);
                    }
                }
                Ok(EXIT_OK)
            }
        } }
        .await;
        match result {
            Ok(code) => Ok(code),
            Err(error) => {
                eprintln!("error: {error}");
                Ok(error_exit(&error))
            }
        }
    })
}

fn print_status(job: &pb::DiarizationJob) {
    println!("job        {}", job.job_id);
    println!("meeting    {}", job.meeting_id);
    println!(
        "status     {} ({:.1}%)",
        status_name(job.status),
        job.progress_percent
    );
    println!("attempt    {}", job.attempt);
    if !job.speaker_ids.is_empty() {
        println!("speakers   {}", job.speaker_ids.join(", "));
        println!("segments   {} relabelled", job.segments_updated);
    }
    if !job.error_message.is_empty() {
        println!("message    {}", job.error_message);
    }
    for warning in &job.warnings {
        println!("warning    {warning}");
    }
}

/// Prints the handle's events (JSON lines, or human lines on stderr with a progress bar) until the
/// follow ends.
async fn follow_printing(
    mut handle: JobHandle,
    json: bool,
    quiet_progress: bool,
) -> Result<JobOutcome, ClientError> {
    let mut bar_shown = false;
    while let Some(event) = handle.next_event().await {
        if json {
            println!("{}", event_json(&event));
            continue;
        }
        match &event {
            JobEvent::Progress {
                status, percent, ..
            } if !quiet_progress => {
                let filled = (*percent / 5.0).round().clamp(0.0, 20.0) as usize;
                let label = status_name(*status as i32);
                eprint!("\r[{:<20}] {percent:5.1}% {label:<9}", "#".repeat(filled));
                let _ = std::io::stderr().flush();
                bar_shown = true;
            }
            JobEvent::Progress { .. } => {}
            other => {
                if bar_shown {
                    eprintln!();
                    bar_shown = false;
                }
                match other {
                    JobEvent::Retrying {
                        attempt,
                        error,
                        wait,
                    } => eprintln!(
                        "retrying (attempt {attempt}, in {:.1} s): {error}",
                        wait.as_secs_f64()
                    ),
                    JobEvent::Warning(text) => eprintln!("warning: {text}"),
                    JobEvent::SwitchedToPolling { reason } => {
                        eprintln!("watch stream lost ({reason}); polling")
                    }
                    JobEvent::Completed(_) => eprintln!("completed"),
                    JobEvent::Failed { message } => eprintln!("job failed: {message}"),
                    JobEvent::Cancelled => eprintln!("cancelled"),
                    JobEvent::TimedOut { message } => eprintln!("timed out: {message}"),
                    JobEvent::GaveUp { .. } | JobEvent::Progress { .. } => {}
                }
            }
        }
    }
    if bar_shown {
        eprintln!();
    }
    handle.finish().await
}

/// `diarize FILE --server URL`: upload, start, show progress, print the turns. Ctrl-C cancels the
/// job and reports its confirmed final state.
pub fn diarize(
    file: &Path,
    speakers: &SpeakerArgs,
    format: OutputFormat,
    server: &ServerArgs,
) -> Result<u8> {
    runtime()?.block_on(async move {
        let client = server.client()?;
        // Listening from the start, so a Ctrl-C during upload or start is not the default kill (which
        // could leave a job nobody follows); one pressed while the job is being started is acted on
        // as soon as its id is known.
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("cannot listen for Ctrl-C")?;
        let result: Result<u8, ClientError> = async {
            let (meeting, uploaded) = tokio::select! {
                uploaded = client.upload_file(file) => uploaded?,
                _ = interrupt.recv() => {
                    eprintln!("interrupted during the upload; no job was started");
                    return Ok(EXIT_CANCELLED);
                }
            };
            let started = client.start_job(&meeting, speaker_request(speakers)).await?;
            eprintln!("job {} for {}", started.job_id, file.display());
            let handle = client.follow(&started.job_id);
            let outcome = tokio::select! {
                outcome = follow_printing(handle, false, false) => outcome?,
                _ = interrupt.recv() => {
                    eprintln!("\ncancelling job {} (Ctrl-C again to stop waiting) ...", started.job_id);
                    let confirmed = tokio::select! {
                        confirmed = client.cancel(&started.job_id) => confirmed?,
                        _ = interrupt.recv() => {
                            eprintln!("stopped waiting; job {} may still be running", started.job_id);
                            return Ok(EXIT_ERROR);
                        }
                    };
                    let job = confirmed.job();
                    eprintln!("job {} is {}", job.job_id, status_name(job.status));
                    match confirmed {
                        CancelOutcome::Cancelled(_) => return Ok(EXIT_CANCELLED),
                        CancelOutcome::AlreadyEnded(job) if job.status == pb::JobStatus::Completed as i32 => {
                            // It finished first: the turns are there, so print them.
                            let result = client.result(&job.job_id).await?;
                            JobOutcome::Completed { job, result }
                        }
                        CancelOutcome::AlreadyEnded(job) => JobOutcome::Failed { job },
                    }
                }
            };
            if let JobOutcome::Completed { result, .. } = &outcome {
                print_turns(file, format, result, uploaded.duration_seconds);
            }
            Ok(outcome_exit(&outcome))
        }
        .await;
        match result {
            Ok(code) => Ok(code),
            Err(error) => {
                eprintln!("error: {error}");
                Ok(error_exit(&error))
            }
        }
    })
}

fn print_turns(file: &Path, format: OutputFormat, result: &pb::DiarizationResult, duration: f64) {
    let diarization = Diarization {
        turns: result
            .turns
            .iter()
            .map(|t| Turn::new(t.start_seconds, t.end_seconds, t.speaker.clone()))
            .collect(),
        speakers: result.speaker_ids.clone(),
        duration,
    };
    match format {
        OutputFormat::Rttm => {
            let file_id = file
                .file_stem()
                .map_or("audio".into(), |s| s.to_string_lossy());
            print!("{}", diarization.to_rttm(&file_id));
        }
        OutputFormat::Json => println!("{}", diarization.to_json()),
    }
}
