//! The engine's view of embedding models: the [`Embedder`] trait and the per-database
//! [`ModelRegistry`] that loads models by spec.
//!
//! The engine never names a model implementation. The registry starts with a loader installed
//! from outside: CLIP with candle (`src/clip/`) when the `clip` feature is on, which defines
//! `ModelRegistry::builtin_loader` there; without that feature, a loader that refuses every
//! spec. An application can install its own with
//! [`DatabaseBuilder::model_loader`](crate::DatabaseBuilder::model_loader) or register a loaded
//! embedder with [`ModelRegistry::insert`] (tantivy's tokenizer registry works the same way).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::Result;
use crate::image_intake::ImageLimits;
use crate::value::ImageSource;

/// The model used when a table names none.
pub const DEFAULT_MODEL: &str = "openai/clip-vit-base-patch32";

/// Turns texts and images into vectors of one embedding space.
pub trait Embedder: Send + Sync {
    /// The model identity recorded with a table: model id, embedding dimension and a content hash,
    /// e.g. `openai/clip-vit-base-patch32 dim=512 sha256=ab12...`.
    fn identity(&self) -> &str;
    /// Dimension of the vectors produced.
    fn dim(&self) -> usize;
    /// One result per text, in order; one bad input fails only its own slot.
    fn embed_texts(&self, texts: &[String]) -> Vec<Result<Vec<f32>>>;
    /// One result per image, in order; one bad input fails only its own slot. Every image is
    /// read under `limits` ([`read_image`](crate::read_image) checks the file; the decoder
    /// honours the pixel, memory and deadline limits).
    fn embed_images(&self, images: &[ImageSource], limits: &ImageLimits) -> Vec<Result<Vec<f32>>>;
}

/// Loads a model from its spec (a folder path or a hub id).
pub type ModelLoader = dyn Fn(&str) -> Result<Arc<dyn Embedder>> + Send + Sync;

/// Caches loaded models by spec, so a model is loaded once per database.
pub struct ModelRegistry {
    loaded: Mutex<HashMap<String, Arc<dyn Embedder>>>,
    loader: Arc<ModelLoader>,
}

impl Default for ModelRegistry {
    /// A registry with the built-in loader (CLIP with the `clip` feature, otherwise none).
    fn default() -> Self {
        ModelRegistry::with_loader(ModelRegistry::builtin_loader())
    }
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.loaded.lock().keys().cloned().collect();
        f.debug_struct("ModelRegistry")
            .field("loaded", &names)
            .finish()
    }
}

impl ModelRegistry {
    /// A registry that loads models with `loader` (tests use this to plug in fake embedders).
    pub fn with_loader(loader: Arc<ModelLoader>) -> ModelRegistry {
        ModelRegistry {
            loaded: Mutex::new(HashMap::new()),
            loader,
        }
    }

    /// Registers an already loaded embedder under `spec`.
    pub fn insert(&self, spec: &str, embedder: Arc<dyn Embedder>) {
        self.loaded.lock().insert(spec.to_string(), embedder);
    }

    /// The embedder for `spec`, loading it on first use.
    pub fn get(&self, spec: &str) -> Result<Arc<dyn Embedder>> {
        if let Some(e) = self.loaded.lock().get(spec) {
            return Ok(e.clone());
        }
        // Loading can take seconds: do it without holding the lock.
        let e = (self.loader)(spec)?;
        Ok(self
            .loaded
            .lock()
            .entry(spec.to_string())
            .or_insert(e)
            .clone())
    }

    /// Without the `clip` feature there is no built-in model: every spec is refused, naming it.
    #[cfg(not(feature = "clip"))]
    pub(crate) fn builtin_loader() -> Arc<ModelLoader> {
        Arc::new(|spec: &str| {
            Err(crate::Error::Model(format!(
                "cannot load model {spec}: this build of mmdb has no model loader (the `clip` \
                 feature is off); install one with DatabaseBuilder::model_loader"
            )))
        })
    }
}
