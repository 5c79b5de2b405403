#!/usr/bin/env bash
# Developer build: compiles the extension into build/dev and drops it into pyvae/,
# so `PYTHONPATH=$PWD pytest` runs against the working tree. Extra arguments go to
# CMake (e.g. -DPYVAE_SANITIZE=ON); -DPYVAE_CUDA=ON builds the CUDA
# engine as well; BUILD_DIR picks another build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build/dev}"

# What the build needs, checked first so a missing piece is named instead of
# surfacing as a CMake error: pip-installable tools, and a C++ compiler with OpenMP.
missing=()
command -v cmake >/dev/null || missing+=("cmake")
command -v ninja >/dev/null || missing+=("ninja")
python -m pybind11 --cmakedir >/dev/null 2>&1 || missing+=('"pybind11>=2.12"')
python -c "import scipy_openblas32" 2>/dev/null || missing+=('"scipy-openblas32>=0.3.28,<0.4"')
if [ "${#missing[@]}" -gt 0 ]; then
  echo "dev-build: missing build tools; install them with:" >&2
  echo "  python -m pip install ${missing[*]}" >&2
  exit 1
fi
cxx="${CXX:-c++}"
# (Apple's clang takes OpenMP flags of its own; there CMake's FindOpenMP does the check.)
if [ "$(uname)" != Darwin ] && ! echo 'int main() { return 0; }' | "$cxx" -fopenmp -x c++ - -o /dev/null 2>/dev/null; then
  echo "dev-build: no C++ compiler with OpenMP found ($cxx -fopenmp failed): install one" >&2
  echo "  (apt install g++ on Debian/Ubuntu, dnf install gcc-c++ on Fedora), or set CXX to one." >&2
  exit 1
fi

# The version is written once, in pyproject.toml.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
cmake -S . -B "$build" -G Ninja -DSKBUILD_PROJECT_NAME=pyvae -DSKBUILD_PROJECT_VERSION="$version" \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" "$@" >/dev/null
cmake --build "$build"
# Copied beside, then renamed over the old one: a process that has the old one loaded (a benchmark)
# keeps its mapping instead of crashing on a file rewritten under it.
for library in "$build"/_core*.so "$build"/_cuda_core*.so; do
  [ -e "$library" ] || continue
  name=$(basename "$library")
  cp "$library" "pyvae/.$name.new" && mv -f "pyvae/.$name.new" "pyvae/$name"
done
