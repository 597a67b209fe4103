# shellcheck shell=bash disable=SC2154  # root and cache are the caller's
# Setup shared by scripts/bench and scripts/bench-scale; sourced, not run. Both cache what
# they set up in the folder $cache (the caller sets it, normally .bench-cache) and log to
# stderr under the calling script's name.
#
#   bench_python             prints the python with the pinned packages: $BENCH_PYTHON, else
#                            .venv-bench (created and filled here the first time)
#   llama_cpp_src PY         prints the folder of the llama.cpp sources: $cache/llama.cpp-src,
#                            vendor/llama.cpp of the llama-cpp-python sdist from PyPI
#                            (downloaded with PY's pip the first time)
#   llama_cpp_tool NAME PY   prints the path of llama.cpp's tool NAME (llama-perplexity,
#                            llama-quantize), built the first time into $cache/$llama_build
#                            (default llama.cpp-build) with the instruction-set flags in the
#                            array ggml_isa (default -DGGML_NATIVE=ON): CPU only, no BLAS,
#                            BENCH_JOBS compile jobs
#   llama_cpp_version        prints "<commit> (vendor/llama.cpp of the <sdist> sdist)", or
#                            nothing when the sources carry no record of where they came from
# Each returns non-zero (stopping a set -e caller) after printing the tail of the failing
# step's log; the functions that print a path print nothing else on stdout.

bench_log() { echo "${0##*/}: $*" >&2; }

# sentencepiece: llama.cpp's convert_hf_to_gguf.py imports it for every Llama model
bench_pins='torch==2.15.0
transformers==5.24.0
tokenizers==0.23.3
huggingface_hub==2.4.0
safetensors==0.8.0
gguf==0.19.0
accelerate==1.15.0
numpy==2.4.6
psutil==7.2.2
sentencepiece==0.2.3
cmake==4.4.5
ninja==1.13.2'

bench_python() {
  if [[ -n "${BENCH_PYTHON:-}" ]]; then
    echo "$BENCH_PYTHON"
    return
  fi
  local venv="$root/.venv-bench"
  local stamp="$venv/.bench-requirements.txt"
  if [[ ! -x "$venv/bin/python" ]]; then
    bench_log "creating .venv-bench"
    "${PYTHON:-python3}" -m venv "$venv" >&2 || return 1
  fi
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$bench_pins" ]]; then
    # PyPI has no CPU-only torch wheel: the default one brings its CUDA libraries (GBs)
    bench_log "installing pinned packages into .venv-bench (torch is large: minutes)"
    printf '%s\n' "$bench_pins" >"$venv/.bench-requirements.in"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
      -r "$venv/.bench-requirements.in" >&2 || return 1
    printf '%s' "$bench_pins" >"$stamp"
  fi
  echo "$venv/bin/python"
}

llama_cpp_sdist="llama-cpp-python==0.3.36"

llama_cpp_src() {
  local py="$1" src="$cache/llama.cpp-src"
  if [[ ! -f "$src/CMakeLists.txt" ]]; then
    bench_log "downloading the $llama_cpp_sdist sdist from PyPI"
    rm -rf "$cache/sdist" "$src"
    mkdir -p "$cache"
    "$py" -m pip download --disable-pip-version-check --quiet --no-deps \
      --no-binary llama-cpp-python --dest "$cache/sdist" "$llama_cpp_sdist" >&2 || return 1
    "$py" "$root/scripts/bench_peers.py" extract-llama-cpp "$cache/sdist" "$src" || return 1
  fi
  echo "$src"
}

llama_cpp_tool() {
  local name="$1" py="$2"
  local build="$cache/${llama_build:-llama.cpp-build}"
  local isa=(-DGGML_NATIVE=ON)
  [[ -n "${ggml_isa[*]:-}" ]] && isa=("${ggml_isa[@]}")
  if [[ -x "$build/bin/$name" ]]; then
    echo "$build/bin/$name"
    return
  fi
  local src venv_bin start
  src="$(llama_cpp_src "$py")" || return 1
  venv_bin="$(dirname "$py")"  # the venv's cmake and ninja
  start=$(date +%s)
  if [[ ! -f "$build/build.ninja" ]]; then
    bench_log "configuring the llama.cpp build in $build (CPU, ${isa[*]}, no BLAS/CUDA)"
    PATH="$venv_bin:$PATH" nice -n 10 cmake -S "$src" -B "$build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release "${isa[@]}" -DGGML_CUDA=OFF -DGGML_BLAS=OFF \
      -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=ON -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
      -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON -DBUILD_SHARED_LIBS=OFF \
      >"$build-configure.log" 2>&1 \
      || { tail -50 "$build-configure.log" >&2; return 1; }
  fi
  bench_log "building $name"
  PATH="$venv_bin:$PATH" nice -n 10 cmake --build "$build" --target "$name" \
    -j "${BENCH_JOBS:-$(nproc)}" >"$build-$name.log" 2>&1 \
    || { tail -50 "$build-$name.log" >&2; return 1; }
  bench_log "$name built in $(( $(date +%s) - start )) s"
  echo "$build/bin/$name"
}

llama_cpp_version() {
  local origin="$cache/llama.cpp-src/.bench-origin" sdist_name commit
  if [[ -f "$origin" ]]; then
    read -r sdist_name _ commit <"$origin"  # "<sdist> vendor/llama.cpp <commit>"
    echo "${commit:0:10} (vendor/llama.cpp of the ${sdist_name} sdist)"
  fi
}
