//! The seam between the job runner and the engine: the runner calls a [`SpeakerDiarizer`], which is
//! the real engine in production and, in lifecycle tests that need deterministic timing, a
//! controllable double (`ControlledDiarizer`, in the `testing` module behind the feature of that
//! name). The double depends on this seam, never the other way round.

use std::sync::atomic::AtomicBool;

use noteflow_diarize::{Audio16k, Diarization, DiarizeError, Diarizer, SpeakerConstraints};

/// Why a run produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

/// Diarizes decoded audio. Runs on a blocking thread; must check `cancel` often and call `progress`
/// with the fraction done (0..=1) as it advances.
pub trait SpeakerDiarizer: Send + Sync + 'static {
    fn diarize(
        &self,
        audio: &Audio16k,
        constraints: SpeakerConstraints,
        progress: &mut dyn FnMut(f32),
        cancel: &AtomicBool,
    ) -> Result<Diarization, RunError>;
}

impl SpeakerDiarizer for Diarizer {
    fn diarize(
        &self,
        audio: &Audio16k,
        constraints: SpeakerConstraints,
        progress: &mut dyn FnMut(f32),
        cancel: &AtomicBool,
    ) -> Result<Diarization, RunError> {
        Diarizer::diarize(self, audio, constraints, progress, cancel).map_err(|e| match e {
            DiarizeError::Cancelled => RunError::Cancelled,
            other => RunError::Failed(format!("diarization failed: {other}")),
        })
    }
}
