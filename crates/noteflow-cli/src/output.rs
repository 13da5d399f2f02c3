//! Everything the commands print: speaker turns (RTTM or JSON) on stdout; jobs and their events as
//! JSON on stdout; and for people, job statuses and rows on stdout, event lines and a progress bar
//! on stderr.

use std::io::Write;
use std::path::Path;

use clap::ValueEnum;
use noteflow_client::proto as pb;
use noteflow_client::{status_name, FollowResult, JobEvent, JobHandle, StartedJob};
use noteflow_diarize::{Diarization, Turn};
use serde_json::{json, Value};

/// How speaker turns are printed.
#[derive(Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Rttm,
    Json,
}

/// A job's result as the engine's own type, which knows how to print itself.
pub fn diarization(result: &pb::DiarizationResult, duration_seconds: f64) -> Diarization {
    Diarization {
        turns: result
            .turns
            .iter()
            .map(|t| Turn::new(t.start_seconds, t.end_seconds, t.speaker.clone()))
            .collect(),
        speakers: result.speaker_ids.clone(),
        duration: duration_seconds,
    }
}

/// Prints the turns of `file` on stdout; RTTM names the file by its stem.
pub fn print_turns(file: &Path, format: OutputFormat, diarization: &Diarization) {
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

fn timestamp(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref().map_or(Value::Null, |t| {
        json!(t.seconds as f64 + t.nanos as f64 / 1e9)
    })
}

pub fn job_json(job: &pb::DiarizationJob) -> Value {
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

pub fn started_json(meeting_id: &str, started: &StartedJob) -> Value {
    json!({
        "job_id": started.job_id,
        "meeting_id": meeting_id,
        "created": started.created,
        "request_id": started.request_id,
        "warnings": started.warnings,
        "job": job_json(&started.job),
    })
}

pub fn page_json(page: &pb::ListDiarizationJobsResponse) -> Value {
    json!({
        "jobs": page.jobs.iter().map(job_json).collect::<Vec<_>>(),
        "next_page_token": page.next_page_token,
    })
}

pub fn event_json(event: &JobEvent) -> Value {
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

pub fn print_status(job: &pb::DiarizationJob) {
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

/// One line of a job list.
pub fn print_job_row(job: &pb::DiarizationJob) {
    println!(
        "{}  {:<9} {:>5.1}%  meeting {}  attempt {}",
        job.job_id,
        status_name(job.status),
        job.progress_percent,
        job.meeting_id,
        job.attempt
    );
}

/// A progress bar redrawn in place on stderr.
#[derive(Default)]
pub struct ProgressBar {
    /// What is on screen now (tenths of a percent, label), if the bar's line is open.
    drawn: Option<(i32, String)>,
}

impl ProgressBar {
    pub fn show(&mut self, percent: f32, label: &str) {
        let now = ((percent * 10.0).round() as i32, label.to_string());
        if self.drawn.as_ref() == Some(&now) {
            return;
        }
        let filled = (percent / 5.0).round().clamp(0.0, 20.0) as usize;
        eprint!("\r[{:<20}] {percent:5.1}% {label:<9}", "#".repeat(filled));
        let _ = std::io::stderr().flush();
        self.drawn = Some(now);
    }

    /// Ends the bar's line, so what is printed next starts on a line of its own.
    pub fn end_line(&mut self) {
        if self.drawn.take().is_some() {
            eprintln!();
        }
    }
}

/// How a followed job's events are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EventDisplay {
    /// One JSON object per event on stdout.
    Json,
    /// For people, on stderr: a progress bar and a line for every other event.
    Progress,
    /// For people, on stderr: only what needs attention (retries, warnings, a switch to polling,
    /// and how a job that did not complete ended).
    Quiet,
}

/// Shows the handle's events until the follow ends; returns how it ended.
pub async fn print_events(mut handle: JobHandle, display: EventDisplay) -> FollowResult {
    let mut bar = ProgressBar::default();
    while let Some(event) = handle.next_event().await {
        match (&event, display) {
            (_, EventDisplay::Json) => println!("{}", event_json(&event)),
            (
                JobEvent::Progress {
                    status, percent, ..
                },
                EventDisplay::Progress,
            ) => {
                bar.show(*percent, &status_name(*status as i32));
            }
            (JobEvent::Progress { .. } | JobEvent::Completed(_), EventDisplay::Quiet) => {}
            // Printed by whoever handles the error the follow ends with.
            (JobEvent::GaveUp { .. }, _) => {}
            (other, _) => {
                bar.end_line();
                print_event_line(other);
            }
        }
    }
    bar.end_line();
    handle.finish().await
}

fn print_event_line(event: &JobEvent) {
    match event {
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
