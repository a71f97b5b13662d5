//! Embeddings: the [`Embedder`] trait, the model registry, and CLIP with candle.
//!
//! The SQL layer and the bulk loaders ask the [`ModelRegistry`] of a database for the embedder of a
//! table's model, then call it before rows reach the storage engine (so the WAL holds the vectors
//! and recovery never recomputes them).
//!
//! The CLIP path, following the data:
//! - `resolve.rs`: model spec (folder or hub id) -> a Hugging Face layout folder (cache, download).
//! - `config.rs`: `config.json` -> sizes (in candle's `ClipConfig`) and per-tower options, refusing
//!   what mmdb cannot run.
//! - `model.rs`: `model.safetensors` -> both towers, every tensor checked; pooling as transformers.
//! - `transformer.rs`: the towers themselves (weights transposed for gemm, fused Q/K/V, last layer
//!   on the read rows only, layers cut into shards for tensor parallelism); `fused.rs` its
//!   single-threaded add + activation kernel.
//! - `cores.rs`: one single-threaded rayon pool per CPU core: mmdb's own CPU threading (rows per
//!   core for large batches, shards per core for small ones), gemm's threading off.
//! - `tokenize.rs` / `preprocess.rs` + `resample.rs`: text -> ids, image bytes -> pixels, exactly as
//!   transformers' CLIP tokenizer and `CLIPImageProcessorPil` (Pillow's bicubic ported bit for bit).
//! - `clip.rs`: [`ClipEmbedder`], one model on one device, L2-normalised outputs, model identity.
//! - `pool.rs`: [`EmbedPool`], replicas per device, dynamic batching, query lane; `cache.rs` its
//!   content-hash cache.
//! - `cli.rs`: [`run_embed`], `mmdb embed` as JSON lines.
//!
//! Devices: `cpu`, or `cuda:N` with the `cuda` cargo feature (f16 by default, see [`PoolOptions`]).
//! Building that feature needs the CUDA toolkit (`nvcc`) for candle's kernels.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{ImageSource, Result};

mod cache;
mod cli;
mod clip;
mod config;
mod cores;
mod fused;
mod model;
mod pool;
mod preprocess;
mod resample;
mod resolve;
mod tokenize;
mod transformer;

pub use cli::run_embed;
pub use clip::{ClipEmbedder, DEFAULT_MAX_BATCH, SPLIT_ROWS_PER_CORE, l2_normalize};
pub use config::{ModelConfig, TextPooling};
pub use pool::{EmbedPool, Lane, PoolOptions};
pub use preprocess::{CLIP_MEAN, CLIP_STD, DEFAULT_MAX_PIXELS, Preprocess};
pub use resolve::{DEMO_MODEL, DEMO_MODEL_NAME, cache_dirs, resolve_model};
pub use tokenize::ClipTokenizer;

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
    /// One result per image, in order; one bad input fails only its own slot.
    fn embed_images(&self, images: &[ImageSource]) -> Vec<Result<Vec<f32>>>;
}

/// Loads a model from its spec (a folder path or a hub id).
pub type ModelLoader = dyn Fn(&str) -> Result<Arc<dyn Embedder>> + Send + Sync;

/// Caches loaded models by spec, so a model is loaded once per database.
pub struct ModelRegistry {
    loaded: Mutex<HashMap<String, Arc<dyn Embedder>>>,
    loader: Box<ModelLoader>,
}

impl Default for ModelRegistry {
    fn default() -> Self {
        ModelRegistry::with_loader(Box::new(default_loader))
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
    pub fn with_loader(loader: Box<ModelLoader>) -> ModelRegistry {
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
}

/// Loads CLIP models (folder or hub id) behind an [`EmbedPool`] with default [`PoolOptions`].
fn default_loader(spec: &str) -> Result<Arc<dyn Embedder>> {
    Ok(Arc::new(EmbedPool::load(spec, PoolOptions::default())?))
}
