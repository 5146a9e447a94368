#!/usr/bin/env bash
# Language-model speed, rein (`rein bench lm`, candle, 2 threads) against Hugging Face
# transformers on PyTorch (2 threads), same shapes, in one run; prints the ratios
# (>= 1 means rein is faster).
#   bench/lm_vs_transformers.sh [SIZES]     (default tiny,small)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-tiny,small}
cargo build --release -q -p rein-cli
bench/machine.sh
rein=$(RAYON_NUM_THREADS=2 target/release/rein bench lm --sizes "$sizes" --json)
echo "rein: $rein"
if python3 -c "import transformers, torch" 2>/dev/null; then
    hf=$(python3 bench/lm_transformers.py "$sizes" 2)
    echo "transformers: $hf"
    python3 - "$rein" "$hf" <<'PY'
import json, sys
rein, hf = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for r, h in zip(rein["results"], hf["results"]):
    s = r["size"]
    print(f"{s}: forward 8x128 rein {r['forward_8x128_seconds']:.3f} s vs {h['forward_8x128_seconds']:.3f} s "
          f"(ratio {h['forward_8x128_seconds'] / r['forward_8x128_seconds']:.2f}); "
          f"generation rein {r['generate_tokens_per_second']:.1f} vs {h['generate_tokens_per_second']:.1f} tokens/s "
          f"(ratio {r['generate_tokens_per_second'] / h['generate_tokens_per_second']:.2f}); "
          f"train step rein {r['train_step_8x128_seconds']:.3f} s vs {h['train_step_8x128_seconds']:.3f} s "
          f"(ratio {h['train_step_8x128_seconds'] / r['train_step_8x128_seconds']:.2f})")
PY
else
    echo "transformers/torch not installed: only rein's figures above"
fi
