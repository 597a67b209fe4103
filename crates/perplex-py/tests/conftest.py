"""Shared fixtures of the Python tests: the repository's tiny models and the
``perplex`` binary to compare with (``PERPLEX_BIN``, which scripts/test
sets; else target/debug/perplex)."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
TINY = FIXTURES / "tiny-llama"
TOKENIZER = TINY / "tokenizer.json"

TEXTS = [
    "The cat sat on the mat. It was a sunny day, and the cat was happy.",
    "Rust is a language empowering everyone to build reliable software.",
    "x",
    "",
]

_TIMING = re.compile(r'"timing": \{[^}]*\}')


def without_timing(text: str) -> str:
    """A report's JSON text with its timing (which differs run to run) blanked."""
    return _TIMING.sub('"timing": {}', text)


@pytest.fixture(scope="session")
def perplex_bin() -> Path:
    path = Path(os.environ.get("PERPLEX_BIN", ROOT / "target" / "debug" / "perplex"))
    if not path.is_file():
        pytest.skip(f"no perplex binary at {path} (build it with cargo build, or set PERPLEX_BIN)")
    return path


@pytest.fixture(scope="session")
def cli(perplex_bin):
    """Runs the binary; returns (exit code, stdout, stderr)."""

    def run(*args: str):
        p = subprocess.run(
            [str(perplex_bin), *map(str, args)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        return p.returncode, p.stdout, p.stderr

    return run


@pytest.fixture(scope="session")
def cli_json(cli):
    def run(*args: str):
        code, out, err = cli(*args, "--format", "json", "--quiet", "--threads", "1")
        assert code == 0, err
        return out

    return run


@pytest.fixture(scope="session")
def tiny():
    import perplex

    return perplex.load(TINY, threads=1)


def as_json(text: str):
    return json.loads(text)


def needs_torch():
    """Imports what the torch tests need; they report themselves as skipped
    without it, and fail when PERPLEX_TEST_TORCH=1 (scripts/test's full
    tier) says it was installed."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        if os.environ.get("PERPLEX_TEST_TORCH") == "1":
            pytest.fail(f"PERPLEX_TEST_TORCH=1 but {e.name} is not installed")
        pytest.skip(f"needs torch, transformers and peft ({e.name} is not installed)")
