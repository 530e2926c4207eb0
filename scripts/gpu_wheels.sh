#!/usr/bin/env bash
# Fetch, here, the wheels scripts/gpu_check.sh installs on the GPU machine: the packages scl_hf needs that its
# image lacks (datasets, evaluate, rapidfuzz and their own needs) or holds in another major version
# (huggingface_hub), at the versions of this checkout's .venv, for that machine's Python 3.12 on x86-64.
# They land in .whl/, which git ignores; carry that folder with the working tree.
#
#   bash scripts/gpu_wheels.sh            # PYTHON (default .venv/bin/python) reads the versions
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PACKAGES=(transformers datasets evaluate rapidfuzz dill multiprocess huggingface_hub httpx2 httpcore2 truststore submitit)
pins=()
for name in "${PACKAGES[@]}"; do
  pins+=("$name==$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
done
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "${pins[@]}"
ls -1 .whl
