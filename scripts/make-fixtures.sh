#!/usr/bin/env bash
# Regenerates every generated file under tests/fixtures/ with pinned packages:
# the one command for all six fixture generators, run in the order their
# inputs need (tests/fixtures/README.md describes what each one writes).
#
#   step        generator                                   writes (reads)
#   llama       scripts/make_fixtures.py                    tiny-llama*, goldens.json
#   families    scripts/make_family_fixtures.py             tiny-<family>/, tiny-<family>.gguf, families.json
#   gemma3-mm   scripts/make_gemma3_multimodal_fixture.py   tiny-gemma3-mm/ (tiny-gemma3/, families.json)
#   lora        scripts/make_lora_fixtures.py               lora/, lora.json (tiny-llama/, tiny-gpt2/)
#   runs        scripts/make_training_run_fixture.py        runs/, runs.json (tiny-llama/)
#   tokenizers  scripts/make_tokenizer_goldens.py           real-tokenizers.json (models/tokenizers/,
#                                                           fetched first by scripts/fetch-real-tokenizers.sh)
#
#   scripts/make-fixtures.sh                 every step, in the order above
#   scripts/make-fixtures.sh lora runs       only the steps named, still in that order
#
# The first run creates .venv-fixtures/ (gitignored) from
# scripts/requirements-fixtures.txt (torch, transformers, peft...: several GB),
# and later runs reinstall only when that file has changed. Each generator is
# deterministic, rewrites only the files it owns and stops at its first failed
# self-check; so does this script. The text multilingual/udhr-article1.txt is
# committed, not generated (see multilingual/README.md). Environment knobs:
#   PYTHON=python3.11          interpreter used to create the venv (default: python3)
#   FIXTURES_PYTHON=/path/py   skip the venv and run the generators with this interpreter
#                              (it must already have the pinned packages)
#   PIP_*                      read by pip itself, e.g. PIP_EXTRA_INDEX_URL pointing at an
#                              index of CPU-only torch wheels to avoid the CUDA packages
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

steps=(llama families gemma3-mm lora runs tokenizers)
declare -A generator=(
    [llama]=scripts/make_fixtures.py
    [families]=scripts/make_family_fixtures.py
    [gemma3-mm]=scripts/make_gemma3_multimodal_fixture.py
    [lora]=scripts/make_lora_fixtures.py
    [runs]=scripts/make_training_run_fixture.py
    [tokenizers]=scripts/make_tokenizer_goldens.py
)

declare -A wanted=()
for name in "$@"; do
    if [[ -z "${generator[$name]+set}" ]]; then
        echo "error: no fixture step '$name' (steps: ${steps[*]})" >&2
        exit 2
    fi
    wanted[$name]=1
done

req="scripts/requirements-fixtures.txt"
if [[ -n "${FIXTURES_PYTHON:-}" ]]; then
    py="$FIXTURES_PYTHON"
else
    venv=".venv-fixtures"
    stamp="$venv/.requirements-fixtures.txt"
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "creating $venv" >&2
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    if ! cmp -s "$req" "$stamp"; then
        echo "installing $req into $venv" >&2
        "$venv/bin/python" -m pip install --disable-pip-version-check -r "$req"
        cp "$req" "$stamp"
    fi
    py="$venv/bin/python"
fi

for step in "${steps[@]}"; do
    if [[ $# -gt 0 && -z "${wanted[$step]+set}" ]]; then
        continue
    fi
    if [[ "$step" == tokenizers ]]; then
        # the real tokenizers it reads (pinned by sha256; fetched only when missing)
        scripts/fetch-real-tokenizers.sh
    fi
    echo "== $step: ${generator[$step]}" >&2
    "$py" "${generator[$step]}"
done
