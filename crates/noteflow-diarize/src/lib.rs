pub mod diarization;
pub use diarization::{Diarization, Turn};
