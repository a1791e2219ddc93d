#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` (CPU) from the llama.cpp sources that the pinned
# llama-cpp-python vendors, so both engines run the same llama.cpp, and installs it as
# PREFIX/bin/llama-server (default PREFIX: .cache/llama-server). It takes some 15 minutes on two
# cores. An agent uses it when it is on PATH or named by HASHGRID_LLAMA_SERVER; the tests of
# llama-server (tests/integration/test_llama_server.py) run where HASHGRID_LLAMA_SERVER names it.
#
#   scripts/build-llama-server.sh [PREFIX]
#   HASHGRID_LLAMA_SERVER=$PWD/.cache/llama-server/bin/llama-server pytest tests/integration/test_llama_server.py
#
# LLAMA_CPP_SRC=DIR builds from llama.cpp sources already on disk instead of downloading them.
set -euo pipefail

prefix=${1:-$PWD/.cache/llama-server}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

src=${LLAMA_CPP_SRC:-}
if [[ -z $src ]]; then
    version=$(python -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")
    python -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
    tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
    src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
fi

cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
cmake --build "$work/build" --target llama-server -j "$(nproc)"
install -D -m 755 "$work/build/bin/llama-server" "$prefix/bin/llama-server"
echo "installed $prefix/bin/llama-server"
