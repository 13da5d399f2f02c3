//! The resilient client of the NoteFlow job service: what a desktop app or a script uses to start a
//! diarization job and see it through.
//!
//! Layout (each module imports only those listed after it):
//! - [`follow`]: [`Client::follow`] and its [`JobHandle`] — a job followed through the watch
//!   stream, falling back to polling, given up on when it stops changing; its task stops when the
//!   handle or the client is dropped;
//! - [`client`]: [`Client`] — uploading audio (streamed from the file), starting jobs (a retried
//!   start reuses its request id), reading and listing them, cancels confirmed by the job's stored
//!   final state;
//! - `call`: one call with its own deadline, transient errors (UNAVAILABLE, DEADLINE_EXCEEDED,
//!   RESOURCE_EXHAUSTED) retried with exponential backoff and jitter, honouring the server's hint;
//! - `upload`: an upload's messages, read from memory or a file as they are sent;
//! - [`events`]: [`JobEvent`]s for UIs, the [`JobOutcome`] and [`FollowResult`];
//! - [`status`]: [`is_terminal`] and [`status_name`] of a job status;
//! - [`config`]: settings and their defaults;
//! - [`retry`]: [`classify`] (the one transient/fatal decision) and [`RetryPolicy`];
//! - [`error`]: the typed [`ClientError`].

mod call;
pub mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod follow;
pub mod retry;
pub mod status;
mod upload;

pub use client::{CancelOutcome, Client, SpeakerRequest, StartedJob};
pub use config::{ClientConfig, FollowConfig};
pub use error::ClientError;
pub use events::{FollowResult, JobEvent, JobOutcome};
pub use follow::JobHandle;
pub use noteflow_proto::v1 as proto;
pub use retry::{classify, effective_code, ErrorClass, RetryPolicy};
pub use status::{is_terminal, status_name};
