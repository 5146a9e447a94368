#!/usr/bin/env bash
# Fetches MuJoCo 3.17.0 (the engine of rein's MuJoCo and DeepMind Control Suite environments)
# from the PyPI wheel `mujoco==3.17.0`, which ships `libmujoco.so.3.17.0` and its headers, and
# unpacks the library into third_party/mujoco/lib (git-ignored). `.cargo/config.toml` points the
# build there (MUJOCO_DYNAMIC_LINK_DIR, read by the mujoco-rs crate) and gives the binaries an
# rpath to it, so `cargo build` and `cargo test` need nothing else. Run it once per checkout:
#
#     scripts/fetch-mujoco.sh            # python3 -m pip download, then unzip
#     PYTHON=/path/to/python scripts/fetch-mujoco.sh
#
# The wheel's library does not depend on the Python version: one manylinux_2_28 x86_64 wheel is
# downloaded whatever Python runs pip.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.17.0
DEST=third_party/mujoco
LIB="$DEST/lib/libmujoco.so.$VERSION"
if [ -f "$LIB" ] && [ -L "$DEST/lib/libmujoco.so" ] && [ -f "$DEST/include/mujoco/mujoco.h" ]; then
    echo "MuJoCo $VERSION is already in $DEST"
    exit 0
fi
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) PLATFORM=manylinux_2_28_x86_64 ;;
    Linux-aarch64) PLATFORM=manylinux_2_28_aarch64 ;;
    *) echo "scripts/fetch-mujoco.sh: no MuJoCo wheel known for $(uname -s)-$(uname -m); set MUJOCO_DYNAMIC_LINK_DIR to a MuJoCo $VERSION lib/ directory instead" >&2; exit 1 ;;
esac
PY=${PYTHON:-python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --platform "$PLATFORM" \
    --python-version 3.11 "mujoco==$VERSION" -d "$TMP"
WHEEL=$(ls "$TMP"/mujoco-"$VERSION"-*.whl)
"$PY" - "$WHEEL" "$TMP/x" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith("mujoco/libmujoco.so") or name.startswith("mujoco/include/"):
            z.extract(name, sys.argv[2])
PYEOF
rm -rf "$DEST"
mkdir -p "$DEST/lib"
mv "$TMP/x/mujoco/libmujoco.so.$VERSION" "$DEST/lib/"
mv "$TMP/x/mujoco/include" "$DEST/include"
ln -s "libmujoco.so.$VERSION" "$DEST/lib/libmujoco.so"
echo "MuJoCo $VERSION unpacked into $DEST (from $(basename "$WHEEL"))"
