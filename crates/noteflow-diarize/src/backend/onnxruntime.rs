//! Inference with ONNX Runtime, loaded at run time from `libonnxruntime.so`.
//!
//! Why a run-time library: the `ort` crate's own binary download cannot work offline or in CI, so
//! it is built with `load-dynamic` and pointed at the library from the official PyPI `onnxruntime`
//! wheel (`scripts/fetch-onnxruntime.sh` installs it in `<workspace>/.onnxruntime/`). A missing or
//! unusable library is an ordinary [`ModelError::Load`] telling how to get one: paths are checked
//! first, and the panic `ort` raises on a library it cannot use is caught (its message may still
//! reach stderr through the panic hook).
//!
//! Threading: the pipeline already runs one window per core, so every session runs on a single
//! intra-op thread (more would only oversubscribe the cores). `ort` 2.0.0-rc.10 needs `&mut` to run a
//! session, so each model keeps a small pool of sessions and a call borrows one for its duration:
//! calls on different threads never wait for each other, and the pool grows to the number of
//! threads that call at once (sessions are cheap: these models are a few MB).

use std::ffi::OsString;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use ort::execution_providers::CPUExecutionProvider;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use super::{Backend, EMBEDDING_DIM, FRAMES_PER_WINDOW, POWERSET_CLASSES, WINDOW_SAMPLES};
use crate::fbank::NUM_MEL_BINS;
use crate::models::{ModelDir, ModelError, ModelFile, EMBEDDING_CAMPPLUS, SEGMENTATION_DYNAMIC};
use crate::panic::panic_message;

/// Environment variable that names the ONNX Runtime library (the same one `ort` reads).
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The ONNX Runtime release this back-end is built for: `ort` 2.0.0-rc.10 speaks C API version 22,
/// refuses an older library and is untested with a newer one. `scripts/fetch-onnxruntime.sh` pins
/// 1.22.1.
pub const ONNXRUNTIME_VERSION: &str = "1.22";

/// What `ModelError::Load` names when the library itself is the problem.
const LIBRARY: &str = "libonnxruntime";

#[cfg(target_os = "linux")]
const LIB_FILE: &str = "libonnxruntime.so";
#[cfg(target_os = "macos")]
const LIB_FILE: &str = "libonnxruntime.dylib";
#[cfg(target_os = "windows")]
const LIB_FILE: &str = "onnxruntime.dll";
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
const LIB_FILE: &str = "libonnxruntime.so";

/// Segmentation export used here. ONNX Runtime runs the dynamic export as fast as the static one
/// (measured: 22.8 vs 22.9 ms per 10 s window, one thread), and it is the unmodified export.
const SEGMENTATION: ModelFile = SEGMENTATION_DYNAMIC;

/// ONNX Runtime back-end. Cheap to share: see the module docs for how threads are handled.
pub struct OrtBackend {
    segmentation: SessionPool,
    embedding: SessionPool,
}

impl OrtBackend {
    /// Verifies the model files, loads the ONNX Runtime library (once per process) and builds one
    /// session per model, so that a bad library or model fails here rather than mid-diarization.
    pub fn load(models: &ModelDir) -> Result<Self, ModelError> {
        let seg_path = models.verified(&SEGMENTATION)?;
        let emb_path = models.verified(&EMBEDDING_CAMPPLUS)?;
        init_runtime()?;
        Ok(Self {
            segmentation: SessionPool::new("segmentation", SEGMENTATION.file_name, seg_path)?,
            embedding: SessionPool::new("embedding", EMBEDDING_CAMPPLUS.file_name, emb_path)?,
        })
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn segment(&self, window: &[f32]) -> Result<Vec<f32>, ModelError> {
        // The dynamic export would accept any length and return a different frame count: reject
        // here so that ONNX Runtime and tract fail alike.
        if window.len() != WINDOW_SAMPLES {
            return Err(inference_error(
                "segmentation",
                format!(
                    "window has {} samples, expected {WINDOW_SAMPLES}",
                    window.len()
                ),
            ));
        }
        let output = self.segmentation.run(
            [1, 1, WINDOW_SAMPLES],
            window,
            &[1, FRAMES_PER_WINDOW, POWERSET_CLASSES],
        )?;
        Ok(output)
    }

    fn embed(&self, features: &[f32]) -> Result<Vec<f32>, ModelError> {
        if features.is_empty() || !features.len().is_multiple_of(NUM_MEL_BINS) {
            return Err(inference_error(
                "embedding",
                format!(
                    "{} feature values are not whole rows of {NUM_MEL_BINS} bins",
                    features.len()
                ),
            ));
        }
        let frames = features.len() / NUM_MEL_BINS;
        self.embedding
            .run([1, frames, NUM_MEL_BINS], features, &[1, EMBEDDING_DIM])
    }
}

fn inference_error(model: &'static str, message: impl Into<String>) -> ModelError {
    ModelError::Inference {
        model,
        message: message.into(),
    }
}

/// Idle sessions of one model. A call takes one (or builds one when all are busy) and puts it back,
/// so the pool holds as many sessions as the most threads that ever called at once.
struct SessionPool {
    model: &'static str,
    file_name: &'static str,
    path: PathBuf,
    idle: Mutex<Vec<Session>>,
}

impl SessionPool {
    fn new(
        model: &'static str,
        file_name: &'static str,
        path: PathBuf,
    ) -> Result<Self, ModelError> {
        let pool = Self {
            model,
            file_name,
            path,
            idle: Mutex::new(Vec::new()),
        };
        let first = pool.build()?;
        pool.put_back(first);
        Ok(pool)
    }

    fn build(&self) -> Result<Session, ModelError> {
        let err = |e: ort::Error| ModelError::Load {
            file_name: self.file_name,
            message: e.to_string(),
        };
        Session::builder()
            .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::Level3))
            .and_then(|b| b.with_intra_threads(1))
            .and_then(|b| b.with_inter_threads(1))
            .and_then(|b| b.with_parallel_execution(false))
            // Fixed input shapes gain little from ONNX Runtime's arena and memory patterns, and the
            // arena keeps peak buffers of every pooled session alive (peak RSS for an hour was
            // 378 MiB with it).
            .and_then(|b| b.with_memory_pattern(false))
            .and_then(|b| {
                b.with_execution_providers([CPUExecutionProvider::default()
                    .with_arena_allocator(false)
                    .build()])
            })
            .and_then(|b| b.commit_from_file(&self.path))
            .map_err(err)
    }

    fn put_back(&self, session: Session) {
        // A panic while the lock was held cannot leave the Vec half-updated: poisoning is harmless.
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(session);
    }

    /// Runs the model on one float tensor of `shape` and returns its first output, checked to have
    /// `expected_shape`.
    fn run<const N: usize>(
        &self,
        shape: [usize; N],
        data: &[f32],
        expected_shape: &[usize],
    ) -> Result<Vec<f32>, ModelError> {
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut session = match taken {
            Some(session) => session,
            None => self.build()?,
        };
        let result = self.run_on(&mut session, shape, data, expected_shape);
        self.put_back(session);
        result
    }

    fn run_on<const N: usize>(
        &self,
        session: &mut Session,
        shape: [usize; N],
        data: &[f32],
        expected_shape: &[usize],
    ) -> Result<Vec<f32>, ModelError> {
        let err = |e: ort::Error| inference_error(self.model, e.to_string());
        let input = TensorRef::from_array_view((shape, data)).map_err(err)?;
        let outputs = session.run(ort::inputs![input]).map_err(err)?;
        let (_, output) = outputs
            .iter()
            .next()
            .ok_or_else(|| inference_error(self.model, "the model returned no output"))?;
        let (out_shape, values) = output.try_extract_tensor::<f32>().map_err(err)?;
        let shape_matches = out_shape.len() == expected_shape.len()
            && out_shape
                .iter()
                .zip(expected_shape)
                .all(|(&d, &e)| usize::try_from(d) == Ok(e));
        if !shape_matches {
            return Err(inference_error(
                self.model,
                format!("unexpected output shape {out_shape:?}"),
            ));
        }
        Ok(values.to_vec())
    }
}

/// Outcome of loading the library, kept for the whole process: `ort` binds one library per process,
/// so a second attempt could not load another one anyway.
static RUNTIME: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn init_runtime() -> Result<(), ModelError> {
    match RUNTIME.get_or_init(load_runtime) {
        Ok(_) => Ok(()),
        Err(message) => Err(ModelError::Load {
            file_name: LIBRARY,
            message: message.clone(),
        }),
    }
}

fn load_runtime() -> Result<PathBuf, String> {
    let candidates = default_library_candidates();
    let path = find_library(std::env::var_os(DYLIB_ENV), &candidates)?;
    // `ort` panics (inside a OnceLock) when dlopen fails, when the library lacks its entry point or
    // is older than it supports: turn those into errors.
    let committed = panic::catch_unwind(AssertUnwindSafe(|| {
        ort::init_from(path.to_string_lossy())
            .with_name("noteflow-diarize")
            .commit()
    }));
    match committed {
        Ok(Ok(_)) => {
            tracing::info!(library = %path.display(), "ONNX Runtime loaded");
            Ok(path)
        }
        Ok(Err(e)) => Err(format!(
            "cannot start ONNX Runtime from {}: {e}. {}",
            path.display(),
            how_to_get_it()
        )),
        Err(payload) => {
            let reason = panic_message(&*payload);
            Err(format!(
                "cannot load ONNX Runtime from {}: {reason}. {}",
                path.display(),
                how_to_get_it()
            ))
        }
    }
}

/// Where to look when `ORT_DYLIB_PATH` is unset: where the fetch script installs the library in the
/// source tree this binary was built from, then next to the executable (for an installed binary).
fn default_library_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    // The crate lives in <workspace>/crates/noteflow-diarize.
    if let Some(workspace) = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2) {
        candidates.push(workspace.join(".onnxruntime").join(LIB_FILE));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join(LIB_FILE));
    }
    candidates
}

/// The library to load: `env` (the value of `ORT_DYLIB_PATH`) when set, else the first existing
/// candidate. Paths are checked before `ort` sees them so that a typo is a clear error, not a panic.
fn find_library(env: Option<OsString>, candidates: &[PathBuf]) -> Result<PathBuf, String> {
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        // A bare file name is left to the dynamic loader's search path (LD_LIBRARY_PATH, system).
        if path.components().count() == 1 && !path.exists() {
            return Ok(path);
        }
        if !path.is_file() {
            return Err(format!(
                "{DYLIB_ENV}={} is not a file. {}",
                path.display(),
                how_to_get_it()
            ));
        }
        // Absolute, because `ort` resolves a relative path against the executable's directory first.
        return std::path::absolute(&path)
            .map_err(|e| format!("{DYLIB_ENV}={}: {e}", path.display()));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "ONNX Runtime library not found ({DYLIB_ENV} is unset; looked for {}). {}",
                looked.join(", "),
                how_to_get_it()
            )
        })
}

fn how_to_get_it() -> String {
    format!(
        "The onnxruntime back-end needs ONNX Runtime {ONNXRUNTIME_VERSION}.x: run scripts/fetch-onnxruntime.sh \
         from the source tree, or set {DYLIB_ENV} to the path of {LIB_FILE}, or use the tract back-end"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tract::TractBackend;
    use crate::backend::EMBEDDING_CHUNK_FRAMES;
    use crate::fbank::{self, Fbank};

    /// ONNX Runtime is required wherever this feature is tested: failing loudly keeps a missing
    /// library from passing as "nothing to compare".
    fn ort_backend() -> OrtBackend {
        OrtBackend::load(&ModelDir::default_location()).unwrap_or_else(|e| {
            panic!(
                "the onnxruntime feature is being tested but ONNX Runtime could not be loaded: {e}"
            )
        })
    }

    /// A deterministic 10 s test signal: xorshift noise plus harmonic "voiced" bursts at a few
    /// pitches, so that the network sees something more varied than silence or white noise.
    fn pseudo_random_window() -> Vec<f32> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        (0..WINDOW_SAMPLES)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                let burst = (t * 1.3) as usize;
                let pitch = [
                    110.0, 180.0, 0.0, 240.0, 130.0, 0.0, 200.0, 95.0, 160.0, 0.0, 220.0, 120.0,
                    170.0, 0.0,
                ][burst];
                let envelope = (std::f32::consts::PI * (t * 1.3).fract()).sin();
                let voiced: f32 = (1..=8)
                    .map(|h| (2.0 * std::f32::consts::PI * pitch * h as f32 * t).sin() / h as f32)
                    .sum();
                0.3 * envelope * voiced + 0.02 * next()
            })
            .collect()
    }

    fn features_chunk(window: &[f32]) -> Vec<f32> {
        let mut features = Vec::new();
        Fbank::new().compute(window, &mut features);
        features.truncate(EMBEDDING_CHUNK_FRAMES * NUM_MEL_BINS);
        assert_eq!(features.len(), EMBEDDING_CHUNK_FRAMES * NUM_MEL_BINS);
        fbank::subtract_mean(&mut features);
        features
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    }

    #[test]
    fn matches_tract() {
        let ort = ort_backend();
        let tract = TractBackend::load(&ModelDir::default_location()).unwrap();
        let window = pseudo_random_window();

        let a = ort.segment(&window).unwrap();
        let b = tract.segment(&window).unwrap();
        assert_eq!(a.len(), FRAMES_PER_WINDOW * POWERSET_CLASSES);
        let max_diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-3,
            "segmentation log-probs differ by up to {max_diff}"
        );
        // Guard against a degenerate input: the comparison means little if every frame is silence.
        let non_silent = a
            .chunks_exact(POWERSET_CLASSES)
            .filter(|f| f[0] < f[1..].iter().copied().fold(f32::MIN, f32::max))
            .count();
        assert!(non_silent > 0, "test window produced no speech frames");

        let features = features_chunk(&window);
        let a = ort.embed(&features).unwrap();
        let b = tract.embed(&features).unwrap();
        assert_eq!(a.len(), EMBEDDING_DIM);
        let cos = cosine(&a, &b);
        // CAM++ averages 100-step segments with a ceil-mode AveragePool over ceil(frames / 2) steps.
        // For the last, partial segment PyTorch and ONNX Runtime divide by the steps present; tract
        // 0.23 does not, so the two agree only when ceil(frames / 2) is a multiple of 100.
        let hint = if EMBEDDING_CHUNK_FRAMES.div_ceil(2).is_multiple_of(100) {
            ""
        } else {
            " (likely cause: tract's ceil-mode AveragePool in CAM++ is wrong when ceil(frames / 2) \
             is not a multiple of 100; use a chunk of 200 or 400 frames)"
        };
        assert!(
            cos > 0.9999,
            "embeddings of {EMBEDDING_CHUNK_FRAMES} frames differ: cosine {cos}{hint}"
        );
    }

    #[test]
    fn concurrent_calls_give_the_same_results() {
        let ort = ort_backend();
        let window = pseudo_random_window();
        let features = features_chunk(&window);
        let expected = ort.embed(&features).unwrap();
        let expected_seg = ort.segment(&window).unwrap();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| (ort.embed(&features).unwrap(), ort.segment(&window).unwrap()))
                })
                .collect();
            for handle in handles {
                let (emb, seg) = handle.join().unwrap();
                assert_eq!(emb, expected);
                assert_eq!(seg, expected_seg);
            }
        });
    }

    #[test]
    fn wrong_input_sizes_are_errors() {
        let ort = ort_backend();
        let err = ort.segment(&[0.0; 1000]).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::Inference {
                    model: "segmentation",
                    ..
                }
            ),
            "{err}"
        );
        let err = ort.embed(&[0.0; NUM_MEL_BINS + 1]).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::Inference {
                    model: "embedding",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn library_lookup() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join(LIB_FILE);
        let missing = tmp.path().join("nowhere").join(LIB_FILE);

        let err = find_library(None, std::slice::from_ref(&missing)).unwrap_err();
        assert!(
            err.contains("fetch-onnxruntime.sh") && err.contains(DYLIB_ENV),
            "{err}"
        );
        let err = find_library(Some(missing.clone().into()), &[]).unwrap_err();
        assert!(
            err.contains("is not a file") && err.contains("fetch-onnxruntime.sh"),
            "{err}"
        );

        std::fs::write(&lib, b"").unwrap();
        assert_eq!(
            find_library(None, &[missing.clone(), lib.clone()]).unwrap(),
            lib
        );
        assert_eq!(
            find_library(Some(lib.clone().into()), std::slice::from_ref(&missing)).unwrap(),
            lib
        );
        // An empty variable counts as unset; a bare name goes to the loader's search path.
        assert_eq!(
            find_library(Some(OsString::new()), std::slice::from_ref(&lib)).unwrap(),
            lib
        );
        assert_eq!(
            find_library(Some(LIB_FILE.into()), &[]).unwrap(),
            PathBuf::from(LIB_FILE)
        );
    }
}
