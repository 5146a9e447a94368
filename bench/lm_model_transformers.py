"""transformers' side of `bench/lm_model_vs_transformers.sh`: the workloads of `rein bench lm --model`
on the same model, f32, with the same thread count.

  forward 4 x 128 (eval, no grad), greedy generation of 64 new tokens after a 16-token prompt at
  batch 1 and 8 (EOS ignored), and a training step 4 x 128 (forward + backward + AdamW).

Usage: python bench/lm_model_transformers.py MODEL_DIR [--threads 2] [--reps 3] [--json]
MODEL_DIR is a Hugging Face directory (e.g. written by `rein lm convert --model X.gguf --out DIR`).
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def timed(fn, reps):
    out = []
    for r in range(reps + 1):
        t = time.perf_counter()
        fn()
        if r > 0:
            out.append(time.perf_counter() - t)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    vocab = model.config.vocab_size
    ids = torch.randint(1, vocab, (4, 128))
    model.eval()

    def forward():
        with torch.no_grad():
            model(input_ids=ids).logits.sum().item()

    prompts = torch.randint(1, vocab, (8, 16))

    def gen(b):
        with torch.no_grad():
            model.generate(prompts[:b], attention_mask=torch.ones_like(prompts[:b]),
                           max_new_tokens=64, min_new_tokens=64, do_sample=False,
                           pad_token_id=0)

    fwd = timed(forward, a.reps)
    g1 = timed(lambda: gen(1), a.reps)
    g8 = timed(lambda: gen(8), a.reps)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)

    def step():
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    train = timed(step, a.reps)
    res = {"forward_4x128_seconds": fwd,
           "generation_batch1_tokens_per_second": 64 / g1,
           "generation_batch8_tokens_per_second": 8 * 64 / g8,
           "train_step_4x128_seconds": train,
           "threads": a.threads, "torch": torch.__version__}
    if a.json:
        print(json.dumps(res))
    else:
        print(f"forward 4x128 {fwd:.3f} s")
        print(f"generation batch 1: {64 / g1:.1f} tokens/s")
        print(f"generation batch 8: {8 * 64 / g8:.1f} tokens/s")
        print(f"train step 4x128 {train:.3f} s")


if __name__ == "__main__":
    main()
