//! The CLIP network: weights from `model.safetensors`, both towers and their projections.
//!
//! The towers are mmdb's (`transformer.rs`: candle-transformers' layout cost half of PyTorch's
//! throughput). Text pooling is done exactly as transformers does it (candle's `ClipModel` pools at
//! the argmax of the ids, which is wrong for configs with an explicit end id). Every tensor the
//! config implies is checked to be present with its shape before building.
//!
//! The file is memory-mapped through the storage module's `Mmap` (the only unsafe code) and each
//! tensor copied out of the map onto the device: the weights are never read whole into the heap
//! first (ViT-L/14's 1.7 GB would otherwise be held twice while loading).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::config::{ModelConfig, TextPooling};
use super::transformer::{
    Dense, EncoderShape, Exec, Placement, TextTower, VisionShape, VisionTower,
};
use crate::{Error, Result};

/// Maps a candle error into mmdb's, naming what was being done.
pub(crate) fn model_err(what: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::Model(format!("{what}: {e}"))
}

/// CLIP's two towers and projections on one device; cheap to clone (tensors are shared).
#[derive(Clone, Debug)]
pub struct ClipNet {
    text: TextTower,
    vision: VisionTower,
    text_projection: Dense,
    visual_projection: Dense,
    pooling: TextPooling,
    dtype: DType,
    device: Device,
}

impl ClipNet {
    /// Loads `weights` (a `model.safetensors`) for `config` onto `device`, computing in `dtype`.
    pub fn load(
        weights: &Path,
        config: &ModelConfig,
        device: &Device,
        dtype: DType,
    ) -> Result<ClipNet> {
        let file = std::fs::File::open(weights).map_err(|e| Error::io(weights, e))?;
        let map = crate::storage::Mmap::map(&file, weights)?;
        let what = format!("loading {}", weights.display());
        let mut tensors =
            candle_core::safetensors::load_buffer(map.bytes(), device).map_err(model_err(&what))?;
        drop(map);
        check_tensors(&tensors, config).map_err(|m| Error::Model(format!("{what}: {m}")))?;
        let placement = Placement::for_device(device);
        let layout = placement.layout;
        layout.apply(&mut tensors).map_err(model_err(&what))?;
        let vb = VarBuilder::from_tensors(tensors, dtype, device);
        let (t, v) = (&config.text, &config.vision);
        let projection = |name: &str, width: usize| {
            Dense::load(&vb, name, (width, config.projection_dim), layout, false)
        };
        let build = || -> candle_core::Result<ClipNet> {
            Ok(ClipNet {
                text: TextTower::load(
                    &vb.pp("text_model"),
                    &EncoderShape {
                        width: t.embed_dim,
                        intermediate: t.intermediate_size,
                        layers: t.num_hidden_layers,
                        heads: t.num_attention_heads,
                    },
                    t.vocab_size,
                    t.max_position_embeddings,
                    &config.text_options,
                    placement,
                )?,
                vision: VisionTower::load(
                    &vb.pp("vision_model"),
                    &EncoderShape {
                        width: v.embed_dim,
                        intermediate: v.intermediate_size,
                        layers: v.num_hidden_layers,
                        heads: v.num_attention_heads,
                    },
                    &VisionShape {
                        channels: v.num_channels,
                        image_size: v.image_size,
                        patch: v.patch_size,
                    },
                    &config.vision_options,
                    placement,
                )?,
                text_projection: projection("text_projection", t.embed_dim)?,
                visual_projection: projection("visual_projection", v.embed_dim)?,
                pooling: config.pooling,
                dtype,
                device: device.clone(),
            })
        };
        let net = build().map_err(model_err(&what))?;
        Ok(net)
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Unnormalised text features `[batch, projection_dim]` (f32) for rows of token ids padded to
    /// one length with `pad`, each layer's shards run by `exec`.
    pub(crate) fn text_features(&self, rows: &[Vec<u32>], pad: u32, exec: Exec) -> Result<Tensor> {
        let err = model_err("text encoder");
        let len = rows.iter().map(Vec::len).max().unwrap_or(0);
        if rows.is_empty() || len == 0 {
            return Err(Error::Model("text encoder: empty batch".into()));
        }
        let mut flat = Vec::with_capacity(rows.len() * len);
        let mut pool_at = Vec::with_capacity(rows.len());
        for ids in rows {
            pool_at.push(pool_position(ids, self.pooling) as u32);
            flat.extend_from_slice(ids);
            flat.extend(std::iter::repeat_n(pad, len - ids.len()));
        }
        let ids = Tensor::from_vec(flat, (rows.len(), len), &self.device).map_err(&err)?;
        // The mask is causal: padding after a row's end token never reaches its pooled state.
        self.text
            .forward(&ids, &pool_at, exec)
            .and_then(|t| self.text_projection.forward(&t))
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(&err)
    }

    /// Unnormalised image features `[batch, projection_dim]` (f32) for `[batch, 3, h, w]` pixels,
    /// each layer's shards run by `exec`.
    pub(crate) fn image_features(&self, pixels: &Tensor, exec: Exec) -> Result<Tensor> {
        let err = model_err("image encoder");
        let pixels = pixels
            .to_device(&self.device)
            .and_then(|p| p.to_dtype(self.dtype))
            .map_err(&err)?;
        self.vision
            .forward(&pixels, exec)
            .and_then(|t| self.visual_projection.forward(&t))
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(&err)
    }
}

/// Where transformers pools a row of ids (the first maximum / the first end token; 0 when absent,
/// as torch's argmax of an all-false row).
pub fn pool_position(ids: &[u32], pooling: TextPooling) -> usize {
    match pooling {
        TextPooling::ArgmaxFirst => {
            let mut best = 0;
            for (i, &id) in ids.iter().enumerate() {
                if id > ids[best] {
                    best = i;
                }
            }
            best
        }
        TextPooling::FirstEos(eos) => ids.iter().position(|&id| id == eos).unwrap_or(0),
    }
}

/// Every tensor the config needs, with its shape.
fn expected_tensors(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let t = &config.text;
    let v = &config.vision;
    let mut out = vec![
        (
            "text_model.embeddings.token_embedding.weight".into(),
            vec![t.vocab_size, t.embed_dim],
        ),
        (
            "text_model.embeddings.position_embedding.weight".into(),
            vec![t.max_position_embeddings, t.embed_dim],
        ),
        (
            "vision_model.embeddings.class_embedding".into(),
            vec![v.embed_dim],
        ),
        (
            "vision_model.embeddings.patch_embedding.weight".into(),
            vec![v.embed_dim, v.num_channels, v.patch_size, v.patch_size],
        ),
        (
            "vision_model.embeddings.position_embedding.weight".into(),
            vec![(v.image_size / v.patch_size).pow(2) + 1, v.embed_dim],
        ),
        (
            "text_projection.weight".into(),
            vec![config.projection_dim, t.embed_dim],
        ),
        (
            "visual_projection.weight".into(),
            vec![config.projection_dim, v.embed_dim],
        ),
    ];
    let norm = |out: &mut Vec<(String, Vec<usize>)>, p: String, d: usize| {
        out.push((format!("{p}.weight"), vec![d]));
        out.push((format!("{p}.bias"), vec![d]));
    };
    norm(&mut out, "text_model.final_layer_norm".into(), t.embed_dim);
    norm(&mut out, "vision_model.pre_layrnorm".into(), v.embed_dim);
    norm(&mut out, "vision_model.post_layernorm".into(), v.embed_dim);
    for (tower, d, inter, layers) in [
        (
            "text_model",
            t.embed_dim,
            t.intermediate_size,
            t.num_hidden_layers,
        ),
        (
            "vision_model",
            v.embed_dim,
            v.intermediate_size,
            v.num_hidden_layers,
        ),
    ] {
        for l in 0..layers {
            let p = format!("{tower}.encoder.layers.{l}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                out.push((format!("{p}.self_attn.{proj}.weight"), vec![d, d]));
                out.push((format!("{p}.self_attn.{proj}.bias"), vec![d]));
            }
            out.push((format!("{p}.mlp.fc1.weight"), vec![inter, d]));
            out.push((format!("{p}.mlp.fc1.bias"), vec![inter]));
            out.push((format!("{p}.mlp.fc2.weight"), vec![d, inter]));
            out.push((format!("{p}.mlp.fc2.bias"), vec![d]));
            norm(&mut out, format!("{p}.layer_norm1"), d);
            norm(&mut out, format!("{p}.layer_norm2"), d);
        }
    }
    out
}

fn check_tensors(
    tensors: &HashMap<String, Tensor>,
    config: &ModelConfig,
) -> std::result::Result<(), String> {
    let mut missing = Vec::new();
    for (name, shape) in expected_tensors(config) {
        match tensors.get(&name) {
            None => missing.push(name),
            Some(t) if t.dims() != shape.as_slice() => {
                return Err(format!(
                    "tensor {name} has shape {:?}, config.json implies {shape:?}",
                    t.dims()
                ));
            }
            Some(_) => {}
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let n = missing.len();
    missing.truncate(5);
    Err(format!(
        "{n} expected tensor(s) missing, e.g. {} (is this a CLIPModel checkpoint?)",
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_takes_the_first_maximum_or_first_end_token() {
        let ids = [5, 9, 3, 9, 9];
        assert_eq!(pool_position(&ids, TextPooling::ArgmaxFirst), 1);
        assert_eq!(pool_position(&ids, TextPooling::FirstEos(9)), 1);
        assert_eq!(pool_position(&ids, TextPooling::FirstEos(3)), 2);
        assert_eq!(pool_position(&ids, TextPooling::FirstEos(7)), 0);
    }

    #[test]
    fn a_missing_class_embedding_is_refused() {
        let config = ModelConfig::from_json_str(
            r#"{"projection_dim":4,"text_config":{"vocab_size":10,"hidden_size":4,
                "intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":1,
                "max_position_embeddings":6},"vision_config":{"hidden_size":4,"intermediate_size":8,
                "num_hidden_layers":1,"num_attention_heads":1,"image_size":8,"patch_size":4}}"#,
        )
        .unwrap();
        let mut ts: HashMap<String, Tensor> = expected_tensors(&config)
            .into_iter()
            .map(|(n, s)| (n, Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap()))
            .collect();
        check_tensors(&ts, &config).unwrap();
        ts.insert(
            "visual_projection.weight".into(),
            Tensor::zeros((4, 5), DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(
            check_tensors(&ts, &config)
                .unwrap_err()
                .contains("visual_projection")
        );
        ts.remove("vision_model.embeddings.class_embedding");
        ts.insert(
            "visual_projection.weight".into(),
            Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap(),
        );
        let e = check_tensors(&ts, &config).unwrap_err();
        assert!(e.contains("class_embedding"), "{e}");
    }
}
