//! The NoteFlow diarization job service.
//!
//! Layout:
//! - [`config`]: settings and their defaults;
//! - [`app`]: [`Application::build`] opens the store, recovers interrupted jobs and binds the ports;
//!   [`Application::run_until`] serves until shut down (tests build it on port 0);
//! - [`service`]: the gRPC handlers (MeetingService, DiarizationService), input validation, status
//!   codes;
//! - [`runner`]: claims queued jobs and runs them with bounded concurrency, heartbeats, timeouts and
//!   cancellation;
//! - [`diarizer`]: the [`SpeakerDiarizer`] seam between runner and engine;
//! - `testing` (feature `testing`): a controllable diarizer double for lifecycle tests and a WAV
//!   writer, for this crate's tests, the client's and CLI's tests and the status bench;
//! - [`events`]: in-process notices of job changes, for watchers;
//! - [`observe`]: the one layer every gRPC call passes through: RPC metrics, a tracing span and the
//!   [`caller::Caller`] identity per-caller limits count against;
//! - [`uploads`]: upload slots, shared fairly between callers;
//! - [`metrics`]: Prometheus metrics over HTTP;
//! - [`shutdown`]: waiting for SIGINT or SIGTERM.
//!
//! The job state machine itself is in `noteflow-store`'s guarded updates; this crate knows nothing
//! of SQL.

pub mod app;
pub mod caller;
pub mod config;
pub mod diarizer;
pub mod events;
pub mod metrics;
pub mod observe;
pub mod runner;
pub mod service;
pub mod shutdown;
#[cfg(feature = "testing")]
pub mod testing;
pub mod uploads;

pub use app::{Application, ServeError, StartError};
pub use config::{DatabaseConfig, RunnerConfig, ServerConfig};
pub use diarizer::{RunError, SpeakerDiarizer};
pub use service::MEMORY_MODE_WARNING;
