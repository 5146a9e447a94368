"""rein.lm: models load and generate as transformers does (greedy tokens of the reference
fixture), and GRPO/PPO train with Python reward functions called as TRL calls them."""

import json
from pathlib import Path

import pytest

import rein
from conftest import REPO

DECODERS = REPO / "crates/rein-lm/tests/fixtures/decoders"
GGUF = DECODERS / "gguf/tiny-llama-F32.gguf"


def test_greedy_generation_matches_transformers():
    case = json.loads((DECODERS / "llama/cases.json").read_text())["greedy"]
    model = rein.lm.load(DECODERS / "llama")
    (text, logprobs, ids), = model.generate([case["prompt"]], max_new_tokens=len(case["new_tokens"]), return_logprobs=True)
    assert ids == case["new_tokens"]
    assert len(logprobs) == len(ids) and all(lp <= 0 for lp in logprobs)


def test_text_and_chat_generation_on_a_gguf_model():
    model = rein.lm.load(GGUF)
    a = model.generate("sat on the", max_new_tokens=5)
    b = model.generate(["sat on the", "the three"], max_new_tokens=5)
    assert isinstance(a, str) and b[0] == a
    chat = model.generate([{"role": "user", "content": "sat on"}], max_new_tokens=4)
    assert isinstance(chat, str)
    text, ids = model.apply_chat_template([{"role": "user", "content": "hi"}])
    assert "<|im_start|>user" in text and len(ids) > 3
    s1 = model.generate(["sat"] * 3, max_new_tokens=6, temperature=1.0, seed=4)
    s2 = model.generate(["sat"] * 3, max_new_tokens=6, temperature=1.0, seed=4)
    assert s1 == s2
    with pytest.raises(ValueError, match="temperature"):
        model.generate("sat", temperature=-1.0)


PROMPTS = [
    {"prompt": "sat on the", "answer": "three", "level": 1},
    {"prompt": [{"role": "user", "content": "the three"}], "answer": "on", "level": 2},
    {"prompt": "is the", "answer": "sat"},
]
SETTINGS = dict(max_steps=3, prompts_per_step=2, group_size=2, max_new_tokens=4, learning_rate=1e-3)


def test_grpo_calls_reward_functions_as_trl_and_resumes(tmp_path):
    seen = []

    def length(prompts, completions, answer, level, **kwargs):
        seen.append((prompts, completions, answer, level))
        out = []
        for c in completions:
            text = c[0]["content"] if isinstance(c, list) else c
            out.append(float(len(text)))
        return out

    def only_level_one(prompts, completions, level, **kwargs):
        return [1.0 if lv == 1 else None for lv in level]

    rows = []
    run = rein.lm.grpo(
        model=GGUF, prompts=PROMPTS, reward_funcs=[length, only_level_one], reward_weights=[0.1, 1.0],
        runs_dir=tmp_path, callback=rows.append, checkpoint_every=1, **SETTINGS,
    )
    assert run.ended == "finished" and len(run.rows) == 3 and len(rows) == 3
    d = Path(run.run_dir)
    assert (d / "checkpoint.safetensors").exists() and (d / "model").is_dir()
    prompts, completions, answers, levels = seen[0]
    assert len(prompts) == len(completions) == len(answers) == 4  # 2 prompts x 2 samples
    assert set(levels) <= {1, 2, None}
    conv = [i for i, p in enumerate(prompts) if isinstance(p, list)]
    for i in conv:
        assert prompts[i][0]["role"] == "user" and completions[i][0]["role"] == "assistant"
    # Training on to 5 steps from the run equals one 5-step run.
    more = rein.lm.grpo(resume=run.run_dir, reward_funcs=[length, only_level_one], reward_weights=[0.1, 1.0], max_steps=5)
    assert len(more.rows) == 5
    whole = rein.lm.grpo(
        model=GGUF, prompts=PROMPTS, reward_funcs=[length, only_level_one], reward_weights=[0.1, 1.0],
        runs_dir=tmp_path / "whole", **{**SETTINGS, "max_steps": 5},
    )
    read = lambda r: (Path(r) / "checkpoint.safetensors").read_bytes()
    assert read(more.run_dir) == read(whole.run_dir)


def test_a_raising_reward_function_stops_with_its_traceback_and_the_checkpoint(tmp_path):
    calls = {"n": 0}

    def flaky(prompts, completions, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("the grader is down")
        return [0.5] * len(completions)

    with pytest.raises(RuntimeError, match="the last good checkpoint") as e:
        rein.lm.grpo(model=GGUF, prompts=PROMPTS, reward_funcs=flaky, runs_dir=tmp_path, checkpoint_every=1, **SETTINGS)
    assert isinstance(e.value.__cause__, ValueError) and "grader is down" in str(e.value.__cause__)
    (run,) = list(tmp_path.iterdir())
    assert (run / "checkpoint.safetensors").exists()
    done = rein.lm.grpo(resume=run, reward_funcs=lambda prompts, completions, **k: [0.0] * len(completions))
    assert done.ended == "finished" and len(done.rows) == 3


@pytest.mark.parametrize(
    "func,says",
    [
        (lambda prompts, completions, **k: [1.0], "returned 1 scores for 4 completions"),
        (lambda prompts, completions, **k: 3.0, "expected a list of 4 floats"),
        (lambda prompts, completions, **k: ["x"] * len(completions), "score 0 is 'x'"),
    ],
)
def test_bad_reward_returns_are_clear_errors(tmp_path, func, says):
    with pytest.raises(RuntimeError, match=says) as e:
        rein.lm.grpo(model=GGUF, prompts=PROMPTS, reward_funcs=func, runs_dir=tmp_path, **SETTINGS)
    # It failed before its first checkpoint: nothing to resume, so the directory is gone.
    assert "was removed" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_and_prompts_name_what_is_wrong(tmp_path):
    ok = lambda prompts, completions, **k: [0.0] * len(completions)
    with pytest.raises(ValueError, match="group_sise"):
        rein.lm.grpo(model=GGUF, prompts=PROMPTS, reward_funcs=ok, runs_dir=tmp_path, group_sise=2)
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        rein.lm.grpo(model=GGUF, prompts=[{"prompt": "a"}, {"text": "b"}], reward_funcs=ok, runs_dir=tmp_path)
    with pytest.raises(ValueError, match="reward_weights"):
        rein.lm.grpo(model=GGUF, prompts=PROMPTS, reward_funcs=[ok], reward_weights=[1, 2], runs_dir=tmp_path)


def test_ppo_trains_with_a_python_reward(tmp_path):
    run = rein.lm.ppo(
        model=GGUF, prompts=PROMPTS, runs_dir=tmp_path,
        reward_funcs=lambda prompts, completions, **k: [float(len(c) % 3) for c in completions],
        max_steps=2, prompts_per_step=2, max_new_tokens=4,
    )
    assert run.ended == "finished" and len(run.rows) == 2
