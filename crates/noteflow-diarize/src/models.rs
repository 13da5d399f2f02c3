//! Locating and verifying the bundled ONNX models.
//!
//! The engine refuses to run on a model file it does not know: a truncated download or a different
//! export would silently change every diarization, so each file is checked against its sha256.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Environment variable that points the engine at a models directory.
pub const MODELS_ENV: &str = "NOTEFLOW_MODELS";

/// One model file the engine knows, by name and content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFile {
    pub file_name: &'static str,
    pub sha256: &'static str,
}

/// pyannote segmentation-3.0 with its input fixed to one 10 s window (tract needs static shapes).
pub const SEGMENTATION_STATIC: ModelFile = ModelFile {
    file_name: "segmentation-3.0.static-10s.onnx",
    sha256: "ab853b86e97cbe948a696fa37074e833f7f402679a6505611f9e943af6854310",
};

/// pyannote segmentation-3.0 with dynamic batch and length (ONNX Runtime).
pub const SEGMENTATION_DYNAMIC: ModelFile = ModelFile {
    file_name: "segmentation-3.0.onnx",
    sha256: "6ea79e44caa5fae98feb463dfca227489de60fe575a95d342ffcb326526150b9",
};

/// CAM++ speaker embedding (3D-Speaker, zh-en common advanced).
pub const EMBEDDING_CAMPPLUS: ModelFile = ModelFile {
    file_name: "campplus-zh-en-common.onnx",
    sha256: "c73819c07ed7a36df9ec3ac6d446fa2f2635d305df83082199e02fc0b5badf3a",
};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("models directory {0} does not exist (set --models or {MODELS_ENV})")]
    DirectoryMissing(PathBuf),
    #[error("model file {path} is missing: the engine needs {file_name} in its models directory (set --models or {MODELS_ENV})")]
    FileMissing {
        path: PathBuf,
        file_name: &'static str,
    },
    #[error("model file {path} is not the expected {file_name}: sha256 is {actual}, expected {expected}; restore the file from the project's models/ directory")]
    ChecksumMismatch {
        path: PathBuf,
        file_name: &'static str,
        expected: &'static str,
        actual: String,
    },
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load model {file_name}: {message}")]
    Load {
        file_name: &'static str,
        message: String,
    },
    #[error("inference failed in {model}: {message}")]
    Inference {
        model: &'static str,
        message: String,
    },
}

/// A directory of model files.
#[derive(Debug, Clone)]
pub struct ModelDir {
    path: PathBuf,
}

impl ModelDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory to use when none is given: `$NOTEFLOW_MODELS`, else the project's `models/`
    /// (found from the source tree this binary was built from), else `./models`.
    pub fn default_location() -> Self {
        if let Some(dir) = std::env::var_os(MODELS_ENV).filter(|v| !v.is_empty()) {
            return Self::new(dir);
        }
        let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        if project.is_dir() {
            return Self::new(project);
        }
        Self::new("models")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `model` in this directory, after checking that it exists and its sha256 matches.
    pub fn verified(&self, model: &ModelFile) -> Result<PathBuf, ModelError> {
        self.read_verified(model).map(|(path, _)| path)
    }

    /// The bytes of `model`, checked against its sha256. Loading from these very bytes reads the
    /// file once, and what is run is what was checked.
    pub fn verified_bytes(&self, model: &ModelFile) -> Result<Vec<u8>, ModelError> {
        self.read_verified(model).map(|(_, bytes)| bytes)
    }

    fn read_verified(&self, model: &ModelFile) -> Result<(PathBuf, Vec<u8>), ModelError> {
        if !self.path.is_dir() {
            return Err(ModelError::DirectoryMissing(self.path.clone()));
        }
        let path = self.path.join(model.file_name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::FileMissing {
                    path,
                    file_name: model.file_name,
                })
            }
            Err(source) => return Err(ModelError::Io { path, source }),
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != model.sha256 {
            return Err(ModelError::ChecksumMismatch {
                path,
                file_name: model.file_name,
                expected: model.sha256,
                actual,
            });
        }
        Ok((path, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_models_verify() {
        let dir = ModelDir::default_location();
        for model in [
            SEGMENTATION_STATIC,
            SEGMENTATION_DYNAMIC,
            EMBEDDING_CAMPPLUS,
        ] {
            dir.verified(&model).unwrap();
        }
    }

    #[test]
    fn missing_directory_and_file_and_corrupt_file_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = ModelDir::new(tmp.path().join("nope"));
        let err = gone.verified(&EMBEDDING_CAMPPLUS).unwrap_err();
        assert!(matches!(err, ModelError::DirectoryMissing(_)), "{err}");

        let dir = ModelDir::new(tmp.path());
        let err = dir.verified(&EMBEDDING_CAMPPLUS).unwrap_err();
        assert!(matches!(err, ModelError::FileMissing { .. }), "{err}");
        assert!(err.to_string().contains("campplus-zh-en-common.onnx"));

        std::fs::write(
            tmp.path().join(EMBEDDING_CAMPPLUS.file_name),
            b"not a model",
        )
        .unwrap();
        let err = dir.verified(&EMBEDDING_CAMPPLUS).unwrap_err();
        assert!(matches!(err, ModelError::ChecksumMismatch { .. }), "{err}");
        assert!(err.to_string().contains("sha256"));
    }
}
