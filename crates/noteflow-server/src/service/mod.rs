//! The gRPC handlers: [`meetings::Meetings`] and [`jobs::Jobs`] over one shared [`ServiceState`].

pub mod convert;
pub mod jobs;
pub mod meetings;
pub mod page_token;

use std::sync::Arc;
use std::time::Duration;

use noteflow_store::{JobStore, StorageMode};

use crate::events::JobEvents;
use crate::metrics::Metrics;
use crate::runner::Runner;
use crate::uploads::UploadSlots;

/// Shown to clients (and logged) whenever jobs live only in memory.
pub const MEMORY_MODE_WARNING: &str = "this server keeps jobs in memory only: every meeting and job is lost when it stops or restarts";

pub struct ServiceState {
    pub store: Arc<dyn JobStore>,
    pub runner: Arc<Runner>,
    pub events: JobEvents,
    pub metrics: Arc<Metrics>,
    pub mode: StorageMode,
    /// Warnings attached to every job response (the memory-mode warning, when it applies).
    pub warnings: Vec<String>,
    pub max_upload_bytes: usize,
    pub max_queued: u64,
    pub cancel_wait: Duration,
    /// Upload slots: uploads in progress (each holds its audio in memory while it is checked), at
    /// most a few per caller.
    pub uploads: Arc<UploadSlots>,
    pub upload_idle_timeout: Duration,
    pub upload_deadline: Duration,
    /// Issues and checks the page tokens of listings.
    pub page_tokens: page_token::PageTokens,
    /// Becomes true when the server shuts down: long-lived streams end so shutdown is not held up.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl ServiceState {
    pub fn job_message(&self, job: &noteflow_store::Job) -> noteflow_proto::v1::DiarizationJob {
        convert::job(job, self.mode, &self.warnings)
    }
}
