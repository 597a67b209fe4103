#!/usr/bin/env bash
# Regenerate tests/fixtures/ (models, GGUF files, goldens.json, families.json) with
# pinned packages: scripts/make_fixtures.py, then scripts/make_family_fixtures.py.
#
#   scripts/make-fixtures.sh
#
# The first run creates .venv-fixtures/ (gitignored) from scripts/requirements-fixtures.txt,
# and later runs reinstall only when that file has changed. Environment knobs:
#   PYTHON=python3.11          interpreter used to create the venv (default: python3)
#   FIXTURES_PYTHON=/path/py   skip the venv and run the generator with this interpreter
#                              (it must already have the pinned packages)
#   PIP_*                      read by pip itself, e.g. PIP_EXTRA_INDEX_URL pointing at an
#                              index of CPU-only torch wheels to avoid the CUDA packages
# Arguments are passed on to scripts/make_fixtures.py.
# (real-tokenizers.json has its own generator: scripts/make_tokenizer_goldens.py.)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
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

"$py" scripts/make_fixtures.py "$@"
exec "$py" scripts/make_family_fixtures.py
