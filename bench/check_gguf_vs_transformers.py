"""A real GGUF model against transformers: rein's logits of the file within 1e-3 of transformers'
`from_pretrained(dir, gguf_file=...)` (which dequantises to float32), and the directory
`rein lm convert` writes loads in transformers with the same logits.

Usage: python bench/check_gguf_vs_transformers.py MODEL.gguf [REIN_BINARY]
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf = os.path.abspath(sys.argv[1])
rein = sys.argv[2] if len(sys.argv) > 2 else "target/release/rein"
seqs = [[1, 504, 2934, 30, 216, 17, 34, 1230], [9690, 47, 3, 818, 11, 36, 4500, 80, 12, 9]]
ids_arg = ";".join(",".join(map(str, s)) for s in seqs)


def rein_logits(model):
    out = subprocess.run([rein, "lm", "logits", "--model", model, "--ids", ids_arg, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return [torch.tensor(x) for x in json.loads(out)["logits"]]


def hf_logits(m):
    with torch.no_grad():
        return [m(input_ids=torch.tensor([s])).logits[0] for s in seqs]


ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                           dtype=torch.float32)
want = hf_logits(ref)
got = rein_logits(gguf)
d1 = max((g - w).abs().max().item() for g, w in zip(got, want))
print(f"rein (GGUF) vs transformers (same GGUF): max |logit diff| {d1:.2e}")
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "model")
    subprocess.run([rein, "lm", "convert", "--model", gguf, "--out", out], check=True,
                   capture_output=True)
    saved = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    d2 = max((g - w).abs().max().item() for g, w in zip(hf_logits(saved), want))
    print(f"transformers on rein's saved directory vs transformers on the GGUF: max |logit diff| {d2:.2e}")
    tk = AutoTokenizer.from_pretrained(out)
    chat = [{"role": "user", "content": "What is 12 + 30?"}]
    text = tk.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    ref_tk = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
    same = text == ref_tk.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    print(f"saved tokenizer's chat template renders as the GGUF's: {same}")
ok = d1 < 1e-3 and d2 < 1e-3 and same
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
