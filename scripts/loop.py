"""The self-consuming training loop, on one process or many.

Usage:
    accelerate launch scripts/loop.py --config configs/paper/full_synthetic.yaml
    accelerate launch --num_processes 8 scripts/loop.py --config configs/paper/balanced.yaml --seed 2
    python scripts/loop.py --config configs/smoke.yaml            # one process, CPU is fine

Same flags as ``scl-hf run``; running the same command again resumes from the last complete generation.
"""

import sys

from scl_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
