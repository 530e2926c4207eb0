#!/usr/bin/env bash
# One command for a GPU machine: install what its image lacks, run the GPU tests, then measure one paper
# generation (scripts/bench_gpu.py prints one table). Under 8 minutes on one H200.
#
#   bash scripts/gpu_check.sh           # on the GPU machine (wheels carried in .whl/ are installed first)
#   bash scripts/gpu_check.sh --write   # ... and append the table to docs/BENCHMARKS.md there
#   bash scripts/gpu_check.sh --cpu     # the same steps at tiny shapes on a CPU: CI runs this so it cannot rot
#
# The GPU image has torch, transformers, accelerate and tokenizers but not datasets, evaluate or rapidfuzz, and
# nothing can be downloaded there: carry their wheels in .whl/ (bash scripts/gpu_wheels.sh fetches them here).
# scl_hf itself is read from this checkout (PYTHONPATH), not installed. PYTHON picks the interpreter (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MODE=gpu
BENCH_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --cpu) MODE=cpu ;;
    --write) BENCH_ARGS+=(--write) ;;
    *) echo "gpu_check.sh: unknown argument $arg (allowed: --cpu, --write)" >&2; exit 2 ;;
  esac
done
export PYTHONUNBUFFERED=1
if [[ $MODE == gpu ]] && compgen -G ".whl/*.whl" > /dev/null; then  # the wheels are the GPU machine's Python's
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/scl_hf_site \
    .whl/*.whl
  export PYTHONPATH="/tmp/scl_hf_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, transformers, accelerate, datasets, rapidfuzz, huggingface_hub; \
print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| transformers', transformers.__version__, \
'| datasets', datasets.__version__, '| huggingface_hub', huggingface_hub.__version__)"
if [[ $MODE == gpu ]]; then
  "$PY" -m pytest -q -s -m gpu tests/test_gpu.py -p no:cacheprovider
fi
"$PY" scripts/bench_gpu.py --mode "$MODE" "${BENCH_ARGS[@]}"
