//! What a followed job reports, for UIs: a stream of [`JobEvent`]s ending in one final event.

use std::time::Duration;

use noteflow_proto::v1 as pb;
use tokio::sync::mpsc;

use crate::error::ClientError;

#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// The job's status or progress changed (the first status seen is reported too).
    Progress {
        status: pb::JobStatus,
        percent: f32,
        job: pb::DiarizationJob,
    },
    /// A call failed transiently and will be tried again after `wait` (attempt is 1-based and
    /// counts consecutive failures).
    Retrying {
        attempt: u32,
        error: String,
        wait: Duration,
    },
    /// Something a user should know, e.g. that the server keeps jobs in memory only. Each distinct
    /// warning is reported once per followed job.
    Warning(String),
    /// The watch stream broke or is not offered; the job is followed by polling from now on.
    SwitchedToPolling {
        reason: String,
    },
    // Final events: exactly one of these ends a successful follow.
    Completed(Box<pb::DiarizationResult>),
    Failed {
        message: String,
    },
    Cancelled,
    /// Following stopped without the job ending: no progress for too long, or the overall
    /// deadline passed. The job may still be running.
    TimedOut {
        message: String,
    },
    /// Following stopped on an error: the server unreachable past the retries, or a refusal such
    /// as NOT_FOUND (the job was deleted). The job may still be running unless it is gone.
    GaveUp {
        error: String,
    },
}

/// How a followed job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Completed {
        job: pb::DiarizationJob,
        result: pb::DiarizationResult,
    },
    Failed {
        job: pb::DiarizationJob,
    },
    Cancelled {
        job: pb::DiarizationJob,
    },
}

impl JobOutcome {
    pub fn job(&self) -> &pb::DiarizationJob {
        match self {
            JobOutcome::Completed { job, .. }
            | JobOutcome::Failed { job }
            | JobOutcome::Cancelled { job } => job,
        }
    }
}

/// Result of following, for callers that only want the end.
pub type FollowResult = Result<JobOutcome, ClientError>;

/// Sends an event to a handle's receiver; a dropped receiver is fine (nobody is listening).
pub(crate) fn emit(events: &mpsc::UnboundedSender<JobEvent>, event: JobEvent) {
    let _ = events.send(event);
}
