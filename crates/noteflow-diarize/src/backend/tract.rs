//! Pure-Rust inference with tract.

use tract_onnx::prelude::*;

use super::{
    Backend, EMBEDDING_CHUNK_FRAMES, EMBEDDING_DIM, FRAMES_PER_WINDOW, POWERSET_CLASSES,
    WINDOW_SAMPLES,
};
use crate::fbank::NUM_MEL_BINS;
use crate::models::{ModelDir, ModelError, ModelFile, EMBEDDING_CAMPPLUS, SEGMENTATION_STATIC};

type Plan = Arc<TypedRunnableModel>;

pub struct TractBackend {
    segmentation: Plan,
    embedding: Plan,
}

fn load_error(file_name: &'static str) -> impl Fn(TractError) -> ModelError {
    move |e| ModelError::Load {
        file_name,
        message: format!("{e:#}"),
    }
}

fn inference_error(model: &'static str) -> impl Fn(TractError) -> ModelError {
    move |e| ModelError::Inference {
        model,
        message: format!("{e:#}"),
    }
}

impl TractBackend {
    pub fn load(models: &ModelDir) -> Result<Self, ModelError> {
        let segmentation = static_plan(models, &SEGMENTATION_STATIC, &[1, 1, WINDOW_SAMPLES])?;
        let embedding = static_plan(
            models,
            &EMBEDDING_CAMPPLUS,
            &[1, EMBEDDING_CHUNK_FRAMES, NUM_MEL_BINS],
        )?;
        Ok(Self {
            segmentation,
            embedding,
        })
    }
}

/// An optimised plan of `model` for one fixed input shape, loaded from the checked bytes.
fn static_plan(models: &ModelDir, model: &ModelFile, shape: &[usize]) -> Result<Plan, ModelError> {
    let bytes = models.verified_bytes(model)?;
    tract_onnx::onnx()
        .model_for_read(&mut bytes.as_slice())
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(load_error(model.file_name))
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn segment(&self, window: &[f32]) -> Result<Vec<f32>, ModelError> {
        let err = inference_error("segmentation");
        let input = Tensor::from_shape(&[1, 1, WINDOW_SAMPLES], window).map_err(&err)?;
        let out = self.segmentation.run(tvec!(input.into())).map_err(&err)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(&err)?;
        if view.shape() != [1, FRAMES_PER_WINDOW, POWERSET_CLASSES] {
            return Err(ModelError::Inference {
                model: "segmentation",
                message: format!("unexpected output shape {:?}", view.shape()),
            });
        }
        Ok(view.iter().copied().collect())
    }

    fn embed(&self, features: &[f32]) -> Result<Vec<f32>, ModelError> {
        let err = inference_error("embedding");
        let input = Tensor::from_shape(&[1, EMBEDDING_CHUNK_FRAMES, NUM_MEL_BINS], features)
            .map_err(&err)?;
        let out = self.embedding.run(tvec!(input.into())).map_err(&err)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(&err)?;
        if view.len() != EMBEDDING_DIM {
            return Err(ModelError::Inference {
                model: "embedding",
                message: format!("unexpected output shape {:?}", view.shape()),
            });
        }
        Ok(view.iter().copied().collect())
    }
}
