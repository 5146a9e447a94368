"""rein.metrics equal sacrebleu, rouge-score and vaderSentiment on the reference fixtures."""

import json

import pytest

import rein
from conftest import METRIC_FIXTURES


def pairs():
    with open(METRIC_FIXTURES / "pairs.jsonl") as f:
        return [json.loads(l) for l in f]


def test_sentence_metrics_match_the_references():
    for p in pairs():
        for key, eff in (("sentence_bleu", False), ("sentence_bleu_effective_order", True)):
            got = rein.metrics.bleu(p["hyp"], [p["ref"]], effective_order=eff)
            want = p[key]
            assert got.score == pytest.approx(want["score"], abs=1e-9), (p["id"], key)
            assert got.counts == want["counts"] and got.totals == want["totals"]
            assert got.precisions == pytest.approx(want["precisions"], abs=1e-9)
            assert (got.sys_len, got.ref_len) == (want["sys_len"], want["ref_len"])
        assert rein.metrics.chrf(p["hyp"], [p["ref"]]).score == pytest.approx(p["sentence_chrf"], abs=1e-9)
        for key, stem in (("rouge_stem", True), ("rouge_nostem", False)):
            got = rein.metrics.rouge(p["ref"], p["hyp"], use_stemmer=stem)
            for k, v in p[key].items():
                assert list(got[k]) == pytest.approx(v, abs=1e-12), (p["id"], key, k)
        assert rein.metrics.vader(p["hyp"]) == p["vader_hyp"]
        assert rein.metrics.vader(p["ref"]) == p["vader_ref"]


def test_corpus_metrics_match_the_references():
    ps = pairs()
    corpus = json.loads((METRIC_FIXTURES / "corpus.json").read_text())
    for c in corpus["corpora"]:
        block = ps[c["first"] : c["end"]]
        hyps, refs = [p["hyp"] for p in block], [[p["ref"] for p in block]]
        got = rein.metrics.bleu(hyps, refs)
        assert got.score == pytest.approx(c["corpus_bleu"]["score"], abs=1e-9)
        assert got.counts == c["corpus_bleu"]["counts"]
        assert rein.metrics.chrf(hyps, refs).score == pytest.approx(c["corpus_chrf"], abs=1e-9)
    with pytest.raises(ValueError, match="one per hypothesis"):
        rein.metrics.bleu(["a", "b"], [["a"]])
