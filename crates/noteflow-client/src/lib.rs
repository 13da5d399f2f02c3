//! The resilient client of the NoteFlow job service: what a desktop app or a script uses to start a
//! diarization job and see it through.
//!
//! Layout:
//! - [`client`]: [`Client`] — every call has its own deadline; transient errors (UNAVAILABLE,
//!   DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) are retried with exponential backoff and jitter,
//!   honouring the server's retry hint; a retried start reuses its request id; cancels are confirmed
//!   by the job's stored final state;
//! - [`follow`]: [`JobHandle`] — a job followed through the watch stream, falling back to polling,
//!   given up on when it stops changing; its task stops when the handle or the client is dropped;
//! - [`events`]: [`JobEvent`]s for UIs, and the [`JobOutcome`];
//! - [`retry`]: [`classify`] (the one transient/fatal decision) and [`RetryPolicy`];
//! - [`config`] and [`error`].

pub mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod follow;
pub mod retry;

pub use client::{CancelOutcome, Client, SpeakerRequest, StartedJob};
pub use config::{ClientConfig, FollowConfig};
pub use error::ClientError;
pub use events::{JobEvent, JobOutcome};
pub use follow::JobHandle;
pub use noteflow_proto::v1 as proto;
pub use retry::{classify, effective_code, ErrorClass, RetryPolicy};
