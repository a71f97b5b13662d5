//! The device worker pool: one CLIP replica per device, dynamic batching, two lanes.
//!
//! ```text
//!  callers ──tokenize / decode+preprocess (own rayon pool)──▶ bulk lane  (bounded) ─▶ bulk worker  ┐ per
//!          └──────────────────────────────────────────────▶ query lane (bounded) ─▶ query worker ┘ device
//!                                                              results ◀── (row index, vector) ◀──┘
//! ```
//! Each device holds one model replica (weights shared by its two workers). A worker takes one job,
//! then gathers more from its lane until `max_batch` or `max_wait` and encodes them in one call, so
//! a lone query is not delayed and a bulk load runs at full batches. The query lane has its own
//! worker, so a query never waits behind a bulk batch (on a CPU both share the cores). Preprocessing
//! runs on a separate rayon pool while workers encode, and blocking it on a full queue never starves
//! the global rayon pool candle's kernels use. Results come back in input order; a bad input fails
//! only its own row. An LRU-free bounded cache keyed by content hash skips repeated inputs.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use parking_lot::Mutex;

use super::Preprocess;
use super::cache::{Cache, hash};
use super::embedder::{ClipEmbedder, model_id};
use super::resolve::resolve_model;
use crate::embedder::Embedder;
use crate::{Error, ImageLimits, ImageSource, Result, read_image};

/// Which queue a request goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Interactive queries: their own worker per device, never behind bulk batches.
    Query,
    /// Inserts and bulk loads.
    Bulk,
}

/// Pool settings; every field has a documented default ([`PoolOptions::default`]).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Devices, each `cpu` or `cuda:N` (the latter needs the `cuda` feature). Default: the
    /// comma-separated list in the `MMDB_DEVICES` environment variable (e.g. `cuda:0,cuda:1`) when
    /// set; else, in a `cuda` build, `cuda:0` when a GPU answers; else `["cpu"]`. The variable is
    /// how the `mmdb` command line (REPL, `load-coco`, `demo`) is pointed at GPUs.
    pub devices: Vec<String>,
    /// Largest batch per model call. Default 32.
    pub max_batch: usize,
    /// How long a worker waits to fill a batch once it has one job. Default 5 ms.
    pub max_wait: Duration,
    /// Jobs each lane holds before callers block (backpressure). Default 256.
    pub queue_capacity: usize,
    /// Threads decoding and preprocessing images. Default: available parallelism.
    pub preprocess_threads: usize,
    /// Embeddings kept in the content-hash cache (0 disables it). Default 10 000.
    pub cache_entries: usize,
    /// Compute in f16 on GPUs (CPUs always use f32). Default true.
    pub half_on_gpu: bool,
    /// Bulk workers per device, each running whole batches (data parallel). Default 0: automatic,
    /// which on a CPU device is one single-threaded worker per available core and on a GPU one
    /// worker. On a CPU this loads images about as fast as one worker spreading each batch over
    /// all cores (`benches/clip.rs`; docs/perf.md#clip-cpu-threading), and single-threaded
    /// workers leave the query worker's per-core pools to queries alone.
    pub bulk_workers_per_device: usize,
    /// Threads of each bulk worker's own compute pool; 0 uses the global rayon pool. Default 0.
    /// Only read when `bulk_workers_per_device` is set (the automatic CPU setting uses 1).
    pub bulk_worker_threads: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            devices: default_devices(),
            max_batch: 32,
            max_wait: Duration::from_millis(5),
            queue_capacity: 256,
            preprocess_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            cache_entries: 10_000,
            half_on_gpu: true,
            bulk_workers_per_device: 0,
            bulk_worker_threads: 0,
        }
    }
}

/// See [`PoolOptions::devices`].
fn default_devices() -> Vec<String> {
    if let Ok(list) = std::env::var("MMDB_DEVICES") {
        let devices: Vec<String> = list
            .split(',')
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .collect();
        if !devices.is_empty() {
            return devices;
        }
    }
    if cfg!(feature = "cuda") && cuda_device(0, false).is_ok() {
        return vec!["cuda:0".into()];
    }
    vec!["cpu".into()]
}

/// Parses `cpu` / `cuda:N` into a candle device and the dtype to compute in.
pub fn parse_device(spec: &str, half_on_gpu: bool) -> Result<(Device, DType)> {
    if spec == "cpu" {
        return Ok((Device::Cpu, DType::F32));
    }
    let Some(n) = spec
        .strip_prefix("cuda:")
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return Err(Error::InvalidArgument(format!(
            "device {spec:?}: expected cpu or cuda:N"
        )));
    };
    cuda_device(n, half_on_gpu)
}

#[cfg(feature = "cuda")]
fn cuda_device(n: usize, half: bool) -> Result<(Device, DType)> {
    let d = Device::new_cuda(n).map_err(|e| Error::Model(format!("device cuda:{n}: {e}")))?;
    Ok((d, if half { DType::F16 } else { DType::F32 }))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(n: usize, _half: bool) -> Result<(Device, DType)> {
    Err(Error::Model(format!(
        "device cuda:{n}: mmdb was built without the `cuda` feature"
    )))
}

enum Input {
    Text(Vec<u32>),
    Image(Vec<f32>),
}

struct Job {
    row: usize,
    input: Input,
    cache_key: Option<[u8; 32]>,
    reply: Sender<(usize, Result<Vec<f32>>)>,
}

/// A shared embedding service over one or more devices; implements [`Embedder`].
pub struct EmbedPool {
    front: ClipEmbedder,
    lanes: Option<(Sender<Job>, Sender<Job>)>,
    workers: Vec<JoinHandle<()>>,
    cache: Arc<Mutex<Cache>>,
    preprocess_pool: rayon::ThreadPool,
    max_batch: usize,
    bulk_workers: usize,
}

impl std::fmt::Debug for EmbedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedPool")
            .field("identity", &self.front.identity())
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl EmbedPool {
    /// Resolves `spec` (folder or hub id) and loads one replica per device of `opts`.
    pub fn load(spec: &str, opts: PoolOptions) -> Result<EmbedPool> {
        let dir = resolve_model(spec)?;
        let id = model_id(spec, &dir);
        let mut replicas = Vec::new();
        for d in &opts.devices {
            let (device, dtype) = parse_device(d, opts.half_on_gpu)?;
            replicas.push(ClipEmbedder::load_dir(&dir, &id, &device, dtype)?);
        }
        EmbedPool::from_replicas(replicas, opts)
    }

    /// A pool over already loaded replicas (one per device, all of the same model).
    pub fn from_replicas(replicas: Vec<ClipEmbedder>, opts: PoolOptions) -> Result<EmbedPool> {
        let Some(front) = replicas.first().cloned() else {
            return Err(Error::InvalidArgument(
                "embedding pool needs at least one device".into(),
            ));
        };
        if replicas.iter().any(|r| r.identity() != front.identity()) {
            return Err(Error::InvalidArgument(
                "pool replicas must be one model".into(),
            ));
        }
        let cap = opts.queue_capacity.max(1);
        let (bulk_tx, bulk_rx) = bounded::<Job>(cap);
        let (query_tx, query_rx) = bounded::<Job>(cap);
        let cache = Arc::new(Mutex::new(Cache::new(opts.cache_entries)));
        let mut workers = Vec::new();
        let mut bulk_workers = 0;
        for (i, r) in replicas.into_iter().enumerate() {
            let (n_bulk, bulk_threads) = match opts.bulk_workers_per_device {
                0 if r.device().is_cpu() => (
                    std::thread::available_parallelism().map_or(1, |n| n.get()),
                    1,
                ),
                0 => (1, 0),
                n => (n, opts.bulk_worker_threads),
            };
            bulk_workers += n_bulk;
            let bulk = (0..n_bulk).map(|_| ("bulk", &bulk_rx, bulk_threads));
            for (w, (lane, rx, threads)) in bulk.chain([("query", &query_rx, 0)]).enumerate() {
                let compute = match threads {
                    0 => None,
                    n => Some(
                        rayon::ThreadPoolBuilder::new()
                            .num_threads(n)
                            .thread_name(move |t| format!("mmdb-embed-{i}-{w}-{t}"))
                            .build()
                            .map_err(|e| {
                                Error::Model(format!("cannot start embedding threads: {e}"))
                            })?,
                    ),
                };
                // The query worker spreads a query over the cores on pools of its own: on shared
                // ones it would wait behind a bulk batch's rows.
                let model = match lane {
                    "query" => r.clone().with_own_cores(),
                    _ => r.clone(),
                };
                let (rx, cache) = (rx.clone(), cache.clone());
                let (max_batch, max_wait) = (opts.max_batch.max(1), opts.max_wait);
                let h = std::thread::Builder::new()
                    .name(format!("mmdb-embed-{lane}-{i}-{w}"))
                    .spawn(move || worker(model, rx, cache, max_batch, max_wait, compute))
                    .map_err(|e| Error::Model(format!("cannot start embedding worker: {e}")))?;
                workers.push(h);
            }
        }
        let preprocess_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.preprocess_threads.max(1))
            .thread_name(|i| format!("mmdb-preprocess-{i}"))
            .build()
            .map_err(|e| Error::Model(format!("cannot start preprocessing threads: {e}")))?;
        Ok(EmbedPool {
            front,
            lanes: Some((query_tx, bulk_tx)),
            workers,
            cache,
            preprocess_pool,
            max_batch: opts.max_batch.max(1),
            bulk_workers,
        })
    }

    /// The preprocessing settings of the model.
    pub fn preprocess(&self) -> &Preprocess {
        self.front.preprocess()
    }

    fn lane(&self, lane: Lane) -> Option<&Sender<Job>> {
        self.lanes
            .as_ref()
            .map(|(q, b)| if lane == Lane::Query { q } else { b })
    }

    /// Embeds `texts` through `lane`; one result per text, in order.
    pub fn embed_texts_in(&self, lane: Lane, texts: &[String]) -> Vec<Result<Vec<f32>>> {
        let (reply, results) = unbounded();
        for (row, t) in texts.iter().enumerate() {
            let key = hash(b"t", t.as_bytes());
            let job = self.front.tokenizer().encode(t).map(Input::Text);
            self.submit(lane, row, job, key, &reply);
        }
        drop(reply);
        collect(texts.len(), results)
    }

    /// Embeds `images` through `lane`; decoding runs on the preprocessing threads while the workers
    /// encode earlier rows. One result per image, in order.
    pub fn embed_images_in(
        &self,
        lane: Lane,
        images: &[ImageSource],
        limits: &ImageLimits,
    ) -> Vec<Result<Vec<f32>>> {
        use rayon::prelude::*;
        let (reply, results) = unbounded();
        // One batch at a time: a chunk is preprocessed in parallel and queued at once, so workers
        // see full batches, and the next chunk is preprocessed while the workers encode this one.
        // With several bulk workers a call is split so that each gets a share.
        let size = match lane {
            Lane::Bulk => self.max_batch.min(images.len().div_ceil(self.bulk_workers)),
            Lane::Query => self.max_batch,
        }
        .max(1);
        for (c, chunk) in images.chunks(size).enumerate() {
            let first = c * size;
            let prepared: Vec<Option<([u8; 32], Result<Input>)>> =
                self.preprocess_pool.install(|| {
                    chunk
                        .par_iter()
                        .enumerate()
                        .map(|(i, src)| self.prepare(first + i, src, limits, &reply))
                        .collect()
                });
            for (i, p) in prepared.into_iter().enumerate() {
                if let Some((key, job)) = p {
                    self.submit(lane, first + i, job, key, &reply);
                }
            }
        }
        drop(reply);
        collect(images.len(), results)
    }

    /// Reads, hashes and preprocesses one image; `None` when the cache answered it.
    fn prepare(
        &self,
        row: usize,
        src: &ImageSource,
        limits: &ImageLimits,
        reply: &Sender<(usize, Result<Vec<f32>>)>,
    ) -> Option<([u8; 32], Result<Input>)> {
        let bytes = match read_image(src, limits) {
            Ok(b) => b,
            Err(e) => return Some(([0; 32], Err(e))),
        };
        // The limits are part of the key: an image cached under looser limits is decoded (and
        // refused) again under stricter ones.
        let mut kind = b"i".to_vec();
        let deadline = limits.decode_deadline.map_or(u128::MAX, |d| d.as_nanos());
        for n in [limits.max_bytes, limits.max_pixels, limits.max_decode_bytes] {
            kind.extend_from_slice(&n.to_le_bytes());
        }
        kind.extend_from_slice(&deadline.to_le_bytes());
        let key = hash(&kind, &bytes);
        if let Some(v) = self.cache.lock().get(&key) {
            let _ = reply.send((row, Ok(v)));
            return None;
        }
        let pre = self.front.preprocess();
        let job = pre
            .decode_bytes(&src.name(), &bytes, limits)
            .map(|rgb| Input::Image(pre.pixels(&rgb)));
        Some((key, job))
    }

    fn submit(
        &self,
        lane: Lane,
        row: usize,
        job: Result<Input>,
        key: [u8; 32],
        reply: &Sender<(usize, Result<Vec<f32>>)>,
    ) {
        let input = match job {
            Ok(i) => i,
            Err(e) => {
                let _ = reply.send((row, Err(e)));
                return;
            }
        };
        if let Some(v) = self.cache.lock().get(&key) {
            let _ = reply.send((row, Ok(v)));
            return;
        }
        let job = Job {
            row,
            input,
            cache_key: Some(key),
            reply: reply.clone(),
        };
        let sent = self.lane(lane).map(|tx| tx.send(job));
        if !matches!(sent, Some(Ok(()))) {
            let _ = reply.send((row, Err(Error::Closed)));
        }
    }
}

fn collect(n: usize, results: Receiver<(usize, Result<Vec<f32>>)>) -> Vec<Result<Vec<f32>>> {
    let mut out: Vec<Option<Result<Vec<f32>>>> = (0..n).map(|_| None).collect();
    for (row, r) in results.iter() {
        out[row] = Some(r);
    }
    out.into_iter()
        .map(|o| o.unwrap_or(Err(Error::Closed)))
        .collect()
}

fn worker(
    model: ClipEmbedder,
    rx: Receiver<Job>,
    cache: Arc<Mutex<Cache>>,
    max_batch: usize,
    max_wait: Duration,
    compute: Option<rayon::ThreadPool>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + max_wait;
        while batch.len() < max_batch {
            match rx.recv_deadline(deadline) {
                Ok(j) => batch.push(j),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let (texts, images): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|j| matches!(j.input, Input::Text(_)));
        let run = || {
            run_batch(&model, texts, &cache);
            run_batch(&model, images, &cache);
        };
        // candle's kernels use the rayon pool they are called from.
        match &compute {
            Some(pool) => pool.install(run),
            None => run(),
        }
    }
}

fn run_batch(model: &ClipEmbedder, jobs: Vec<Job>, cache: &Mutex<Cache>) {
    if jobs.is_empty() {
        return;
    }
    let result = match &jobs[0].input {
        Input::Text(_) => {
            let ids: Vec<Vec<u32>> = jobs
                .iter()
                .map(|j| match &j.input {
                    Input::Text(t) => t.clone(),
                    Input::Image(_) => Vec::new(),
                })
                .collect();
            model.encode_ids(&ids)
        }
        Input::Image(_) => {
            let px: Vec<Vec<f32>> = jobs
                .iter()
                .map(|j| match &j.input {
                    Input::Image(p) => p.clone(),
                    Input::Text(_) => Vec::new(),
                })
                .collect();
            model.encode_pixels(&px)
        }
    };
    match result {
        Ok(vecs) => {
            let mut c = cache.lock();
            for (j, v) in jobs.iter().zip(&vecs) {
                if let Some(k) = j.cache_key {
                    c.put(k, v);
                }
            }
            drop(c);
            for (j, v) in jobs.into_iter().zip(vecs) {
                let _ = j.reply.send((j.row, Ok(v)));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for j in jobs {
                let _ = j.reply.send((j.row, Err(Error::Model(msg.clone()))));
            }
        }
    }
}

impl Drop for EmbedPool {
    fn drop(&mut self) {
        // Closing the lanes ends the workers once they drain.
        self.lanes = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Embedder for EmbedPool {
    fn identity(&self) -> &str {
        self.front.identity()
    }

    fn dim(&self) -> usize {
        self.front.dim()
    }

    /// A single text (a query) goes through [`Lane::Query`], several through [`Lane::Bulk`].
    fn embed_texts(&self, texts: &[String]) -> Vec<Result<Vec<f32>>> {
        let lane = if texts.len() <= 1 {
            Lane::Query
        } else {
            Lane::Bulk
        };
        self.embed_texts_in(lane, texts)
    }

    /// A single image (a query) goes through [`Lane::Query`], several through [`Lane::Bulk`].
    fn embed_images(&self, images: &[ImageSource], limits: &ImageLimits) -> Vec<Result<Vec<f32>>> {
        let lane = if images.len() <= 1 {
            Lane::Query
        } else {
            Lane::Bulk
        };
        self.embed_images_in(lane, images, limits)
    }
}
