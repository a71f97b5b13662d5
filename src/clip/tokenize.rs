//! CLIP text tokenization with the model's `tokenizer.json` (`tokenizers` 0.23).
//!
//! `tokenizer.json` files usually carry no truncation, and the text tower has only
//! `max_position_embeddings` positions, so texts are truncated here the way transformers'
//! `truncation=True` does: the content is cut and the end token kept. Padding is left to the model
//! call, which pads a batch to its longest row, not to 77, so a short query encodes only the
//! positions it uses (measurements: docs/perf.md#text-padding).

use std::path::Path;

use tokenizers::Tokenizer;

use crate::{Error, Result};

/// A CLIP tokenizer bounded to the model's positions.
#[derive(Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    max_positions: usize,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("max_positions", &self.max_positions)
            .finish()
    }
}

impl ClipTokenizer {
    /// Loads `path` (a `tokenizer.json`); texts become at most `max_positions` ids.
    pub fn from_file(path: &Path, max_positions: usize) -> Result<ClipTokenizer> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| Error::Model(format!("cannot load tokenizer {}: {e}", path.display())))?;
        // Whatever the file says, truncation and padding are mmdb's (see module doc).
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| Error::Model(format!("tokenizer {}: {e}", path.display())))?;
        let tok = ClipTokenizer {
            inner,
            max_positions: max_positions.max(2),
        };
        let probe = tok.encode("a")?;
        if probe.len() < 2 {
            return Err(Error::Model(format!(
                "tokenizer {} adds no start/end tokens: not a CLIP tokenizer",
                path.display()
            )));
        }
        Ok(tok)
    }

    /// Maximum ids per text.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The ids of `text` with start and end tokens, truncated to the model's positions keeping the
    /// end token.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, true).map_err(|e| {
            Error::InvalidArgument(format!("cannot tokenize text {:?}: {e}", shorten(text)))
        })?;
        let mut ids = enc.get_ids().to_vec();
        if ids.len() > self.max_positions {
            let end = *ids.last().expect("longer than max_positions >= 2");
            ids.truncate(self.max_positions - 1);
            ids.push(end);
        }
        Ok(ids)
    }
}

fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(40).collect();
    if s.len() < text.len() {
        s.push_str("...");
    }
    s
}
