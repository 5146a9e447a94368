"""PEFT's logits of a LoRA adapter on a Llama-family model, for rein's LoRA parity checks.

  python bench/peft_lora_logits.py BASE_DIR ADAPTER_DIR OUT.json
      writes {"peft": ..., "sequences", "logits_at_real_positions", "merged_logits_at_real_positions"}
      (the adapted model's logits at the real positions of a left-padded batch, and those of
      merge_and_unload()) for the sequences of ADAPTER_DIR/cases.json, or three fixed ones.
  python bench/peft_lora_logits.py BASE_DIR ADAPTER_DIR --compare REIN.json IDS
      loads ADAPTER_DIR with PeftModel.from_pretrained and compares its logits on IDS
      ('1,2,3;4,5') with `rein lm logits --adapter ADAPTER_DIR --ids IDS --json` output
      (REIN.json); exits 1 above 1e-4.

Needs torch, transformers and peft (tested with transformers 5.24, peft 0.21.2).
"""
import json
import os
import sys

import torch
import transformers
from peft import PeftModel

torch.set_num_threads(1)


def real_logits(model, seqs):
    width = max(len(s) for s in seqs)
    ids = torch.tensor([[0] * (width - len(s)) + s for s in seqs])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    return [out[i, width - len(s):].tolist() for i, s in enumerate(seqs)]


def main():
    base, adapter = sys.argv[1], sys.argv[2]
    model = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter).eval()
    if sys.argv[3] == "--compare":
        rein = json.load(open(sys.argv[4]))
        seqs = [[int(x) for x in s.split(",")] for s in sys.argv[5].split(";")]
        got = real_logits(model, seqs)
        worst = max(
            abs(a - b)
            for g, w in zip(got, rein["logits"])
            for gr, wr in zip(g, w)
            for a, b in zip(gr, wr)
        )
        print(f"PEFT vs rein: max |logit diff| {worst:.3g}")
        sys.exit(0 if worst < 1e-4 else 1)
    cases = os.path.join(adapter, "cases.json")
    seqs = json.load(open(cases))["sequences"] if os.path.exists(cases) else [[1, 2, 3], [4, 5, 6, 7, 8], [9]]
    adapted = real_logits(model, seqs)
    merged = real_logits(model.merge_and_unload(), seqs)
    import peft

    json.dump(
        {
            "peft": peft.__version__,
            "transformers": transformers.__version__,
            "sequences": seqs,
            "logits_at_real_positions": adapted,
            "merged_logits_at_real_positions": merged,
        },
        open(sys.argv[3], "w"),
    )


if __name__ == "__main__":
    main()
