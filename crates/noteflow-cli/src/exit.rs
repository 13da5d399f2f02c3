//! The process's exit codes, one meaning each, for scripts: 0 success, 1 error (bad input, a
//! refused request), 2 the job failed, 3 the job was cancelled, 4 timed out (the job stopped making
//! progress, the deadline passed, or a cancel was not confirmed), 5 the server is unreachable.

use noteflow_client::proto as pb;
use noteflow_client::{CancelOutcome, ClientError, JobOutcome};

pub const OK: u8 = 0;
pub const ERROR: u8 = 1;
pub const JOB_FAILED: u8 = 2;
pub const CANCELLED: u8 = 3;
pub const TIMED_OUT: u8 = 4;
pub const UNREACHABLE: u8 = 5;

pub fn of_error(error: &ClientError) -> u8 {
    match error {
        ClientError::Unreachable { .. } => UNREACHABLE,
        ClientError::Stalled { .. }
        | ClientError::DeadlineExceeded { .. }
        | ClientError::CancelUnconfirmed { .. } => TIMED_OUT,
        _ => ERROR,
    }
}

pub fn of_outcome(outcome: &JobOutcome) -> u8 {
    match outcome {
        JobOutcome::Completed { .. } => OK,
        JobOutcome::Failed { .. } => JOB_FAILED,
        JobOutcome::Cancelled { .. } => CANCELLED,
    }
}

/// A confirmed cancel says how the job really ended: cancelled, or completed or failed first.
pub fn of_cancel(outcome: &CancelOutcome) -> u8 {
    match outcome {
        CancelOutcome::Cancelled(_) => CANCELLED,
        CancelOutcome::AlreadyEnded(job) if job.status == pb::JobStatus::Failed as i32 => {
            JOB_FAILED
        }
        CancelOutcome::AlreadyEnded(_) => OK,
    }
}

/// The exit code of a command that talked to the service; its error, if any, is printed first.
pub fn report(result: Result<u8, ClientError>) -> u8 {
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        of_error(&error)
    })
}
