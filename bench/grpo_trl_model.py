"""TRL's GRPOTrainer on a real Hugging Face model directory, as `rein bench lm-rl --model` runs
rein: 2 chat prompts (rein's MODEL_RL_PROMPTS) x 4 completions of exactly 32 tokens
(min_new_tokens = max_completion_length = 32), temperature 1, beta 0, one iteration, lr 1e-6,
reward distinct-1, float32 on CPU with the given torch threads; with --lora a PEFT adapter
(r 16, alpha 32, q/k/v/o_proj). Prints JSON with the median seconds per step (after one
warm-up step) and the peak resident memory (ru_maxrss).
    python3 bench/grpo_trl_model.py MODEL_DIR [--lora] [--threads N] [--steps N]
"""
import argparse
import json
import resource
import statistics
import time

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

PROMPTS = ["What is 12 + 30?", "Write one sentence about the sea."]

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--lora", action="store_true")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=3)
a = ap.parse_args()
torch.set_num_threads(a.threads)

tok = AutoTokenizer.from_pretrained(a.model)
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
data = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in PROMPTS] * 64})


def distinct_1(completions, **kwargs):
    out = []
    for c in completions:
        text = c[0]["content"] if isinstance(c, list) else c
        w = text.split()
        out.append(len(set(w)) / len(w) if w else 1.0)
    return out


class Timer(TrainerCallback):
    def __init__(self):
        self.times, self.t = [], None

    def on_step_begin(self, args, state, control, **kw):
        self.t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self.t)


cfg = GRPOConfig(
    output_dir="/tmp/rein_grpo_trl_model",
    per_device_train_batch_size=8,
    num_generations=4,
    max_completion_length=32,
    generation_kwargs={"min_new_tokens": 32},
    learning_rate=1e-6,
    beta=0.0,
    num_iterations=1,
    temperature=1.0,
    max_steps=a.steps + 1,
    logging_steps=1000,
    save_strategy="no",
    report_to=[],
    use_cpu=True,
    bf16=False,
    seed=0,
    dataloader_num_workers=0,
)
peft_config = None
if a.lora:
    from peft import LoraConfig

    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")
timer = Timer()
trainer = GRPOTrainer(model=model, reward_funcs=distinct_1, args=cfg, train_dataset=data,
                      processing_class=tok, callbacks=[timer], peft_config=peft_config)
trainer.train()
print(json.dumps({
    "grpo_seconds_per_step": statistics.median(timer.times[1:]),
    "steps": len(timer.times) - 1,
    "threads": a.threads,
    "lora": a.lora,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "trl": __import__("trl").__version__,
}))
