#!/usr/bin/env bash
# The paper-scale science probe: does correctness rise over the first generations (Q1 of docs/RESULTS.md)?
# full_synthetic at the paper recipe (configs/paper/full_synthetic.yaml, its early stopping), 4 seeds side by side
# on one GPU through `scl-hf sweep` (local executor, 4 at once), for as many generations as --budget allows.
# Small results are written to --out as they come: science.md (one row per run and generation: true rate,
# syntax errors, diversity, held-out NLL, training steps and seconds) and small_results.tar.gz (each complete
# generation's config, metrics, curation, sampling and training history; never models or datasets).
# The runs themselves (models, datasets) live in --work: a later call with the same --work resumes them.
#
#   bash scripts/gpu_science.sh --out DIR [--budget SECONDS] [--work DIR]   # on a GPU machine
#   bash scripts/gpu_science.sh --cpu --out DIR                             # the smoke shape on a CPU (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MODE=gpu
OUT=
WORK=
BUDGET=600
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --out) OUT=${2:?--out needs a folder}; shift ;;
    --work) WORK=${2:?--work needs a folder}; shift ;;
    --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
    *) echo "gpu_science.sh: unknown argument $1 (allowed: --cpu, --out DIR, --work DIR, --budget SECONDS)" >&2
       exit 2 ;;
  esac
  shift
done
[[ -n $OUT ]] || { echo "gpu_science.sh: --out DIR is required" >&2; exit 2; }
WORK=${WORK:-${TMPDIR:-/tmp}/scl_hf_science_$MODE}
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
DEADLINE=$(( $(date +%s) + BUDGET ))
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# the sweep file: the paper's full_synthetic recipe, 4 seeds, 4 at once (CPU: the smoke shape, a few steps)
if [[ $MODE == gpu ]]; then
  recipe="$PWD/configs/paper/full_synthetic.yaml"
  overrides="{publish: false}"
else
  recipe="$PWD/configs/smoke.yaml"
  overrides="{publish: false, num_generations: 2, max_steps: 6, eval_steps: 3, num_samples: 40, heldout_size: 40}"
fi
cat > "$WORK/science.yaml" <<EOF
recipes: [$recipe]
overrides: $overrides
seeds: [0, 1, 2, 3]
executor: local
max_parallel: 4
EOF

# the small results of every complete generation, rewritten after each check so that a cut-off keeps them
collect() {
  "$PY" - "$WORK/runs" "$OUT" <<'EOF'
import json, sys, tarfile
from pathlib import Path

from scl_hf.rundir import complete_generations, gen_dir

runs, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = ["| run | generation | true_rate | syntax_error_rate | diversity | unique_rate | heldout_nll | steps (best) | "
        "train s | sampling s |", "|---|---|---|---|---|---|---|---|---|---|"]
small = []
for run in sorted(p for p in runs.glob("*") if (p / "config.yaml").is_file()):
    small.append(run / "config.yaml")
    for t in complete_generations(run):
        folder = gen_dir(run, t)
        m = json.loads((folder / "metrics.json").read_text())
        s, train = m["metrics"], m["train"]
        rows.append(f"| {run.name} | {t} | {s['true_rate']:.3f} | {s['syntax_error_rate']:.3f} | {s['diversity']:.4f} | "
                    f"{s['unique_rate']:.3f} | {m['eval']['heldout_nll']:.3f} | {train['steps']} ({train['best_step']}) "
                    f"| {train['seconds']:.1f} | {m['sampling']['seconds']:.1f} |")
        small += [p for p in folder.glob("*.json")] + [folder / "model" / "train_result.json"]
(out / "science.md").write_text("\n".join(rows) + "\n")
with tarfile.open(out / "small_results.tar.gz.tmp", "w:gz") as tar:
    for path in small:
        if path.is_file():
            tar.add(path, arcname=str(path.relative_to(runs)))
(out / "small_results.tar.gz.tmp").rename(out / "small_results.tar.gz")
print(f"science: {len(rows) - 2} complete generations in {runs}")
EOF
}

setsid "$PY" -m scl_hf.cli sweep "$WORK/science.yaml" --output_dir "$WORK/runs" > "$OUT/science.log" 2>&1 &
sweep=$!
while kill -0 "$sweep" 2> /dev/null && (( $(date +%s) < DEADLINE - 15 )); do
  sleep 10
  collect > /dev/null || true
done
if kill -0 "$sweep" 2> /dev/null; then  # out of time: stop the sweep and its runs (they resume next time)
  kill -- -"$sweep" 2> /dev/null || true
  echo "gpu_science.sh: budget of $BUDGET s spent; the runs in $WORK resume on the next call"
fi
wait "$sweep" 2> /dev/null || true
collect
cat "$OUT/science.md"
