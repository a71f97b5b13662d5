//! CLIP's two transformer towers, as mmdb runs them: the same arithmetic as transformers' `CLIPModel`
//! (pinned by the golden tests), laid out for speed on CPU.
//!
//! Why not candle-transformers' towers, which this module replaced: measured on ViT-B/32, their
//! layout fell far short of the throughput PyTorch gets on the same cores (measurements:
//! docs/perf.md#gemm-weight-layout). The differences:
//!
//! - **Weights stored transposed** (`[in, out]`, contiguous) where gemm's AVX-512 kernels run
//!   (the default `avx512` feature on a CPU that has them). `x.matmul(w.t())`, which candle's
//!   `Linear` does, hands gemm a row-major left operand that it re-packs on every call. With gemm's
//!   AVX-512 kernels the packing took a large share of all CPU time, and for the few rows of a text
//!   query it made each matmul much slower than on the transposed copy (see [`WeightLayout`]).
//! - **One fused Q/K/V matmul** per layer, with the attention scale folded into the Q weights, and
//!   one copy to put heads first.
//! - **The last layer runs only the rows that are read**: the class token of each image, the pooled
//!   token of each text. Keys and values still come from every position. That skips ~8% of a
//!   ViT-B/32 image's work.
//! - **The patch embedding is one matmul** over unfolded patches (a convolution with stride equal to
//!   its kernel is exactly that).
//! - Fused softmax and LayerNorm kernels (candle-nn's); the LayerNorm epsilon and the activation come
//!   from `config.json` (quick-GELU or exact GELU), where candle's towers hard-code both.
//!
//! - **Each layer is cut into shards** (groups of heads, with the output-projection rows that read
//!   them; groups of MLP units, with their fc1 columns and fc2 rows): the layer's output is the
//!   residual plus the sum of its shards' outputs, so the shards of a small batch run on separate
//!   cores ([`Exec::Cores`], tensor parallelism) with two joins per layer, and one after another
//!   elsewhere ([`Exec::Serial`]). The shards are views into the layer's weights, not copies.
//! - Biases, position embeddings, residuals and the activation go through one single-threaded
//!   pass (`fused.rs`) instead of candle's element-wise ops.
//!
//! Attention runs in f32 whatever the model dtype, as candle's towers did.

use std::collections::HashMap;

use candle_core::{DType, Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use super::config::{Activation, TowerOptions};
use super::cores::Cores;
use super::fused::add_act;

type CResult<T> = candle_core::Result<T>;

/// How a dense layer's weight is kept in memory. The faster one depends on gemm's kernels, so it is
/// chosen once per model by [`WeightLayout::for_device`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightLayout {
    /// PyTorch's `[out, in]`, multiplied as `x.matmul(w.t())`, as candle's `Linear`. At least as
    /// fast with gemm's AVX2 kernels on ViT-B/32's shapes, and for cuBLAS, which transposes for
    /// free.
    OutIn,
    /// Transposed to `[in, out]` and contiguous, multiplied as `x.matmul(w)`: gemm's AVX-512 kernels
    /// read it in place instead of re-packing it on every call, which pays most for the few rows
    /// of a text query (measurements: docs/perf.md#gemm-weight-layout).
    #[cfg_attr(not(feature = "avx512"), allow(dead_code))]
    InOut,
}

impl WeightLayout {
    /// `InOut` on a CPU where gemm runs its AVX-512 kernels (the `avx512` feature and a CPU with
    /// AVX-512F), `OutIn` everywhere else.
    pub fn for_device(device: &candle_core::Device) -> WeightLayout {
        #[cfg(all(feature = "avx512", target_arch = "x86_64"))]
        if device.is_cpu() && std::arch::is_x86_feature_detected!("avx512f") {
            return WeightLayout::InOut;
        }
        let _ = device;
        WeightLayout::OutIn
    }

    /// The shape of a dense weight in this layout.
    fn shape(self, inputs: usize, outputs: usize) -> (usize, usize) {
        match self {
            WeightLayout::OutIn => (outputs, inputs),
            WeightLayout::InOut => (inputs, outputs),
        }
    }

    /// Rewrites the dense weights of a checkpoint's `tensors` into this layout, in place and one at a
    /// time, so loading never holds the model twice: the patch convolution becomes the 2-D weight of
    /// a dense layer, and with `InOut` every dense weight is transposed.
    pub fn apply(self, tensors: &mut HashMap<String, Tensor>) -> CResult<()> {
        for (name, t) in tensors.iter_mut() {
            let Some(layer) = name.strip_suffix(".weight") else {
                continue;
            };
            let dense = DENSE_LAYERS.iter().any(|l| layer.ends_with(l));
            if !dense || t.rank() < 2 {
                continue;
            }
            let out_in = t.reshape((t.dim(0)?, ()))?;
            *t = match self {
                WeightLayout::OutIn => out_in,
                WeightLayout::InOut => out_in.t()?.contiguous()?,
            };
        }
        Ok(())
    }
}

/// How a model's weights are arranged for the device that runs them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    pub layout: WeightLayout,
    /// Shards per layer for tensor parallelism (see [`Encoder::load`]): the CPU's cores, 1 on a GPU.
    pub shards: usize,
}

impl Placement {
    /// [`WeightLayout::for_device`]; on a CPU one shard per available core (at most
    /// [`MAX_SHARDS`]).
    pub fn for_device(device: &candle_core::Device) -> Placement {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Placement {
            layout: WeightLayout::for_device(device),
            shards: if device.is_cpu() {
                cores.min(MAX_SHARDS)
            } else {
                1
            },
        }
    }
}

/// The layers whose `.weight` is a dense map (`[out, in]` in the checkpoint; the patch embedding's
/// `[out, c, p, p]` is one over unfolded patches).
const DENSE_LAYERS: [&str; 9] = [
    ".q_proj",
    ".k_proj",
    ".v_proj",
    ".out_proj",
    ".fc1",
    ".fc2",
    "text_projection",
    "visual_projection",
    ".patch_embedding",
];

/// A dense layer, `[rows, in] -> [rows, out]`, its weight kept in a [`WeightLayout`].
#[derive(Clone, Debug)]
pub(crate) struct Dense {
    w: Tensor,
    bias: Option<Tensor>,
    layout: WeightLayout,
}

impl Dense {
    /// Loads `{name}.weight`, already in `layout` (see [`WeightLayout::apply`]), and `{name}.bias`
    /// when `has_bias` (CLIP's projections have none).
    pub fn load(
        vb: &VarBuilder,
        name: &str,
        (inputs, outputs): (usize, usize),
        layout: WeightLayout,
        has_bias: bool,
    ) -> CResult<Dense> {
        let vb = vb.pp(name);
        Ok(Dense {
            w: vb.get(layout.shape(inputs, outputs), "weight")?,
            bias: has_bias.then(|| vb.get(outputs, "bias")).transpose()?,
            layout,
        })
    }

    /// The output dimension of `w`.
    fn out_dim(&self) -> usize {
        match self.layout {
            WeightLayout::OutIn => 0,
            WeightLayout::InOut => 1,
        }
    }

    /// Multiplies weight and bias by `factor` (folds a constant scale of the output in).
    fn scaled(self, factor: f64) -> CResult<Dense> {
        Ok(Dense {
            w: (self.w * factor)?,
            bias: self.bias.map(|b| b * factor).transpose()?,
            layout: self.layout,
        })
    }

    /// The layers side by side: one matmul computes all their outputs, concatenated.
    fn concat(parts: &[Dense]) -> CResult<Dense> {
        let (Some(first), true) = (parts.first(), parts.iter().all(|d| d.bias.is_some())) else {
            candle_core::bail!("concat needs layers with biases");
        };
        let ws: Vec<&Tensor> = parts.iter().map(|d| &d.w).collect();
        let biases: Vec<&Tensor> = parts.iter().filter_map(|d| d.bias.as_ref()).collect();
        Ok(Dense {
            w: Tensor::cat(&ws, first.out_dim())?,
            bias: Some(Tensor::cat(&biases, 0)?),
            layout: first.layout,
        })
    }

    /// Output columns `start..start + len` only (views, no copy).
    fn columns(&self, start: usize, len: usize) -> CResult<Dense> {
        Ok(Dense {
            w: self.w.narrow(self.out_dim(), start, len)?,
            bias: self
                .bias
                .as_ref()
                .map(|b| b.narrow(0, start, len))
                .transpose()?,
            layout: self.layout,
        })
    }

    /// Input rows `start..start + len` only (views, no copy), with the bias when `with_bias`: the
    /// layer restricted to some of its inputs, whose outputs sum to the whole layer's.
    fn rows(&self, start: usize, len: usize, with_bias: bool) -> CResult<Dense> {
        Ok(Dense {
            w: self.w.narrow(1 - self.out_dim(), start, len)?,
            bias: if with_bias { self.bias.clone() } else { None },
            layout: self.layout,
        })
    }

    /// `x` (`[rows, in]`) times the weight, plus the bias.
    pub fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        self.forward_act(x, None)
    }

    /// `act(x W + bias)`, the bias and activation in one pass over the output (see
    /// [`super::fused`]).
    fn forward_act(&self, x: &Tensor, act: Option<Activation>) -> CResult<Tensor> {
        let y = match self.layout {
            WeightLayout::OutIn => x.matmul(&self.w.t()?)?,
            WeightLayout::InOut => x.matmul(&self.w)?,
        };
        match (&self.bias, act) {
            (Some(b), act) => add_act(&y, b, act),
            (None, None) => Ok(y),
            (None, Some(act)) => add_act(&y, &Tensor::zeros(1, y.dtype(), y.device())?, Some(act)),
        }
    }
}

/// The most shards a layer is cut into for tensor parallelism (see [`Encoder::load`]).
pub(crate) const MAX_SHARDS: usize = 4;

/// How the shards of a layer run.
#[derive(Clone, Copy)]
pub(crate) enum Exec<'a> {
    /// One after another on the calling thread (candle may still thread its matmuls).
    Serial,
    /// Shard `i` on core `i` (tensor parallelism); the forward pass must run inside
    /// [`Cores::install`] so that shard 0 runs in place.
    Cores(&'a Cores),
}

impl Exec<'_> {
    /// `task(0..n)`, in order.
    fn each(
        &self,
        n: usize,
        task: &(dyn Fn(usize) -> CResult<Tensor> + Sync),
    ) -> CResult<Vec<Tensor>> {
        match self {
            Exec::Serial => (0..n).map(task).collect(),
            Exec::Cores(cores) => cores
                .each(n, task)
                .map_err(|_| candle_core::Error::Msg("a CLIP layer shard panicked".into()))?
                .into_iter()
                .collect(),
        }
    }
}

/// A contiguous group of a layer's heads and of its MLP's hidden units: views into the layer's
/// weights, the unit of tensor parallelism.
#[derive(Clone, Debug)]
struct Shard {
    heads: usize,
    /// The group's Q (pre-scaled), K and V columns, side by side: `[d, 3 * heads * head_dim]`.
    qkv: Dense,
    /// The rows of the output projection that read the group's heads (bias on shard 0 only).
    out: Dense,
    fc1: Dense,
    /// The rows of fc2 that read the shard's fc1 columns (bias on shard 0 only).
    fc2: Dense,
}

/// One pre-LayerNorm encoder layer. Its output is the residual plus the sum of its shards' outputs.
#[derive(Clone, Debug)]
struct Layer {
    norm1: LayerNorm,
    norm2: LayerNorm,
    shards: Vec<Shard>,
}

/// A stack of encoder layers (`{prefix}.encoder.layers.N`), shared by both towers.
#[derive(Clone, Debug)]
pub(crate) struct Encoder {
    layers: Vec<Layer>,
    head_dim: usize,
    activation: Activation,
}

/// The sizes of one tower.
pub(crate) struct EncoderShape {
    pub width: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
}

/// `0..total` cut into `n` contiguous ranges whose lengths differ by at most one.
fn split_range(total: usize, n: usize) -> Vec<(usize, usize)> {
    (0..n)
        .map(|i| (i * total / n, (i + 1) * total / n - i * total / n))
        .collect()
}

impl Encoder {
    /// Loads the layers under `vb` (a tower's `encoder`), each cut into `placement.shards` groups
    /// of heads and MLP units (at most [`MAX_SHARDS`] and the head count; 1 on a GPU). The fused Q/K/V
    /// weight is stored shard by shard (`[Q0 K0 V0 | Q1 K1 V1 | ..]`) so that every shard's
    /// projection is one contiguous block of columns; the other shards are views, no copies.
    pub fn load(
        vb: &VarBuilder,
        shape: &EncoderShape,
        options: &TowerOptions,
        placement: Placement,
    ) -> CResult<Encoder> {
        let (layout, shards) = (placement.layout, placement.shards);
        let d = shape.width;
        if shape.heads == 0 || !d.is_multiple_of(shape.heads) {
            candle_core::bail!("hidden size {d} is not a multiple of {} heads", shape.heads);
        }
        let hd = d / shape.heads;
        let n = shards.clamp(1, MAX_SHARDS.min(shape.heads));
        let head_groups = split_range(shape.heads, n);
        let unit_groups = split_range(shape.intermediate, n);
        let scale = (hd as f64).powf(-0.5);
        let norm = |vb: VarBuilder| candle_nn::layer_norm(d, options.layer_norm_eps, vb);
        let layers = (0..shape.layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                let attn = vb.pp("self_attn");
                let mlp = vb.pp("mlp");
                let q = Dense::load(&attn, "q_proj", (d, d), layout, true)?.scaled(scale)?;
                let k = Dense::load(&attn, "k_proj", (d, d), layout, true)?;
                let v = Dense::load(&attn, "v_proj", (d, d), layout, true)?;
                let mut grouped = Vec::with_capacity(3 * n);
                for &(h0, hn) in &head_groups {
                    for part in [&q, &k, &v] {
                        grouped.push(part.columns(h0 * hd, hn * hd)?);
                    }
                }
                let qkv = Dense::concat(&grouped)?;
                let out = Dense::load(&attn, "out_proj", (d, d), layout, true)?;
                let fc1 = Dense::load(&mlp, "fc1", (d, shape.intermediate), layout, true)?;
                let fc2 = Dense::load(&mlp, "fc2", (shape.intermediate, d), layout, true)?;
                let shards = head_groups
                    .iter()
                    .zip(&unit_groups)
                    .enumerate()
                    .map(|(s, (&(h0, hn), &(u0, un)))| {
                        Ok(Shard {
                            heads: hn,
                            qkv: qkv.columns(3 * h0 * hd, 3 * hn * hd)?,
                            out: out.rows(h0 * hd, hn * hd, s == 0)?,
                            fc1: fc1.columns(u0, un)?,
                            fc2: fc2.rows(u0, un, s == 0)?,
                        })
                    })
                    .collect::<CResult<Vec<_>>>()?;
                Ok(Layer {
                    norm1: norm(vb.pp("layer_norm1"))?,
                    norm2: norm(vb.pp("layer_norm2"))?,
                    shards,
                })
            })
            .collect::<CResult<Vec<_>>>()?;
        Ok(Encoder {
            layers,
            head_dim: hd,
            activation: options.activation,
        })
    }

    /// Runs `x` (`[batch, seq, width]`) through every layer and returns the final state of one
    /// position per sequence, `keep[b]`, as `[batch, width]`. `mask` is added to the attention
    /// scores: `[seq, seq]` (text: causal).
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        keep: &[u32],
        exec: Exec,
    ) -> CResult<Tensor> {
        let (b, s, d) = x.dims3()?;
        if keep.len() != b || keep.iter().any(|&p| p as usize >= s) {
            candle_core::bail!("keep positions {keep:?} do not fit a batch of {b} x {s}");
        }
        let Some((last, rest)) = self.layers.split_last() else {
            let rows = kept_rows(keep, s, x.device())?;
            return x.reshape((b * s, d))?.index_select(&rows, 0);
        };
        let mut x = x.reshape((b * s, d))?;
        for layer in rest {
            let h = layer.norm1.forward(&x)?;
            let parts = exec.each(layer.shards.len(), &|i| {
                let shard = &layer.shards[i];
                let qkv = self.heads_first(&shard.qkv.forward(&h)?, b, s, 3, shard.heads)?;
                let attended = self.attend(&qkv.get(0)?, &qkv.get(1)?, &qkv.get(2)?, mask)?;
                shard.out.forward(&attended)
            })?;
            x = add_all(x, parts)?;
            x = self.mlp(layer, x, exec)?;
        }
        // The last layer: keys and values from every position, everything else for kept rows only.
        let h = last.norm1.forward(&x)?;
        let rows = kept_rows(keep, s, x.device())?;
        let x = x.index_select(&rows, 0)?;
        let h_kept = h.index_select(&rows, 0)?;
        let mask = match mask {
            Some(m) => {
                let positions = Tensor::from_slice(keep, b, x.device())?;
                Some(m.index_select(&positions, 0)?.reshape((b, 1, 1, s))?)
            }
            None => None,
        };
        let parts = exec.each(last.shards.len(), &|i| {
            let shard = &last.shards[i];
            let w = shard.heads * self.head_dim;
            let kv = shard.qkv.columns(w, 2 * w)?.forward(&h)?;
            let kv = self.heads_first(&kv, b, s, 2, shard.heads)?;
            let q = shard
                .qkv
                .columns(0, w)?
                .forward(&h_kept)?
                .reshape((b, 1, shard.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?;
            let attended = self.attend(&q, &kv.get(0)?, &kv.get(1)?, mask.as_ref())?;
            shard.out.forward(&attended)
        })?;
        self.mlp(last, add_all(x, parts)?, exec)
    }

    /// `[b*s, parts * heads * head_dim]` projections -> `[parts, b, heads, s, head_dim]`,
    /// contiguous.
    fn heads_first(
        &self,
        t: &Tensor,
        b: usize,
        s: usize,
        parts: usize,
        heads: usize,
    ) -> CResult<Tensor> {
        t.reshape((b, s, parts, heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()
    }

    /// Scaled dot-product attention of `q` (`[b, heads, sq, hd]`, already scaled) over `k`, `v`
    /// (`[b, heads, s, hd]`); returns `[b*sq, heads * hd]` in the model dtype.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> CResult<Tensor> {
        let dtype = q.dtype();
        let (b, heads, sq, hd) = q.dims4()?;
        let (q, k, v) = (
            q.to_dtype(DType::F32)?,
            k.to_dtype(DType::F32)?,
            v.to_dtype(DType::F32)?,
        );
        let scores = q.matmul(&k.t()?)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        probs
            .matmul(&v)?
            .to_dtype(dtype)?
            .transpose(1, 2)?
            .reshape((b * sq, heads * hd))
    }

    /// `x` plus the layer's MLP of `x`.
    fn mlp(&self, layer: &Layer, x: Tensor, exec: Exec) -> CResult<Tensor> {
        let h = layer.norm2.forward(&x)?;
        let parts = exec.each(layer.shards.len(), &|i| {
            let shard = &layer.shards[i];
            let h = shard.fc1.forward_act(&h, Some(self.activation))?;
            shard.fc2.forward(&h)
        })?;
        add_all(x, parts)
    }
}

/// `x` plus every part (all of one shape).
fn add_all(x: Tensor, parts: Vec<Tensor>) -> CResult<Tensor> {
    parts.iter().try_fold(x, |acc, p| add_act(&acc, p, None))
}

/// Row indices `b * seq + keep[b]` into a flattened `[batch * seq, ..]` tensor.
fn kept_rows(keep: &[u32], seq: usize, device: &candle_core::Device) -> CResult<Tensor> {
    let rows: Vec<u32> = keep
        .iter()
        .enumerate()
        .map(|(b, &p)| (b * seq) as u32 + p)
        .collect();
    Tensor::from_vec(rows, keep.len(), device)
}

/// The text tower: token and position embeddings, the causal encoder, the final LayerNorm.
#[derive(Clone, Debug)]
pub(crate) struct TextTower {
    token_embedding: Tensor,
    position_embedding: Tensor,
    encoder: Encoder,
    final_norm: LayerNorm,
}

impl TextTower {
    /// Loads `text_model` from `vb`.
    pub fn load(
        vb: &VarBuilder,
        shape: &EncoderShape,
        vocab: usize,
        positions: usize,
        options: &TowerOptions,
        placement: Placement,
    ) -> CResult<TextTower> {
        let d = shape.width;
        let e = vb.pp("embeddings");
        Ok(TextTower {
            token_embedding: e.pp("token_embedding").get((vocab, d), "weight")?,
            position_embedding: e.pp("position_embedding").get((positions, d), "weight")?,
            encoder: Encoder::load(&vb.pp("encoder"), shape, options, placement)?,
            final_norm: candle_nn::layer_norm(
                d,
                options.layer_norm_eps,
                vb.pp("final_layer_norm"),
            )?,
        })
    }

    /// The final state at `pool[b]` of each row of `ids` (`[batch, seq]`, u32): `[batch, width]`.
    pub fn forward(&self, ids: &Tensor, pool: &[u32], exec: Exec) -> CResult<Tensor> {
        let (b, s) = ids.dims2()?;
        let d = self.token_embedding.dim(1)?;
        let tokens = self
            .token_embedding
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, d))?;
        let x = add_act(&tokens, &self.position_embedding.narrow(0, 0, s)?, None)?;
        let mask = causal_mask(s, x.device())?;
        let pooled = self.encoder.forward(&x, Some(&mask), pool, exec)?;
        self.final_norm.forward(&pooled)
    }
}

/// `[seq, seq]`: 0 on and below the diagonal, f32's minimum above it (as transformers). f32 whatever
/// the model dtype: attention scores are f32 (see `Encoder::attend`).
fn causal_mask(seq: usize, device: &candle_core::Device) -> CResult<Tensor> {
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if j > i { f32::MIN } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (seq, seq), device)
}

/// The vision tower: patch, class and position embeddings, the pre-LayerNorm, the encoder, and the
/// post-LayerNorm of the class token.
#[derive(Clone, Debug)]
pub(crate) struct VisionTower {
    /// The patch convolution as a dense map of an unfolded patch (`channels * p * p -> width`).
    patch: Dense,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_norm: LayerNorm,
    encoder: Encoder,
    post_norm: LayerNorm,
    patch_size: usize,
    channels: usize,
    width: usize,
}

/// The vision tower's geometry.
pub(crate) struct VisionShape {
    pub channels: usize,
    pub image_size: usize,
    pub patch: usize,
}

impl VisionTower {
    /// Loads `vision_model` from `vb`.
    pub fn load(
        vb: &VarBuilder,
        shape: &EncoderShape,
        geometry: &VisionShape,
        options: &TowerOptions,
        placement: Placement,
    ) -> CResult<VisionTower> {
        let d = shape.width;
        let (c, p) = (geometry.channels, geometry.patch);
        let grid = geometry.image_size / p;
        let e = vb.pp("embeddings");
        Ok(VisionTower {
            patch: Dense::load(
                &e,
                "patch_embedding",
                (c * p * p, d),
                placement.layout,
                false,
            )?,
            class_embedding: e.get(d, "class_embedding")?,
            position_embedding: e
                .pp("position_embedding")
                .get((grid * grid + 1, d), "weight")?,
            pre_norm: candle_nn::layer_norm(d, options.layer_norm_eps, vb.pp("pre_layrnorm"))?,
            encoder: Encoder::load(&vb.pp("encoder"), shape, options, placement)?,
            post_norm: candle_nn::layer_norm(d, options.layer_norm_eps, vb.pp("post_layernorm"))?,
            patch_size: p,
            channels: c,
            width: d,
        })
    }

    /// The post-LayerNormed class token of each image in `pixels` (`[batch, channels, h, w]`, h and
    /// w the configured image size): `[batch, width]`.
    pub fn forward(&self, pixels: &Tensor, exec: Exec) -> CResult<Tensor> {
        let (b, c, h, w) = pixels.dims4()?;
        let (p, d) = (self.patch_size, self.width);
        if c != self.channels || !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            candle_core::bail!(
                "pixels of shape {:?} do not fit the patch embedding",
                pixels.dims()
            );
        }
        let (gh, gw) = (h / p, w / p);
        // Unfold into [b * patches, c * p * p] in the conv weight's (c, y, x) order.
        let patches = pixels
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b * gh * gw, c * p * p))?;
        let patches = self.patch.forward(&patches)?.reshape((b, gh * gw, d))?;
        let class = self.class_embedding.reshape((1, 1, d))?.repeat((b, 1, 1))?;
        let x = add_act(
            &Tensor::cat(&[&class, &patches], 1)?,
            &self.position_embedding,
            None,
        )?
        .reshape((b * (gh * gw + 1), d))?;
        let x = self.pre_norm.forward(&x)?.reshape((b, gh * gw + 1, d))?;
        let class_state = self.encoder.forward(&x, None, &vec![0; b], exec)?;
        self.post_norm.forward(&class_state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn causal_mask_hides_later_positions() {
        let m = causal_mask(3, &Device::Cpu).unwrap();
        let m: Vec<Vec<f32>> = m.to_vec2().unwrap();
        assert_eq!(m[0][0], 0.0);
        assert_eq!(m[0][1], f32::MIN);
        assert_eq!(m[2][1], 0.0);
        assert_eq!(m[1][2], f32::MIN);
    }

    #[test]
    fn both_weight_layouts_compute_the_same_layer() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (6, 5), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 6, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 5), &dev).unwrap();
        let run = |layout: WeightLayout| {
            let mut tensors = HashMap::from([("l.fc1.weight".to_string(), w.clone())]);
            layout.apply(&mut tensors).unwrap();
            let d = Dense {
                w: tensors.remove("l.fc1.weight").unwrap(),
                bias: Some(b.clone()),
                layout,
            };
            let fused = Dense::concat(&[d.clone(), d.clone().scaled(2.0).unwrap()]).unwrap();
            let all = fused.forward(&x).unwrap().to_vec2::<f32>().unwrap();
            let second = fused.columns(6, 6).unwrap().forward(&x).unwrap();
            (all, second.to_vec2::<f32>().unwrap())
        };
        let close = |a: &[Vec<f32>], b: &[Vec<f32>]| {
            let mut pairs = a.iter().flatten().zip(b.iter().flatten());
            pairs.clone().count() == a.len() * a[0].len()
                && pairs.all(|(x, y)| (x - y).abs() < 1e-4)
        };
        let (a, a2) = run(WeightLayout::OutIn);
        let (t, t2) = run(WeightLayout::InOut);
        assert!(close(&a, &t) && close(&a2, &t2), "{a:?} vs {t:?}");
        let second_half: Vec<Vec<f32>> = a.iter().map(|r| r[6..].to_vec()).collect();
        let doubled: Vec<Vec<f32>> = a
            .iter()
            .map(|r| r[..6].iter().map(|v| 2.0 * v).collect())
            .collect();
        assert!(close(&second_half, &a2) && close(&doubled, &a2));
    }

    #[test]
    fn kept_rows_index_the_flattened_batch() {
        let rows = kept_rows(&[0, 2, 1], 4, &Device::Cpu).unwrap();
        assert_eq!(rows.to_vec1::<u32>().unwrap(), vec![0, 6, 9]);
    }
}
