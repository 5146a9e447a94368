"""Language models from Python: `load` (a Hugging Face directory of GPT-2 or the Llama family,
or a GGUF file, optionally with a PEFT adapter) and `generate`; `grpo` and `ppo` fine-tune a
model through rein's run loop with reward functions written in Python, with TRL's signature:
`fn(prompts, completions, **columns) -> list[float | None]`."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Sequence, Union

from . import _rein
from .training import Run, _finish, _flatten_settings

RewardFunc = Callable[..., Sequence[Union[float, None]]]


class LanguageModel:
    """A loaded model with its tokenizer, chat template and generation defaults."""

    def __init__(self, path: str | os.PathLike, adapter: str | os.PathLike | None = None):
        self.path = str(path)
        self._lm = _rein.RustLm(self.path, None if adapter is None else str(adapter))

    def generate(
        self,
        prompts,
        max_new_tokens: int = 32,
        min_new_tokens: int = 0,
        do_sample: bool = False,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        stop: Sequence[str] = (),
        seed: int = 0,
        batch_size: int = 8,
        return_logprobs: bool = False,
    ):
        """Continuations of `prompts` (strings, lists of `{"role", "content"}` messages
        rendered with the chat template, or lists of token ids), greedy unless `do_sample` or
        a sampling setting is given (then `generation_config.json`'s defaults fill the rest, as
        transformers does); chat prompts stop at the end-of-turn tokens. Returns the texts, or
        with `return_logprobs` a list of `(text, token_logprobs, token_ids)`; the log-probs are
        `log_softmax(logits / temperature)` of each chosen token."""
        single = isinstance(prompts, str) or (
            isinstance(prompts, list) and prompts and isinstance(prompts[0], dict)
        )
        batch = [prompts] if single else list(prompts)
        out = self._lm.generate(
            batch, max_new_tokens, min_new_tokens, do_sample, temperature, top_k, top_p,
            repetition_penalty, list(stop), seed, batch_size,
        )
        result = out if return_logprobs else [t for t, _, _ in out]
        return result[0] if single else result

    def apply_chat_template(self, messages, add_generation_prompt: bool = True):
        """The chat template's `(text, token_ids)` of `messages`, as transformers'
        `apply_chat_template`."""
        return self._lm.apply_chat_template(messages, add_generation_prompt)


def load(path: str | os.PathLike, adapter: str | os.PathLike | None = None) -> LanguageModel:
    """The model at `path`: a directory (config.json, safetensors, tokenizer) or a .gguf file."""
    return LanguageModel(path, adapter)


def _train(kind, model, prompts, reward_funcs, reward_weights, runs_dir, callback, resume,
           checkpoint_every, max_updates, settings) -> Run:
    if callable(reward_funcs):
        reward_funcs = [reward_funcs]
    funcs = list(reward_funcs or [])
    if not all(callable(f) for f in funcs):
        raise ValueError("reward_funcs must be callables fn(prompts, completions, **columns)")
    if resume is None and model is None:
        raise ValueError("model= is required (or resume=)")
    if isinstance(prompts, (str, os.PathLike)):
        prompts = str(prompts)
    elif prompts is not None:
        prompts = list(prompts)
    flat = _flatten_settings(settings)
    return _finish(
        _rein.lm_train(
            kind,
            None if model is None else str(getattr(model, "path", model)),
            prompts,
            funcs,
            None if reward_weights is None else [float(w) for w in reward_weights],
            flat,
            str(runs_dir),
            None if resume is None else str(resume),
            callback,
            int(checkpoint_every),
            max_updates,
        )
    )


def grpo(
    model=None,
    prompts: str | os.PathLike | Iterable[dict] | None = None,
    reward_funcs: RewardFunc | Sequence[RewardFunc] = (),
    reward_weights: Sequence[float] | None = None,
    runs_dir: str | os.PathLike = "runs/lm",
    callback: Callable[[dict], Any] | None = None,
    resume: str | os.PathLike | None = None,
    checkpoint_every: int = 50,
    max_updates: int | None = None,
    **settings: Any,
) -> Run:
    """GRPO (and Dr. GRPO, RLOO, REINFORCE through `baseline=`) on `model` (a path or a
    `LanguageModel`) and `prompts` (a JSONL path or row dicts in TRL's forms: `{"prompt":
    text or messages, "answer": ..., other columns}`), as `rein lm grpo`, with `settings` its
    `--set` keys (`max_steps`, `group_size`, `lora={"r": 16}`, ...). Each reward function is
    called as TRL calls it: `fn(prompts=[...], completions=[...], **columns)` (conversational
    prompts as message lists and completions as `[{"role": "assistant", "content": ...}]`),
    returning one float or None per completion; several are summed with `reward_weights`,
    None leaving a function out for that completion. An exception in a reward function stops
    training with the last checkpoint intact and is raised as the cause of a RuntimeError.
    `resume=run_dir` (with the same reward functions) continues a run exactly."""
    return _train("grpo", model, prompts, reward_funcs, reward_weights, runs_dir, callback, resume,
                  checkpoint_every, max_updates, settings)


def ppo(
    model=None,
    prompts: str | os.PathLike | Iterable[dict] | None = None,
    reward_funcs: RewardFunc | Sequence[RewardFunc] = (),
    reward_weights: Sequence[float] | None = None,
    runs_dir: str | os.PathLike = "runs/lm",
    callback: Callable[[dict], Any] | None = None,
    resume: str | os.PathLike | None = None,
    checkpoint_every: int = 50,
    max_updates: int | None = None,
    **settings: Any,
) -> Run:
    """PPO for language models (value head or value model, KL penalty, TRL's names), as
    `rein lm ppo`, with Python reward functions as in `grpo`."""
    return _train("ppo", model, prompts, reward_funcs, reward_weights, runs_dir, callback, resume,
                  checkpoint_every, max_updates, settings)
