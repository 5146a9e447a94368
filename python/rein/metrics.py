"""rein's text metrics with sacrebleu's, rouge-score's and vaderSentiment's results and
numbers (parity-tested against them): `bleu`, `chrf`, `rouge`, `vader`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple, Sequence, Union

from . import _rein


@dataclass
class BLEUScore:
    """sacrebleu's `BLEUScore` fields: `score` and `precisions` on the 0-100 scale."""

    score: float
    counts: list
    totals: list
    precisions: list
    bp: float
    sys_len: int
    ref_len: int


@dataclass
class CHRFScore:
    """sacrebleu's `CHRFScore.score` (0-100)."""

    score: float


class Score(NamedTuple):
    """rouge-score's `Score`."""

    precision: float
    recall: float
    fmeasure: float


def _streams(hyps: Sequence[str], references) -> list:
    refs = [list(s) for s in references]
    for s in refs:
        if len(s) != len(hyps):
            raise ValueError(f"each reference stream must hold {len(hyps)} references, one per hypothesis; got {len(s)}")
    return refs


def bleu(hypotheses: Union[str, Sequence[str]], references, effective_order: bool = False) -> BLEUScore:
    """BLEU as sacrebleu (13a, exp smoothing, case-sensitive). A list of hypotheses with
    reference streams is `BLEU().corpus_score(hypotheses, references)`; one hypothesis string
    with a list of references is `BLEU(effective_order=...).sentence_score(...)` (sacrebleu's
    `sentence_bleu` uses `effective_order=True`)."""
    if isinstance(hypotheses, str):
        return BLEUScore(**json.loads(_rein.sentence_bleu(hypotheses, list(references), effective_order)))
    hyps = list(hypotheses)
    return BLEUScore(**json.loads(_rein.corpus_bleu(hyps, _streams(hyps, references))))


def chrf(hypotheses: Union[str, Sequence[str]], references) -> CHRFScore:
    """chrF as sacrebleu (`CHRF().corpus_score` for a list with reference streams,
    `sentence_chrf` for one string with a list of references)."""
    if isinstance(hypotheses, str):
        return CHRFScore(_rein.sentence_chrf(hypotheses, list(references)))
    hyps = list(hypotheses)
    return CHRFScore(_rein.corpus_chrf(hyps, _streams(hyps, references)))


def rouge(target: str, prediction: str, use_stemmer: bool = False) -> dict:
    """rouge-score's `RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
    use_stemmer).score(target, prediction)`: a dict of `Score(precision, recall, fmeasure)`."""
    d = json.loads(_rein.rouge(target, prediction, use_stemmer))
    return {k: Score(v["precision"], v["recall"], v["fmeasure"]) for k, v in d.items()}


def vader(text: str) -> dict:
    """vaderSentiment's `SentimentIntensityAnalyzer().polarity_scores(text)`:
    `{neg, neu, pos, compound}`, rounded as it returns them."""
    return json.loads(_rein.vader(text))
