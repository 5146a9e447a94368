//! Text metrics that need no tensors, so that they build in seconds (candle, which the
//! language models need, takes minutes): BLEU and chrF as sacrebleu 2.6 computes them,
//! ROUGE-1/2/L/Lsum as rouge-score 0.1.2 (with NLTK's Porter stemmer), and VADER sentiment as
//! vaderSentiment 3.3.2. Each is parity-tested against its reference on 150 fixture pairs
//! (`tests/metrics_parity.rs`). The rewards built on them live in `rein-lm::rewards`.

pub mod metrics;
pub mod porter;
pub mod report;
pub mod vader;
