"""TRL's GRPOTrainer on the model `rein bench lm-rl --save-model DIR` wrote: seconds per step
with 2 prompts x 4 completions x 32 tokens, beta 0, one optimizer step per batch, on CPU
with the given number of torch threads. Prints JSON {"grpo_seconds_per_step": ...}.
    python3 bench/grpo_trl.py DIR [THREADS] [STEPS]
"""
import json
import statistics
import sys
import time

import torch
from datasets import Dataset
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

model_dir = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 10
torch.set_num_threads(threads)

tok = PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json")
tok.pad_token = "<|endoftext|>"
tok.eos_token = "<|endoftext|>"
model = GPT2LMHeadModel.from_pretrained(model_dir)
prompts = json.load(open(f"{model_dir}/prompts.json"))
data = Dataset.from_dict({"prompt": prompts * 64})


def distinct_1(completions, **kwargs):
    out = []
    for c in completions:
        w = c.split()
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
    output_dir="/tmp/rein_grpo_trl",
    per_device_train_batch_size=8,
    num_generations=4,
    max_completion_length=32,
    learning_rate=1e-6,
    beta=0.0,
    temperature=1.0,
    max_steps=steps + 1,
    logging_steps=1000,
    save_strategy="no",
    report_to=[],
    use_cpu=True,
    bf16=False,
    seed=0,
    dataloader_num_workers=0,
)
timer = Timer()
trainer = GRPOTrainer(
    model=model,
    reward_funcs=distinct_1,
    args=cfg,
    train_dataset=data,
    processing_class=tok,
    callbacks=[timer],
)
trainer.train()
print(json.dumps({"grpo_seconds_per_step": statistics.median(timer.times[1:]), "steps": len(timer.times) - 1,
                  "threads": threads, "trl": __import__("trl").__version__}))
