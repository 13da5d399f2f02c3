//! NoteFlow's speaker diarization engine: audio in, speaker turns out.
//!
//! Layout, in the order data flows:
//! - [`audio`]: decode any WAV/FLAC/MP3/Ogg file or byte buffer to mono 16 kHz (streaming, `i16`).
//! - [`models`]: find the bundled ONNX models and check their sha256.
//! - [`backend`]: run the segmentation and embedding networks (tract by default, ONNX Runtime as a
//!   cargo feature).
//! - [`fbank`]: the Kaldi filterbank front end of the embedding model.
//! - [`pipeline`]: sliding-window segmentation, embeddings, clustering, reconstruction of turns
//!   (pyannote 3.1's recipe); progress callback and cancel flag.
//! - [`clustering`]: agglomerative clustering of embeddings.
//! - [`diarization`] and [`rttm`]: the result and its RTTM/JSON forms.
//! - [`scoring`]: DER and JER, as pyannote.metrics computes them, and the optimal assignment
//!   solver that both scoring and the pipeline's speaker mapping use.
//! - [`panic_message`]: the text of a caught panic (decoder, ONNX Runtime loader, model threads).
//!
//! The engine knows nothing of jobs or storage: the job service wraps [`Diarizer::diarize`].

pub mod audio;
pub mod backend;
pub mod clustering;
pub mod diarization;
pub mod fbank;
pub mod models;
mod panic;
pub mod pipeline;
pub mod rttm;
pub mod scoring;

pub use audio::{decode_bytes, decode_file, Audio16k, AudioError};
pub use backend::BackendKind;
pub use diarization::{Diarization, Turn};
pub use models::{ModelDir, ModelError};
pub use panic::panic_message;
pub use pipeline::{ConstraintError, DiarizeError, Diarizer, PipelineConfig, SpeakerConstraints};

impl Diarizer {
    /// Load the models from `models` into the chosen back-end and build a diarizer.
    pub fn load(
        kind: BackendKind,
        models: &ModelDir,
        config: PipelineConfig,
    ) -> Result<Self, ModelError> {
        Ok(Self::new(backend::load(kind, models)?, config))
    }
}
