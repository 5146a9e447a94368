//! Tokenisers through the `tokenizers` crate: a `tokenizer.json`, GPT-2's `vocab.json` +
//! `merges.txt`, or a byte-level BPE trained here on a text corpus.

use crate::LmError;
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, TokenizerBuilder};

/// The end-of-text token of GPT-2 style vocabularies.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A text tokeniser.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

fn tk_err(path: &Path, e: impl std::fmt::Display) -> LmError {
    LmError::Format(format!("{}: {e}", path.display()))
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json`, else `dir/vocab.json` + `dir/merges.txt` (byte-level BPE as
    /// GPT-2); `Ok(None)` when the directory has neither.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>, LmError> {
        let json = dir.join("tokenizer.json");
        if json.exists() {
            return Self::from_file(&json).map(Some);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vocab.exists() && merges.exists() {
            let bpe = BPE::from_file(&vocab.display().to_string(), &merges.display().to_string())
                .build()
                .map_err(|e| tk_err(&vocab, e))?;
            let mut inner = tokenizers::Tokenizer::new(bpe);
            inner.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
            inner.with_decoder(Some(ByteLevelDecoder::default()));
            inner.with_post_processor(Some(ByteLevel::default().trim_offsets(false)));
            return Ok(Some(Self { inner }));
        }
        Ok(None)
    }

    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, LmError> {
        if !path.exists() {
            return Err(LmError::Format(format!("{}: missing", path.display())));
        }
        // The tokenizers crate unwraps inside some of its deserialisers (a damaged decoder
        // section panics in `decoders/mod.rs`): a damaged file must be an error, not a crash.
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let loaded = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_file(path));
        std::panic::set_hook(quiet);
        let inner = match loaded {
            Ok(r) => r.map_err(|e| tk_err(path, e))?,
            Err(_) => {
                return Err(LmError::Format(format!(
                    "{}: not a valid tokenizer.json (the tokenizers library could not read it)",
                    path.display()
                )))
            }
        };
        Ok(Self { inner })
    }

    /// Trains a byte-level BPE (GPT-2's pre-tokenisation, decoder and `<|endoftext|>`) with
    /// `vocab_size` entries on the text files `files`. With `split_digits` every digit is a token
    /// of its own (a `Digits` pre-tokenizer before the byte-level one, as LLaMA's tokenizer):
    /// a small model then reads the tens and units of a number instead of one opaque token per
    /// number, which is what arithmetic needs.
    pub fn train_bpe(
        files: &[std::path::PathBuf],
        vocab_size: usize,
        split_digits: bool,
    ) -> Result<Self, LmError> {
        if vocab_size < 257 {
            return Err(LmError::Input(format!(
                "vocab_size must be at least 257 (256 bytes and {END_OF_TEXT}), got {vocab_size}"
            )));
        }
        for f in files {
            if !f.exists() {
                return Err(LmError::Format(format!("{}: missing", f.display())));
            }
        }
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let byte_level =
            PreTokenizerWrapper::ByteLevel(ByteLevel::default().add_prefix_space(false));
        let pre_tokenizer = if split_digits {
            PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                byte_level,
            ]))
        } else {
            byte_level
        };
        let mut tk = TokenizerBuilder::new()
            .with_model(BPE::default())
            .with_normalizer(None::<tokenizers::NormalizerWrapper>)
            .with_pre_tokenizer(Some(pre_tokenizer))
            .with_post_processor(Some(ByteLevel::default().trim_offsets(false)))
            .with_decoder(Some(ByteLevelDecoder::default()))
            .build()
            .map_err(|e| LmError::Format(e.to_string()))?;
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        tk.train_from_files(&mut trainer, names)
            .map_err(|e| LmError::Format(format!("training the tokenizer: {e}")))?;
        let json = tk
            .to_string(false)
            .map_err(|e| LmError::Format(e.to_string()))?;
        let inner: tokenizers::Tokenizer = json
            .parse()
            .map_err(|e| LmError::Format(format!("trained tokenizer: {e}")))?;
        Ok(Self { inner })
    }

    /// A byte-level BPE (GPT-2's pre-tokenisation, decoder and post-processor) from its parts,
    /// as a GGUF file stores them: `tokens` (id = index), `merges` (`"left right"`) and llama.cpp's
    /// token types, where CONTROL (3) tokens become special added tokens and USER_DEFINED (4)
    /// ones plain added tokens, each matched whole in text.
    pub fn from_bpe_parts(
        tokens: &[String],
        merges: &[String],
        types: &[i32],
    ) -> Result<Self, String> {
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges: Vec<(String, String)> = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| {
                        format!("tokenizer.ggml.merges[{i}] = {m:?} is not \"left right\"")
                    })
            })
            .collect::<Result<_, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| format!("tokenizer: {e}"))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        inner.with_post_processor(Some(ByteLevel::default().trim_offsets(false)));
        let of_type = |wanted: i32| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(types.iter().chain(std::iter::repeat(&1)))
                .filter(|(_, &ty)| ty == wanted)
                .map(|(t, _)| AddedToken::from(t.clone(), wanted == 3))
                .collect()
        };
        inner
            .add_special_tokens(of_type(3))
            .map_err(|e| format!("tokenizer: {e}"))?;
        inner
            .add_tokens(of_type(4))
            .map_err(|e| format!("tokenizer: {e}"))?;
        Ok(Self { inner })
    }

    /// Writes `tokenizer.json` atomically.
    pub fn save(&self, path: &Path) -> Result<(), LmError> {
        let json = self
            .inner
            .to_string(true)
            .map_err(|e| LmError::Format(e.to_string()))?;
        rein_core::metrics::write_atomic(path, json.as_bytes()).map_err(|e| LmError::io(path, e))
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LmError> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(|e| LmError::Input(format!("tokenizing {text:?}: {e}")))?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids` (special tokens skipped when `skip_special`).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, LmError> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| LmError::Input(format!("decoding {ids:?}: {e}")))
    }

    /// The id of a token string, if in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
