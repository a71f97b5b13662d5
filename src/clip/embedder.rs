//! [`ClipEmbedder`]: a CLIP model folder as an [`Embedder`] on one device.
//!
//! Texts are tokenized, images decoded and preprocessed (on rayon threads), then encoded in batches
//! of at most `max_batch`; outputs are L2-normalised. For a shared, batching, multi-device front
//! end see [`super::pool::EmbedPool`].

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::config::ModelConfig;
use super::cores::{Cores, gemm_on_calling_thread};
use super::model::{ClipNet, model_err};
use super::preprocess::Preprocess;
use super::resolve::resolve_model;
use super::tokenize::ClipTokenizer;
use super::transformer::Exec;
use crate::embedder::Embedder;
use crate::{Error, ImageLimits, ImageSource, Result};

/// Default largest batch one model call encodes.
pub const DEFAULT_MAX_BATCH: usize = 32;

/// Rows per core from which a CPU batch is cut into rows per core rather than run with each
/// layer spread over the cores (see [`ClipEmbedder`]). On ViT-B/32, cutting was the faster of
/// the two from 8 images on 2 cores; a single image has nothing to cut (measurements:
/// docs/perf.md#clip-cpu-threading).
pub const SPLIT_ROWS_PER_CORE: usize = 4;

/// A loaded CLIP model with its tokenizer and preprocessing.
///
/// # Threads on the CPU
///
/// Called from a thread that sees one rayon thread (e.g. inside a single-threaded pool), a batch
/// is encoded on that thread. Called with several rayon threads, every core gets a whole piece of
/// work on a single-threaded pool of its own, made on first use: a batch of at least
/// [`SPLIT_ROWS_PER_CORE`] rows per core is cut into one chunk of rows per core; a smaller one (a
/// query, a short insert) runs once with each layer's heads and MLP units spread over the cores.
/// This is faster than candle's own threading (inside each matmul; a spinning pool for
/// element-wise ops), most of all for a single image, where candle's fell well behind PyTorch on
/// the same cores (measurements: docs/perf.md#clip-bench). Clones share those pools.
#[derive(Debug, Clone)]
pub struct ClipEmbedder {
    net: ClipNet,
    tokenizer: ClipTokenizer,
    preprocess: Preprocess,
    pad: u32,
    identity: String,
    dim: usize,
    max_batch: usize,
    /// One single-threaded rayon pool per core, made on first use by [`ClipEmbedder::on_cores`]
    /// (`None`: a single core).
    cores: Arc<OnceLock<Option<Cores>>>,
}

impl ClipEmbedder {
    /// Loads the model named by `spec` (folder or hub id, see [`resolve_model`]) on the CPU.
    pub fn load(spec: &str) -> Result<ClipEmbedder> {
        let dir = resolve_model(spec)?;
        ClipEmbedder::load_dir(&dir, &model_id(spec, &dir), &Device::Cpu, DType::F32)
    }

    /// Loads the Hugging Face layout folder `dir` onto `device`, computing in `dtype`; `id` names
    /// the model in its identity.
    ///
    /// On the CPU, mmdb spreads the work over the cores itself (see [`ClipEmbedder`]) and
    /// turns off the threading of gemm, candle's CPU matmul, process-wide: other candle CPU
    /// matmuls in the same process then run on their calling thread.
    pub fn load_dir(dir: &Path, id: &str, device: &Device, dtype: DType) -> Result<ClipEmbedder> {
        if device.is_cpu() {
            gemm_on_calling_thread();
        }
        let config_path = dir.join("config.json");
        let config = ModelConfig::from_file(&config_path)?;
        let weights = dir.join("model.safetensors");
        let net = ClipNet::load(&weights, &config, device, dtype)?;
        let tokenizer =
            ClipTokenizer::from_file(&dir.join("tokenizer.json"), config.max_positions())?;
        let image_size = u32::try_from(config.vision.image_size)
            .map_err(|_| Error::Model("image_size does not fit u32".into()))?;
        let preprocess = Preprocess::from_dir(dir, image_size)?;
        if preprocess.crop != (image_size, image_size) {
            return Err(Error::Model(format!(
                "{}: crop_size {:?} differs from the vision tower's image_size {image_size}",
                dir.display(),
                preprocess.crop
            )));
        }
        let hash = content_hash(&config_path, &weights)?;
        let dim = config.projection_dim;
        Ok(ClipEmbedder {
            net,
            tokenizer,
            preprocess,
            pad: config.pad_token_id,
            identity: format!("{id} dim={dim} sha256={hash}"),
            dim,
            max_batch: DEFAULT_MAX_BATCH,
            cores: Arc::default(),
        })
    }

    /// Sets the largest batch one model call encodes (default [`DEFAULT_MAX_BATCH`]).
    #[must_use]
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The same model with per-core pools of its own (see [`ClipEmbedder::on_cores`]), so that
    /// its calls never queue behind another clone's on the same cores.
    pub(crate) fn with_own_cores(mut self) -> Self {
        self.cores = Arc::default();
        self
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// The image preprocessing.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        self.net.device()
    }

    /// L2-normalised embeddings of tokenized texts, spread over the CPU's cores as described at
    /// [`ClipEmbedder`].
    pub fn encode_ids(&self, rows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.on_cores(rows, |r, exec| {
            to_rows(&self.net.text_features(r, self.pad, exec)?)
        })
    }

    /// Unnormalised text features (for parity checks against `get_text_features`).
    pub fn text_features(&self, rows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.on_cores(rows, |r, exec| {
            to_rows_raw(&self.net.text_features(r, self.pad, exec)?)
        })
    }

    /// L2-normalised embeddings of preprocessed images (CHW, from [`Preprocess::run`]), spread
    /// over the CPU's cores as described at [`ClipEmbedder`].
    pub fn encode_pixels(&self, images: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        self.on_cores(images, |i, exec| {
            to_rows(&self.net.image_features(&self.stack(i)?, exec)?)
        })
    }

    /// Unnormalised image features (for parity checks against `get_image_features`).
    pub fn image_features(&self, images: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        self.on_cores(images, |i, exec| {
            to_rows_raw(&self.net.image_features(&self.stack(i)?, exec)?)
        })
    }

    /// Runs `encode` over `rows`. On a GPU, or from a thread that sees a single rayon thread (the
    /// embedding pool's bulk workers), it is one call. On a CPU with several rayon threads every
    /// core gets a whole piece of work on its own single-threaded pool (see [`Cores`]): a batch of
    /// at least [`SPLIT_ROWS_PER_CORE`] rows per core is cut into one chunk of rows per core; a
    /// smaller one (a query, a short insert) runs once with each layer's heads and MLP units
    /// spread over the cores (tensor parallelism).
    fn on_cores<T: Sync>(
        &self,
        rows: &[T],
        encode: impl Fn(&[T], Exec) -> Result<Vec<Vec<f32>>> + Sync,
    ) -> Result<Vec<Vec<f32>>> {
        let threads = rayon::current_num_threads();
        if !self.device().is_cpu() || threads < 2 {
            return encode(rows, Exec::Serial);
        }
        let Some(cores) = self.cores.get_or_init(|| Cores::new(threads)) else {
            return encode(rows, Exec::Serial);
        };
        let panicked = || Error::Model("an encoding thread panicked".into());
        if rows.len() < cores.len() * SPLIT_ROWS_PER_CORE {
            let run = || encode(rows, Exec::Cores(cores));
            return catch_unwind(AssertUnwindSafe(|| cores.install(run)))
                .map_err(|_| panicked())?;
        }
        let chunks: Vec<&[T]> = rows.chunks(rows.len().div_ceil(cores.len())).collect();
        let parts = cores
            .each(chunks.len(), &|i| encode(chunks[i], Exec::Serial))
            .map_err(|_| panicked())?;
        let mut out = Vec::with_capacity(rows.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    fn stack(&self, images: &[Vec<f32>]) -> Result<Tensor> {
        let (h, w) = self.preprocess.crop;
        let plane = 3 * h as usize * w as usize;
        if images.is_empty() || images.iter().any(|i| i.len() != plane) {
            return Err(Error::Model(format!(
                "image batch must be non-empty 3x{h}x{w} pixel arrays"
            )));
        }
        let flat: Vec<f32> = images.concat();
        Tensor::from_vec(
            flat,
            (images.len(), 3, h as usize, w as usize),
            &Device::Cpu,
        )
        .map_err(model_err("image batch"))
    }

    /// Runs `encode` on the good rows of `inputs` in chunks, keeping per-row errors in place.
    fn batched<T: Sync + Clone>(
        &self,
        inputs: Vec<Result<T>>,
        encode: impl Fn(&[T]) -> Result<Vec<Vec<f32>>>,
    ) -> Vec<Result<Vec<f32>>> {
        let mut out: Vec<Option<Result<Vec<f32>>>> = Vec::with_capacity(inputs.len());
        let mut good = Vec::new();
        for (i, r) in inputs.into_iter().enumerate() {
            match r {
                Ok(v) => {
                    good.push((i, v));
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        for chunk in good.chunks(self.max_batch) {
            let items: Vec<T> = chunk.iter().map(|(_, v)| v.clone()).collect();
            match encode(&items) {
                Ok(vecs) => {
                    for ((i, _), v) in chunk.iter().zip(vecs) {
                        out[*i] = Some(Ok(v));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for (i, _) in chunk {
                        out[*i] = Some(Err(Error::Model(msg.clone())));
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(Error::Model("row was not encoded".into()))))
            .collect()
    }
}

impl Embedder for ClipEmbedder {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_texts(&self, texts: &[String]) -> Vec<Result<Vec<f32>>> {
        let ids: Vec<Result<Vec<u32>>> = texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        self.batched(ids, |rows| self.encode_ids(rows))
    }

    fn embed_images(&self, images: &[ImageSource], limits: &ImageLimits) -> Vec<Result<Vec<f32>>> {
        let pixels: Vec<Result<Vec<f32>>> = images
            .par_iter()
            .map(|s| self.preprocess.run(s, limits))
            .collect();
        self.batched(pixels, |imgs| self.encode_pixels(imgs))
    }
}

/// The model's name in its identity: the hub id, or the folder's name.
pub(crate) fn model_id(spec: &str, dir: &Path) -> String {
    if Path::new(spec).is_dir() {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        name.unwrap_or_else(|| spec.to_string())
    } else {
        spec.to_string()
    }
}

/// sha256 of `config.json` and the safetensors header (names, dtypes, shapes, offsets): cheap, and
/// changes with any architecture or layout change. Weight values are not hashed (600 MB).
fn content_hash(config: &Path, weights: &Path) -> Result<String> {
    let mut h = Sha256::new();
    h.update(std::fs::read(config).map_err(|e| Error::io(config, e))?);
    let mut f = std::fs::File::open(weights).map_err(|e| Error::io(weights, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| Error::io(weights, e))?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return Err(Error::corrupted(
            weights,
            format!("safetensors header of {n} bytes"),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| Error::io(weights, e))?;
    h.update(&header);
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn to_rows_raw(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    t.to_vec2::<f32>().map_err(model_err("reading embeddings"))
}

fn to_rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let mut rows = to_rows_raw(t)?;
    for r in &mut rows {
        l2_normalize(r);
    }
    Ok(rows)
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if n > 0.0 {
        for x in v {
            *x = (f64::from(*x) / n) as f32;
        }
    }
}
