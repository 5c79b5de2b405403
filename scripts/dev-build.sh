#!/usr/bin/env bash
# Developer build: compiles the extension into build/dev and drops it into pyvae/,
# so `PYTHONPATH=$PWD pytest` runs against the working tree. Extra arguments go to
# CMake (e.g. -DPYVAE_SANITIZE=ON); -DPYVAE_CUDA=ON builds the CUDA
# engine as well; BUILD_DIR picks another build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build/dev}"
# The version is written once, in pyproject.toml.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
cmake -S . -B "$build" -G Ninja -DSKBUILD_PROJECT_NAME=pyvae -DSKBUILD_PROJECT_VERSION="$version" \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" "$@" >/dev/null
cmake --build "$build"
cp "$build"/_core*.so pyvae/
if compgen -G "$build/_cuda_core*.so" >/dev/null; then cp "$build"/_cuda_core*.so pyvae/; fi
