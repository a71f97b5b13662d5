//! CLIP with candle (feature `clip`): the built-in [`Embedder`] of mmdb's model registry.
//!
//! The engine knows only the [`Embedder`] trait and the [`ModelRegistry`]
//! (`src/embedder.rs`); this module installs its loader there (`ModelRegistry::builtin_loader`,
//! defined below) so the engine never names candle. The SQL layer and the bulk loaders ask the
//! registry for a table's model and embed before rows reach storage, so the WAL holds the
//! vectors and recovery never recomputes them.
//!
//! The CLIP path, following the data:
//! - `resolve.rs`: model spec (folder or hub id) -> a Hugging Face layout folder (cache, download).
//! - `config.rs`: `config.json` -> sizes ([`TextConfig`], [`VisionConfig`]) and per-tower
//!   options, refusing what mmdb cannot run.
//! - `model.rs`: `model.safetensors` -> both towers, every tensor checked; pooling as transformers.
//! - `transformer.rs`: the towers themselves (weights transposed for gemm, fused Q/K/V, last layer
//!   on the read rows only, layers cut into shards for tensor parallelism); `fused.rs` its
//!   single-threaded add + activation kernel.
//! - `cores.rs`: one single-threaded rayon pool per CPU core: mmdb's own CPU threading (rows per
//!   core for large batches, shards per core for small ones), gemm's threading off.
//! - `tokenize.rs` / `preprocess.rs` + `resample.rs`: text -> ids, image bytes -> pixels, exactly as
//!   transformers' CLIP tokenizer and `CLIPImageProcessorPil` (Pillow's bicubic ported bit for bit).
//! - `embedder.rs`: [`ClipEmbedder`], one model on one device, L2-normalised outputs, model
//!   identity.
//! - `pool.rs`: [`EmbedPool`], replicas per device, dynamic batching, query lane; `cache.rs` its
//!   content-hash cache.
//!
//! Devices: `cpu`, or `cuda:N` with the `cuda` cargo feature (f16 by default, see [`PoolOptions`]).
//! Building that feature needs the CUDA toolkit (`nvcc`) for candle's kernels.

use std::sync::Arc;

use crate::Result;
use crate::embedder::{Embedder, ModelLoader, ModelRegistry};

mod cache;
mod config;
mod cores;
mod embedder;
mod fused;
mod model;
mod pool;
mod preprocess;
mod resample;
mod resolve;
mod tokenize;
mod transformer;

pub use config::{ModelConfig, TextConfig, TextPooling, VisionConfig};
pub use embedder::{ClipEmbedder, DEFAULT_MAX_BATCH, SPLIT_ROWS_PER_CORE, l2_normalize};
pub use pool::{EmbedPool, Lane, PoolOptions};
pub use preprocess::{CLIP_MEAN, CLIP_STD, Preprocess};
pub use resolve::{DEMO_MODEL, DEMO_MODEL_NAME, cache_dirs, resolve_model};
pub use tokenize::ClipTokenizer;

impl ModelRegistry {
    /// The built-in loader with the `clip` feature: CLIP models (folder or hub id) behind an
    /// [`EmbedPool`] with default [`PoolOptions`]. Installed into the engine's registry from
    /// here, so the engine never names candle (see `src/embedder.rs`).
    pub(crate) fn builtin_loader() -> Arc<ModelLoader> {
        Arc::new(load_clip)
    }
}

/// Loads a CLIP model (folder or hub id) behind an [`EmbedPool`] with default [`PoolOptions`].
pub fn load_clip(spec: &str) -> Result<Arc<dyn Embedder>> {
    Ok(Arc::new(EmbedPool::load(spec, PoolOptions::default())?))
}
