//! Hugging Face `config.json` of a `CLIPModel` -> the sizes and options mmdb's towers run with.
//!
//! The sizes are mmdb's own [`TextConfig`] and [`VisionConfig`] (the towers are mmdb's own, so
//! nothing here depends on candle-transformers). Absent fields take
//! transformers' documented defaults (`CLIPTextConfig`, `CLIPVisionConfig`), exactly as
//! `from_pretrained` would. The activation (quick-GELU or exact GELU) and the LayerNorm epsilon are
//! read per tower; a checkpoint with any other activation is refused, never run with a wrong one.

use std::path::Path;

use serde_json::Value as Json;

use crate::{Error, Result};

/// How the text tower picks the token whose state becomes the text embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPooling {
    /// The first position holding the highest token id (configs with the legacy `eos_token_id` 2, as
    /// the OpenAI checkpoints; the end token has the highest id in CLIP's vocabulary).
    ArgmaxFirst,
    /// The first position holding this end-of-text id.
    FirstEos(u32),
}

/// The feed-forward activation of a tower (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `quick_gelu`: `x * sigmoid(1.702 x)`, the OpenAI checkpoints'.
    QuickGelu,
    /// `gelu`: the exact (erf) GELU, as transformers' `GELUActivation`.
    Gelu,
}

/// Per-tower options beyond the sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TowerOptions {
    /// `hidden_act`.
    pub activation: Activation,
    /// `layer_norm_eps`.
    pub layer_norm_eps: f64,
}

/// The text tower's sizes (`text_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextConfig {
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `hidden_size`.
    pub embed_dim: usize,
    /// `intermediate_size` (the MLP's hidden width).
    pub intermediate_size: usize,
    /// `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
}

/// The vision tower's sizes (`vision_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisionConfig {
    /// `hidden_size`.
    pub embed_dim: usize,
    /// `intermediate_size` (the MLP's hidden width).
    pub intermediate_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `num_channels` (3: RGB).
    pub num_channels: usize,
    /// `image_size`: the side of the square input, in pixels.
    pub image_size: usize,
    /// `patch_size`: the side of a patch, in pixels.
    pub patch_size: usize,
}

/// Everything mmdb needs from `config.json`.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The text tower's sizes.
    pub text: TextConfig,
    /// The vision tower's sizes.
    pub vision: VisionConfig,
    /// Text pooling rule, as transformers applies it for this config.
    pub pooling: TextPooling,
    /// Token id used to pad a batch (its value never reaches the pooled state: the mask is causal).
    pub pad_token_id: u32,
    /// Dimension of the shared embedding space.
    pub projection_dim: usize,
    /// The text tower's activation and LayerNorm epsilon.
    pub text_options: TowerOptions,
    /// The vision tower's.
    pub vision_options: TowerOptions,
}

impl ModelConfig {
    /// Maximum number of text positions (tokens, start and end included).
    pub fn max_positions(&self) -> usize {
        self.text.max_position_embeddings
    }

    /// Reads and maps `path` (a `config.json`).
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        ModelConfig::from_json_str(&text).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Maps the text of a `config.json`.
    pub fn from_json_str(text: &str) -> Result<ModelConfig> {
        let root: Json = serde_json::from_str(text)
            .map_err(|e| Error::Model(format!("config.json is not valid JSON: {e}")))?;
        if let Some(t) = root.get("model_type").and_then(Json::as_str)
            && t != "clip"
        {
            return Err(Error::Model(format!(
                "model_type is {t:?}, mmdb runs only \"clip\" (CLIPModel) checkpoints"
            )));
        }
        let empty = Json::Object(Default::default());
        let t = Section::new(root.get("text_config").unwrap_or(&empty), "text_config");
        let v = Section::new(root.get("vision_config").unwrap_or(&empty), "vision_config");
        let projection_dim = Section::new(&root, "config").usize("projection_dim", 512)?;

        let options = |s: &Section| -> Result<TowerOptions> {
            let activation = match s.str("hidden_act", "quick_gelu")? {
                "quick_gelu" => Activation::QuickGelu,
                "gelu" => Activation::Gelu,
                act => {
                    return Err(Error::Model(format!(
                        "{}.hidden_act is {act:?}: mmdb runs \"quick_gelu\" and \"gelu\"",
                        s.name
                    )));
                }
            };
            let layer_norm_eps = s.f64("layer_norm_eps", 1e-5)?;
            if !(layer_norm_eps > 0.0 && layer_norm_eps < 1.0) {
                return Err(Error::Model(format!(
                    "{}.layer_norm_eps is {layer_norm_eps}: expected a small positive number",
                    s.name
                )));
            }
            Ok(TowerOptions {
                activation,
                layer_norm_eps,
            })
        };
        let text_options = options(&t)?;
        let vision_options = options(&v)?;

        let text_config = TextConfig {
            vocab_size: t.usize("vocab_size", 49408)?,
            embed_dim: t.usize("hidden_size", 512)?,
            intermediate_size: t.usize("intermediate_size", 2048)?,
            max_position_embeddings: t.usize("max_position_embeddings", 77)?,
            num_hidden_layers: t.usize("num_hidden_layers", 12)?,
            num_attention_heads: t.usize("num_attention_heads", 8)?,
        };
        let vision_config = VisionConfig {
            embed_dim: v.usize("hidden_size", 768)?,
            intermediate_size: v.usize("intermediate_size", 3072)?,
            num_hidden_layers: v.usize("num_hidden_layers", 12)?,
            num_attention_heads: v.usize("num_attention_heads", 12)?,
            num_channels: v.usize("num_channels", 3)?,
            image_size: v.usize("image_size", 224)?,
            patch_size: v.usize("patch_size", 32)?,
        };
        check_shapes(&text_config, &vision_config)?;

        let eos = t.usize("eos_token_id", 49407)?;
        let pooling = if eos == 2 {
            TextPooling::ArgmaxFirst
        } else {
            TextPooling::FirstEos(to_u32(eos, "text_config.eos_token_id")?)
        };
        let pad_token_id = to_u32(t.usize("pad_token_id", 1)?, "text_config.pad_token_id")?;
        Ok(ModelConfig {
            text: text_config,
            vision: vision_config,
            pooling,
            pad_token_id,
            projection_dim,
            text_options,
            vision_options,
        })
    }
}

fn check_shapes(t: &TextConfig, v: &VisionConfig) -> Result<()> {
    let bad = |what: String| Err(Error::Model(format!("unsupported CLIP config: {what}")));
    for (name, dim, heads) in [
        ("text", t.embed_dim, t.num_attention_heads),
        ("vision", v.embed_dim, v.num_attention_heads),
    ] {
        if dim == 0 || heads == 0 || dim % heads != 0 {
            return bad(format!(
                "{name} hidden_size {dim} is not a multiple of num_attention_heads {heads}"
            ));
        }
    }
    if v.patch_size == 0
        || v.image_size < v.patch_size
        || !v.image_size.is_multiple_of(v.patch_size)
    {
        return bad(format!(
            "image_size {} is not a multiple of patch_size {}",
            v.image_size, v.patch_size
        ));
    }
    if v.num_channels != 3 {
        return bad(format!(
            "num_channels is {}, expected 3 (RGB)",
            v.num_channels
        ));
    }
    if t.max_position_embeddings < 2 || t.vocab_size == 0 {
        return bad("text max_position_embeddings < 2 or vocab_size 0".into());
    }
    Ok(())
}

fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Model(format!("{what} {v} does not fit u32")))
}

/// One JSON object of the config with typed getters that fall back to transformers' defaults.
struct Section<'a> {
    json: &'a Json,
    name: &'static str,
}

impl<'a> Section<'a> {
    fn new(json: &'a Json, name: &'static str) -> Self {
        Section { json, name }
    }

    fn field(&self, key: &str) -> Option<&'a Json> {
        self.json.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, want: &str) -> Error {
        Error::Model(format!("{}.{key} is not {want}", self.name))
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.field(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| self.wrong(key, "a non-negative integer")),
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.field(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.wrong(key, "a number")),
        }
    }

    fn str(&self, key: &str, default: &'a str) -> Result<&'a str> {
        match self.field(key) {
            None => Ok(default),
            Some(v) => v.as_str().ok_or_else(|| self.wrong(key, "a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_vit_b_32() {
        let c = ModelConfig::from_json_str(r#"{"model_type":"clip"}"#).unwrap();
        assert_eq!(c.vision.embed_dim, 768);
        assert_eq!(c.vision.patch_size, 32);
        assert_eq!(c.text.embed_dim, 512);
        assert_eq!(c.projection_dim, 512);
        assert_eq!(c.pooling, TextPooling::FirstEos(49407));
    }

    #[test]
    fn vit_l_14_sizes_come_from_the_file() {
        let c = ModelConfig::from_json_str(
            r#"{"projection_dim":768,
                "text_config":{"hidden_size":768,"intermediate_size":3072,"num_attention_heads":12,
                               "eos_token_id":2},
                "vision_config":{"hidden_size":1024,"intermediate_size":4096,"num_hidden_layers":24,
                                 "num_attention_heads":16,"patch_size":14}}"#,
        )
        .unwrap();
        assert_eq!(c.vision.embed_dim, 1024);
        assert_eq!(c.vision.num_hidden_layers, 24);
        assert_eq!(c.vision.patch_size, 14);
        assert_eq!(c.text.embed_dim, 768);
        assert_eq!(c.projection_dim, 768);
        assert_eq!(c.pooling, TextPooling::ArgmaxFirst);
    }

    #[test]
    fn activation_and_epsilon_come_from_each_tower() {
        let c = ModelConfig::from_json_str(
            r#"{"text_config":{"hidden_act":"gelu","layer_norm_eps":1e-6}}"#,
        )
        .unwrap();
        assert_eq!(c.text_options.activation, Activation::Gelu);
        assert_eq!(c.text_options.layer_norm_eps, 1e-6);
        assert_eq!(c.vision_options.activation, Activation::QuickGelu);
        assert_eq!(c.vision_options.layer_norm_eps, 1e-5);
    }

    #[test]
    fn refuses_what_mmdb_cannot_run() {
        for bad in [
            r#"{"vision_config":{"hidden_act":"relu"}}"#,
            r#"{"text_config":{"hidden_act":"gelu_new"}}"#,
            r#"{"text_config":{"layer_norm_eps":-1}}"#,
            r#"{"vision_config":{"image_size":225}}"#,
            r#"{"vision_config":{"hidden_size":100,"num_attention_heads":12}}"#,
            r#"{"model_type":"siglip"}"#,
            r#"{"text_config":{"hidden_size":"big"}}"#,
            "not json",
        ] {
            let err = ModelConfig::from_json_str(bad).unwrap_err().to_string();
            assert!(err.starts_with("model error"), "{bad}: {err}");
        }
        let err = ModelConfig::from_json_str(r#"{"vision_config":{"hidden_act":"relu"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vision_config.hidden_act"), "{err}");
    }
}
