#!/usr/bin/env bash
# One call on a GPU machine that measures the GPU path, ending by itself before its deadline and writing its
# results as it goes, so that a call cut off still returns what was measured:
#   1. env.txt          the libraries it ran on (the image's own, plus the wheels carried in .whl/) and the GPU;
#   2. gpu_tests.log    pytest -m gpu tests/test_gpu.py (bf16, compiled training, sampler, attention kernels);
#   3. bench.md         scripts/bench_gpu.py, row by row: training tokens/s and MFU (eager, compiled, a second
#                       compiled model), sampling (on the device, and reloaded as the loop does), one paper
#                       generation end to end (eager and compiled), and 1, 4, 8 runs at once through the sweep;
#   4. science/         scripts/gpu_science.sh with the time that is left (4 paper runs of full_synthetic);
#   5. check.log        everything printed. At most 8 files, logs and small tables, never models.
#
#   bash scripts/gpu_check.sh --out DIR                # on the GPU machine, default budget 450 s
#   bash scripts/gpu_check.sh --out DIR --budget 300   # seconds for the whole call
#   bash scripts/gpu_check.sh --cpu --out DIR          # the same steps at tiny shapes on a CPU (CI runs this)
#
# The GPU image has torch and accelerate but not datasets, evaluate, rapidfuzz or submitit, and older transformers
# and huggingface_hub than scl_hf is tested with; nothing can be downloaded there: carry the wheels in .whl/
# (bash scripts/gpu_wheels.sh fetches them here). scl_hf itself is read from this checkout (PYTHONPATH).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MODE=gpu
OUT=
BUDGET=450
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --out) OUT=${2:?--out needs a folder}; shift ;;
    --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (allowed: --cpu, --out DIR, --budget SECONDS)" >&2; exit 2 ;;
  esac
  shift
done
[[ -n $OUT ]] || { echo "gpu_check.sh: --out DIR is required (where the results are written as they come)" >&2; exit 2; }
mkdir -p "$OUT"
DEADLINE=$(( $(date +%s) + BUDGET - 10 ))  # ten seconds to spare for the last writes
left() { echo $(( DEADLINE - $(date +%s) )); }
exec > >(tee -a "$OUT/check.log") 2>&1
# no USE_HUB_KERNELS here: the loop must load its checkpoints without hub kernels by itself (scl_hf.model.load_model)
export PYTHONUNBUFFERED=1 HF_HUB_DISABLE_PROGRESS_BARS=1
if [[ $MODE == gpu ]] && compgen -G ".whl/*.whl" > /dev/null; then  # the wheels are the GPU machine's Python's
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/scl_hf_site \
    .whl/*.whl
  export PYTHONPATH="/tmp/scl_hf_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== 1. environment ($(left) s left)"
"$PY" - > "$OUT/env.txt" <<'EOF'
import importlib.metadata as md, platform, torch
print("python", platform.python_version(), "| cuda", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")
for name in ("torch", "transformers", "accelerate", "tokenizers", "huggingface_hub", "datasets", "evaluate",
             "rapidfuzz", "submitit", "pyarrow", "numpy", "scipy", "fsspec", "matplotlib", "jinja2", "pyyaml", "tqdm",
             "kernels"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "not installed")
EOF
cat "$OUT/env.txt"

if [[ $MODE == gpu ]]; then
  echo "== 2. GPU tests ($(left) s left)"
  timeout $(( $(left) - 60 )) "$PY" -m pytest -q -s -m gpu tests/test_gpu.py -p no:cacheprovider \
    > "$OUT/gpu_tests.log" 2>&1 || echo "GPU tests: exit $?"
  tail -5 "$OUT/gpu_tests.log"
fi

echo "== 3. bench_gpu.py ($(left) s left)"
timeout $(( $(left) > 30 ? $(left) : 30 )) "$PY" scripts/bench_gpu.py --mode "$MODE" --out "$OUT" \
  --deadline "$DEADLINE" || echo "bench_gpu.py: exit $?"

if (( $(left) > 60 )); then
  echo "== 4. gpu_science.sh ($(left) s left)"
  science=(--out "$OUT/science" --budget $(( $(left) - 5 )))
  [[ $MODE == cpu ]] && science+=(--cpu)
  bash scripts/gpu_science.sh "${science[@]}" || echo "gpu_science.sh: exit $?"
else
  echo "== 4. gpu_science.sh skipped: $(left) s left"
fi
echo "== done ($(left) s left)"
