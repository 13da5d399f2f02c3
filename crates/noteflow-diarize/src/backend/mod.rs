//! Inference back-ends: who runs the two neural networks.
//!
//! The pipeline only needs two calls: "segment this 10 s window" and "embed these features". The
//! default back-end is tract (pure Rust, nothing to install); ONNX Runtime is an optional cargo
//! feature that loads `libonnxruntime.so` at run time for speed.

use crate::models::{ModelDir, ModelError};

#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;
pub mod tract;

/// Samples in one segmentation window: 10 s at 16 kHz, the length the model was trained on.
pub const WINDOW_SAMPLES: usize = 160_000;
/// Output frames per window of segmentation-3.0.
pub const FRAMES_PER_WINDOW: usize = 589;
/// Powerset classes: {}, {1}, {2}, {3}, {1,2}, {1,3}, {2,3}.
pub const POWERSET_CLASSES: usize = 7;
/// Fbank frames per embedding call (2 s). CAM++ runs on fixed-length chunks so that tract can use a
/// static plan (about 3× faster than a symbolic length) and both back-ends compute the very same
/// embeddings; the pipeline embeds longer speech chunk by chunk and averages.
///
/// The length must make ceil(frames / 2) a multiple of 100: CAM++'s AveragePool layers (window 100,
/// `ceil_mode`) end on a partial window otherwise, which tract 0.23 averages differently from
/// PyTorch and ONNX Runtime (cosine 0.93–0.98 against them at 300 frames, 1.000000 at 200 or 400).
pub const EMBEDDING_CHUNK_FRAMES: usize = 200;
/// Dimension of a CAM++ embedding.
pub const EMBEDDING_DIM: usize = 192;

/// The two networks of the pipeline, behind one interface so back-ends are interchangeable.
/// Implementations must be usable from several threads at once.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;

    /// Segmentation of one window of `WINDOW_SAMPLES` samples in [-1, 1]:
    /// `FRAMES_PER_WINDOW × POWERSET_CLASSES` log-probabilities, row-major.
    fn segment(&self, window: &[f32]) -> Result<Vec<f32>, ModelError>;

    /// Speaker embedding of one chunk of mean-normalised fbank features, row-major
    /// `[EMBEDDING_CHUNK_FRAMES, 80]`.
    fn embed(&self, features: &[f32]) -> Result<Vec<f32>, ModelError>;
}

/// Which back-end to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    #[default]
    Tract,
    OnnxRuntime,
}

impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tract" => Ok(Self::Tract),
            "ort" | "onnxruntime" => Ok(Self::OnnxRuntime),
            other => Err(format!(
                "unknown back-end {other:?}: expected \"tract\" or \"onnxruntime\""
            )),
        }
    }
}

/// Load the chosen back-end from `models`.
pub fn load(kind: BackendKind, models: &ModelDir) -> Result<Box<dyn Backend>, ModelError> {
    match kind {
        BackendKind::Tract => Ok(Box::new(tract::TractBackend::load(models)?)),
        #[cfg(feature = "onnxruntime")]
        BackendKind::OnnxRuntime => Ok(Box::new(onnxruntime::OrtBackend::load(models)?)),
        #[cfg(not(feature = "onnxruntime"))]
        BackendKind::OnnxRuntime => Err(ModelError::Load {
            file_name: "libonnxruntime",
            message:
                "this build has no ONNX Runtime back-end; rebuild with `--features onnxruntime`"
                    .into(),
        }),
    }
}

/// A loaded back-end can be shared: several diarizers (with different settings, or a wrapper
/// that observes calls) may use one copy of the models.
impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn segment(&self, window: &[f32]) -> Result<Vec<f32>, ModelError> {
        (**self).segment(window)
    }

    fn embed(&self, features: &[f32]) -> Result<Vec<f32>, ModelError> {
        (**self).embed(features)
    }
}
