//! `noteflow jobs start|status|watch|cancel|list`: the job service's jobs from a script or a
//! terminal, through the resilient client. Exit codes: see [`crate::exit`].

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use noteflow_client::proto as pb;
use noteflow_client::{status_name, CancelOutcome, Client, ClientError};
use serde_json::json;

use crate::connect::ServerArgs;
use crate::exit;
use crate::output::{self, EventDisplay};
use crate::SpeakerArgs;

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
    /// Only jobs in this state.
    #[arg(long, value_enum, ignore_case = true)]
    status: Option<StatusFilter>,
    #[arg(long, default_value_t = 50)]
    page_size: u32,
    #[arg(long)]
    page_token: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusFilter {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl From<StatusFilter> for pb::JobStatus {
    fn from(filter: StatusFilter) -> Self {
        match filter {
            StatusFilter::Queued => pb::JobStatus::Queued,
            StatusFilter::Running => pb::JobStatus::Running,
            StatusFilter::Completed => pb::JobStatus::Completed,
            StatusFilter::Failed => pb::JobStatus::Failed,
            StatusFilter::Cancelled => pb::JobStatus::Cancelled,
        }
    }
}

/// Runs the command; returns the process exit code.
pub fn run(args: JobsArgs) -> Result<u8> {
    crate::runtime()?.block_on(async move {
        // Made inside the runtime: its connection is opened lazily by a task of this runtime.
        let client = args.server.client()?;
        Ok(exit::report(
            command(&client, args.command, args.json).await,
        ))
    })
}

async fn command(client: &Client, command: JobsCommand, json: bool) -> Result<u8, ClientError> {
    match command {
        JobsCommand::Start(start) => {
            let meeting = match (&start.file, start.meeting) {
                (Some(file), _) => {
                    let (meeting, uploaded) = client.upload_file(file).await?;
                    // On stderr in both output modes: stdout stays one JSON line or the job id.
                    for warning in &uploaded.warnings {
                        eprintln!("warning: {warning}");
                    }
                    meeting
                }
                (None, Some(meeting)) => meeting,
                (None, None) => unreachable!("clap requires one"),
            };
            let started = client.start_job(&meeting, start.speakers.request()).await?;
            if json {
                println!("{}", output::started_json(&meeting, &started));
            } else {
                for warning in &started.warnings {
                    eprintln!("warning: {warning}");
                }
                println!("{}", started.job_id);
            }
            Ok(exit::OK)
        }
        JobsCommand::Status(job) => {
            let status = client.status(&job.job_id).await?;
            if json {
                println!("{}", output::job_json(&status));
            } else {
                output::print_status(&status);
            }
            Ok(exit::OK)
        }
        JobsCommand::Watch(job) => {
            let display = if json {
                EventDisplay::Json
            } else {
                EventDisplay::Progress
            };
            let outcome = output::print_events(client.follow(&job.job_id), display).await?;
            Ok(exit::of_outcome(&outcome))
        }
        JobsCommand::Cancel(job) => {
            let outcome = client.cancel(&job.job_id).await?;
            let confirmed = outcome.job();
            if json {
                let cancelled = matches!(outcome, CancelOutcome::Cancelled(_));
                println!(
                    "{}",
                    json!({"cancelled": cancelled, "job": output::job_json(confirmed)})
                );
            } else {
                println!("{} {}", confirmed.job_id, status_name(confirmed.status));
            }
            Ok(exit::of_cancel(&outcome))
        }
        JobsCommand::List(list) => {
            let page = client
                .list(pb::ListDiarizationJobsRequest {
                    meeting_id: list.meeting.unwrap_or_default(),
                    status: list
                        .status
                        .map_or(pb::JobStatus::Unspecified, pb::JobStatus::from)
                        as i32,
                    page_size: list.page_size,
                    page_token: list.page_token.unwrap_or_default(),
                })
                .await?;
            if json {
                println!("{}", output::page_json(&page));
            } else {
                page.jobs.iter().for_each(output::print_job_row);
                if !page.next_page_token.is_empty() {
                    println!("(more: --page-token {})", page.next_page_token);
                }
            }
            Ok(exit::OK)
        }
    }
}
