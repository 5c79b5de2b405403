#!/usr/bin/env bash
# Developer build: compiles the extension into build/dev and drops it into pyvae/,
# so `PYTHONPATH=$PWD pytest` runs against the working tree. Extra arguments go to
# CMake (e.g. -DPYVAE_SANITIZE=ON, or -DPYVAE_CUDA=ON for the CUDA engine as well).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/dev -G Ninja -DSKBUILD_PROJECT_NAME=pyvae -DSKBUILD_PROJECT_VERSION=0.1.0 \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" "$@" >/dev/null
cmake --build build/dev
cp build/dev/_core*.so pyvae/
if compgen -G 'build/dev/_cuda_core*.so' >/dev/null; then cp build/dev/_cuda_core*.so pyvae/; fi
