"""Two-process worker for tests/test_train.py (not collected by pytest: the name has no ``test_`` prefix).

Usage (what the test runs):
    python -m accelerate.commands.launch --cpu --num_processes 2 --main_process_port PORT tests/mp_worker.py OUT_DIR

Trains the tiny model a few steps on every process, saves it from the main process, samples from it,
and writes ``OUT_DIR/rank<i>.json`` on every process. ``setup()`` is shared with the test, which
repeats the run in one process and compares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets
import torch
from helpers import TINY  # tests/helpers.py: tests/ is sys.path[0] when this file runs as a script

from scl_hf.config import SamplingConfig, TrainingConfig
from scl_hf.expressions import make_real_dataset
from scl_hf.model import make_model
from scl_hf.tokenizer import build_tokenizer

NUM_PROCESSES = 2
PER_DEVICE_BATCH = 2  # one process with NUM_PROCESSES * PER_DEVICE_BATCH blocks sees the same data
NUM_SAMPLES = 7  # odd: the shards are 4 and 3


def setup(per_device_batch: int):
    """Tokenizer, seeded tiny model, data, training and sampling configs of the comparison."""
    tokenizer = build_tokenizer(TINY.n_positions)
    torch.manual_seed(0)
    model = make_model(TINY, tokenizer)
    dataset = datasets.Dataset.from_dict({"text": make_real_dataset(300, seed=5)})
    train_cfg = TrainingConfig(max_steps=6, warmup_steps=2, eval_steps=3, logging_steps=1,
                               per_device_train_batch_size=per_device_batch)
    sample_cfg = SamplingConfig(num_samples=NUM_SAMPLES, max_new_tokens=24, per_device_sample_batch_size=2)
    return tokenizer, model, dataset, train_cfg, sample_cfg


def main(out_dir: str) -> None:
    from scl_hf.sample import sample_expressions
    from scl_hf.train import make_accelerator, train_model

    tokenizer, model, dataset, train_cfg, sample_cfg = setup(PER_DEVICE_BATCH)
    accelerator = make_accelerator(train_cfg)
    result = train_model(model, tokenizer, dataset, train_cfg, accelerator, seed=11)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model.save_pretrained(Path(out_dir) / "model")
    samples = sample_expressions(model, tokenizer, sample_cfg, accelerator, seed=3)
    record = {"num_processes": accelerator.num_processes, "train": result.to_json(), "history": result.history,
              "texts": samples.texts, "truncated": samples.truncated, "total_tokens": samples.total_tokens,
              "logprobs": samples.logprobs}
    Path(out_dir, f"rank{accelerator.process_index}.json").write_text(json.dumps(record))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1])
