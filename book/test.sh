#!/usr/bin/env bash
# Runs every `sh run` block of the book (book/src/*.md) and checks the `text output` block
# that follows it: each of its non-empty lines must be a whole line of the block's output.
# Each page runs in its own temporary directory, with this checkout's `rein` first on PATH
# (REIN_BIN: a directory holding `rein`; default target/release, else target/debug, built if
# missing). Exits non-zero if a block fails or its quoted output is not printed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${REIN_BIN:-}
if [ -z "$bin" ]; then
    for d in target/release target/debug; do
        if [ -x "$d/rein" ]; then bin="$root/$d"; break; fi
    done
fi
if [ -z "$bin" ]; then
    cargo build --release -q -p rein-cli
    bin="$root/target/release"
fi
python3 - "$bin" "$root/book/src" <<'PY'
import os, re, subprocess, sys, tempfile, pathlib

bin_dir, src = sys.argv[1], pathlib.Path(sys.argv[2])
env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
fence = re.compile(r"^```(.*)$")
failed = ran = 0
for page in sorted(src.glob("*.md")):
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = fence.match(lines[i])
        if m and m.group(1).strip():
            info, body, start = m.group(1).strip(), [], i + 1
            i += 1
            while i < len(lines) and lines[i] != "```":
                body.append(lines[i])
                i += 1
            blocks.append((info, "\n".join(body), start))
        i += 1
    with tempfile.TemporaryDirectory() as work:
        for k, (info, body, line) in enumerate(blocks):
            if info != "sh run":
                continue
            ran += 1
            where = f"{page.name}:{line}"
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=work, env=env,
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                failed += 1
                print(f"FAIL {where}: exit {r.returncode}\n{r.stdout}{r.stderr}")
                continue
            out = set(l.rstrip() for l in r.stdout.splitlines())
            if k + 1 < len(blocks) and blocks[k + 1][0] == "text output":
                missing = [l for l in blocks[k + 1][1].splitlines() if l.strip() and l.rstrip() not in out]
                if missing:
                    failed += 1
                    print(f"FAIL {where}: these quoted lines were not printed:")
                    for l in missing:
                        print(f"  {l}")
                    print("the output was:\n" + r.stdout)
                    continue
            print(f"ok   {where}")
print(f"{ran - failed} passed, {failed} failed")
sys.exit(1 if failed or ran == 0 else 0)
PY
