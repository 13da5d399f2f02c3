//! The client's typed errors.

use std::time::Duration;

use tonic::Code;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Transient failures went on past the retry budget.
    #[error("{}", unreachable_message(.job_id.as_deref(), *.retries, .last_error))]
    Unreachable {
        /// The job being followed, if any: it may still be running on the server.
        job_id: Option<String>,
        retries: u32,
        last_error: String,
    },
    /// The server refused the request for a reason a retry cannot change (NOT_FOUND,
    /// INVALID_ARGUMENT, FAILED_PRECONDITION, PERMISSION_DENIED, ...).
    #[error("the server refused {what}: {message} ({code:?})")]
    Rejected {
        what: String,
        code: Code,
        message: String,
    },
    /// The job's status and progress did not change over `unchanged_polls` polls.
    #[error("job {job_id} made no progress over {unchanged_polls} checks ({waited:?}); giving up on it (it may be stuck on the server)")]
    Stalled {
        job_id: String,
        unchanged_polls: u32,
        waited: Duration,
    },
    /// The caller's overall deadline passed before the job ended.
    #[error("job {job_id} did not finish within {deadline:?}; it may still be running")]
    DeadlineExceeded { job_id: String, deadline: Duration },
    /// A cancel was sent but the job did not reach a final state within the wait.
    #[error("cancel of job {job_id} was sent but not confirmed within {waited:?}; last status {last_status}")]
    CancelUnconfirmed {
        job_id: String,
        waited: Duration,
        last_status: String,
    },
    #[error("cannot read {what}: {message}")]
    Io { what: String, message: String },
    #[error("invalid client settings: {0}")]
    BadConfig(String),
    #[error("internal error: {0}")]
    Crashed(String),
    #[error("invalid server address '{address}': {reason}")]
    BadAddress { address: String, reason: String },
    /// The client (or the handle) was dropped while the operation ran.
    #[error("the client was dropped")]
    Dropped,
}

fn unreachable_message(job_id: Option<&str>, retries: u32, last_error: &str) -> String {
    let job = match job_id {
        Some(id) => format!("; job {id} may still be running on the server"),
        None => String::new(),
    };
    format!("the server is unreachable (gave up after {retries} retries; last error: {last_error}){job}")
}

impl ClientError {
    /// The status code of a rejection, if this is one.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}
