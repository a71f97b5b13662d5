//! `mmdb embed`: embeddings as JSON lines, for debugging a model and comparing with other tools.
//!
//! One line per input, texts first then images, each
//! `{"kind":"text","input":"...","model":"<identity>","dim":512,"embedding":[...]}`; an input that
//! fails gives `{"kind":...,"input":...,"error":"..."}` and the command still prints the rest, then
//! returns the first error.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use crate::clip::{EmbedPool, PoolOptions};
use crate::embedder::Embedder;
use crate::{Error, ImageLimits, ImageSource, Result};

/// Loads `model` (folder or hub id) and writes one JSON line per text and image to `out`.
/// The model runs in an [`EmbedPool`] with default options, so on the devices a database would
/// use (`MMDB_DEVICES`, see [`PoolOptions::devices`]).
pub fn run_embed(
    model: &str,
    texts: &[String],
    images: &[PathBuf],
    out: &mut dyn Write,
) -> Result<()> {
    if texts.is_empty() && images.is_empty() {
        return Err(Error::InvalidArgument(
            "mmdb embed needs at least one --text or --image".into(),
        ));
    }
    let embedder = EmbedPool::load(model, PoolOptions::default())?;
    write_lines(&embedder, texts, images, out)
}

/// [`run_embed`] with an already loaded embedder.
pub fn write_lines(
    embedder: &dyn Embedder,
    texts: &[String],
    images: &[PathBuf],
    out: &mut dyn Write,
) -> Result<()> {
    let sources: Vec<ImageSource> = images
        .iter()
        .map(|p| ImageSource::Path(p.to_string_lossy().into_owned()))
        .collect();
    let text_results = if texts.is_empty() {
        Vec::new()
    } else {
        embedder.embed_texts(texts)
    };
    let image_results = if sources.is_empty() {
        Vec::new()
    } else {
        embedder.embed_images(&sources, &ImageLimits::default().for_bulk_load())
    };
    let inputs = texts
        .iter()
        .map(|t| ("text", t.clone()))
        .chain(images.iter().map(|p| ("image", p.display().to_string())));
    let mut first_err = None;
    for ((kind, input), r) in inputs.zip(text_results.into_iter().chain(image_results)) {
        let line = match r {
            Ok(v) => json!({
                "kind": kind, "input": input, "model": embedder.identity(),
                // json! widens f32 to f64 as is (0.1308678686618805): print the f32's digits.
                "dim": v.len(), "embedding": v.iter().map(|x| crate::sql::widen_f32(*x)).collect::<Vec<f64>>(),
            }),
            Err(e) => {
                let line = json!({"kind": kind, "input": input, "error": e.to_string()});
                first_err.get_or_insert(e);
                line
            }
        };
        writeln!(out, "{line}").map_err(|e| Error::io("<output>", e))?;
    }
    out.flush().map_err(|e| Error::io("<output>", e))?;
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Embedder for Fixed {
        fn identity(&self) -> &str {
            "fixed"
        }
        fn dim(&self) -> usize {
            2
        }
        fn embed_texts(&self, texts: &[String]) -> Vec<Result<Vec<f32>>> {
            texts.iter().map(|_| Ok(vec![0.130_867_87, 1.0])).collect()
        }
        fn embed_images(&self, images: &[ImageSource], _: &ImageLimits) -> Vec<Result<Vec<f32>>> {
            images.iter().map(|_| Ok(vec![0.0, 1.0])).collect()
        }
    }

    #[test]
    fn embeddings_print_with_their_f32_digits() {
        let mut out = Vec::new();
        write_lines(&Fixed, &["a cat".into()], &[], &mut out).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains("\"embedding\":[0.13086787,1.0]"), "{line}");
    }
}
