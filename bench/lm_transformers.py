"""The transformers side of bench/lm_vs_transformers.sh: the same measurements as
`rein bench lm` (random GPT-2 small and the tiny GPT-2, float32, eval mode, 2 threads)."""
import json
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
sizes = sys.argv[1].split(",") if len(sys.argv) > 1 else ["tiny", "small"]
out = []
for size in sizes:
    kw = dict(embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    if size == "tiny":
        kw.update(n_layer=4, n_embd=256, n_head=4, vocab_size=8192, bos_token_id=8191, eos_token_id=8191)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**kw)).eval()
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab - 1, (8, 128))
    reps = 3 if size == "small" else 10
    times = []
    with torch.no_grad():
        for r in range(reps + 1):
            t = time.perf_counter()
            model(ids).logits.sum().item()
            if r:
                times.append(time.perf_counter() - t)
    fwd = sorted(times)[len(times) // 2]
    prompt = ids[:1, :16]
    gen = []
    with torch.no_grad():
        for r in range(3):
            t = time.perf_counter()
            model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                           max_new_tokens=64, min_new_tokens=64, pad_token_id=0)
            if r:
                gen.append(time.perf_counter() - t)
    g = sorted(gen)[len(gen) // 2]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    tr = []
    for r in range(reps + 1):
        t = time.perf_counter()
        loss = model(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if r:
            tr.append(time.perf_counter() - t)
    out.append({"size": size, "forward_8x128_seconds": fwd, "generate_tokens_per_second": 64 / g,
                "train_step_8x128_seconds": sorted(tr)[len(tr) // 2]})
print(json.dumps({"threads": torch.get_num_threads(), "results": out}))
