//! The engine's output: speaker turns over an audio file.

use serde::{Deserialize, Serialize};

/// One stretch of time in which one speaker talks. Turns of different speakers may overlap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Seconds from the start of the audio.
    pub start: f64,
    /// Seconds from the start of the audio; always > `start`.
    pub end: f64,
    pub speaker: String,
}

impl Turn {
    pub fn new(start: f64, end: f64, speaker: impl Into<String>) -> Self {
        Self {
            start,
            end,
            speaker: speaker.into(),
        }
    }

    pub fn duration(&self) -> f64 {
        self.end - self.start
    }
}

/// Who spoke when in one recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diarization {
    /// Sorted by start time, then end time.
    pub turns: Vec<Turn>,
    /// Speaker labels in order of first appearance.
    pub speakers: Vec<String>,
    /// Length of the audio in seconds.
    pub duration: f64,
}
