"""Training throughput of ``scl_hf.train.train_model`` against plain reference loops, at the paper shape.

Usage:
    python scripts/bench_train.py                      # paper shape, batch 64, append to docs/BENCHMARKS.md
    python scripts/bench_train.py --batch-size 16 --steps 2 --rounds 1 --no-append   # a quick look

Every variant trains the paper's GPT-2 (6 x 384, 256 positions) on packed blocks of real expressions
with AdamW (and gradient clipping in the loops that clip); the variants take turns for ``--rounds``
rounds so that a busy machine slows them alike. Per variant: tokens/s from the wall time of the
timed steps (best round and median), and CPU seconds per step (all threads; not stretched by other
processes the way wall time is).

Variants:
- reference: a bare ``GPT2LMHeadModel`` loop (``model(input_ids, labels=input_ids).loss``, backward,
  clip, ``AdamW.step``), with transformers' stock GPT-2 activation ``gelu_new`` at dropout 0 and 0.2
  (the gap this benchmark was written to close), and with ``make_model``'s config at dropout 0.2
  (the plain loop on the model scl_hf trains: the ratio's denominator).
- minimal GPT: a hand-written nanoGPT-style model of the same shape (``nn.Linear``, fused tanh GELU,
  ``scaled_dot_product_attention`` with dropout, ``nn.Dropout``), plain loop.
- train.py: ``train_model`` itself (the steps' tokens/s as it logs them, validation excluded).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import GPT2LMHeadModel

from scl_hf.config import TrainingConfig
from scl_hf.expressions import make_real_dataset
from scl_hf.model import PAPER, make_gpt2_config
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import PackedStream, encode_sequences, make_accelerator, train_model

REPO = Path(__file__).resolve().parents[1]


class MinimalBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.c_attn, self.c_proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * n_embd, n_embd), nn.Dropout(dropout))
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
                   for z in self.c_attn(self.ln_1(x)).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        x = x + self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(b, t, c)))
        return x + self.mlp(self.ln_2(x))


class MinimalGPT(nn.Module):
    """nanoGPT's model in 20 lines: the yardstick for what a hand-written GPT of this shape costs."""

    def __init__(self, vocab: int, n_positions: int, n_embd: int, n_layer: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, n_embd), nn.Embedding(n_positions, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(MinimalBlock(n_embd, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device)))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T  # tied output embedding


def plain_loop(model: nn.Module, stream: PackedStream, batch: int, hf: bool):
    """One step of the bare loop: forward, loss, backward, clip, AdamW, zero_grad."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0e-3, betas=(0.9, 0.99), weight_decay=0.1)

    def step() -> None:
        blocks = stream.next_batch(batch)
        if hf:
            x = blocks[:, 1:]
            loss = model(input_ids=x, labels=x).loss
        else:
            loss = F.cross_entropy(model(blocks[:, :-1]).flatten(0, 1), blocks[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def time_plain(step, warmup: int, steps: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) per step over ``steps`` steps after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def time_train_model(model_cfg, tokenizer, dataset, batch: int, warmup: int, steps: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) per optimizer step of train_model.

    Wall: from the tokens/s it logs every step (validation excluded). CPU: the difference between a
    run of ``warmup + steps`` steps and one of ``warmup`` steps, so set-up and validation cancel out.
    """
    from scl_hf.model import make_model

    cpu, history = [], []
    for max_steps in (warmup, warmup + steps):
        cfg = TrainingConfig(max_steps=max_steps, warmup_steps=1, logging_steps=1, eval_steps=10 ** 9,
                             per_device_train_batch_size=batch)
        torch.manual_seed(0)
        model = make_model(model_cfg, tokenizer)
        start = time.process_time()
        history = train_model(model, tokenizer, dataset, cfg, make_accelerator(cfg), seed=0).history
        cpu.append(time.process_time() - start)
    speeds = [r["tokens_per_second"] for r in history if "tokens_per_second" in r][warmup:]
    return batch * model_cfg.n_positions * len(speeds) / sum(speeds), (cpu[1] - cpu[0]) / steps


def machine() -> str:
    try:
        name = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"CPU: {name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


VARIANTS = {  # key -> table label; {p} is the dropout
    "stock0": "reference loop: GPT2LMHeadModel, stock gelu_new, dropout 0.0",
    "stock": "reference loop: GPT2LMHeadModel, stock gelu_new, dropout {p}",
    "reference": "reference loop: GPT2LMHeadModel from make_model, dropout {p}",
    "minimal": "reference loop: minimal hand-written GPT, dropout {p}",
    "train": "train.py train_model, dropout {p}",
    "train0": "train.py train_model, dropout 0.0",
}


def run_variant(key: str, batch: int, warmup: int, steps: int, dropout: float) -> tuple[float, float]:
    """(wall, CPU) seconds per step of one variant, in this (fresh) process."""
    tokenizer = build_tokenizer(PAPER.n_positions)
    texts = make_real_dataset(10_000, seed=0)
    if key in ("train", "train0"):
        model_cfg = replace(PAPER, dropout=dropout if key == "train" else 0.0)
        dataset = datasets.Dataset.from_dict({"text": texts})
        return time_train_model(model_cfg, tokenizer, dataset, batch, warmup, steps)
    stream = PackedStream(encode_sequences(texts, tokenizer), PAPER.n_positions, seed=0)
    torch.manual_seed(0)
    if key == "minimal":
        model = MinimalGPT(len(tokenizer), PAPER.n_positions, PAPER.n_embd, PAPER.n_layer, PAPER.n_head, dropout)
        return time_plain(plain_loop(model, stream, batch, hf=False), warmup, steps)
    config = make_gpt2_config(replace(PAPER, dropout=0.0 if key == "stock0" else dropout), tokenizer)
    if key in ("stock0", "stock"):
        config.activation_function = "gelu_new"  # transformers' GPT-2 default
    return time_plain(plain_loop(GPT2LMHeadModel(config), stream, batch, hf=True), warmup, steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--batch-size", type=int, default=64, help="blocks of 256 tokens per step (paper: 64)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=2, help="the variants take turns this many times")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--output", default=str(REPO / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--no-append", action="store_true", help="print the table only")
    parser.add_argument("--run-variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.run_variant:
        wall, cpu = run_variant(args.run_variant, args.batch_size, args.warmup, args.steps, args.dropout)
        print(json.dumps({"wall": wall, "cpu": cpu}))
        return

    # every variant runs in a fresh process: no allocator state or memory carries over between them
    load_before = os.getloadavg()
    results: dict[str, list[tuple[float, float]]] = {key: [] for key in VARIANTS}
    tokens = args.batch_size * PAPER.n_positions
    for round_index in range(args.rounds):
        for key in VARIANTS:
            child = subprocess.run(
                [sys.executable, __file__, "--run-variant", key, "--batch-size", str(args.batch_size), "--steps",
                 str(args.steps), "--warmup", str(args.warmup), "--dropout", str(args.dropout)],
                capture_output=True, text=True, check=True)
            timing = json.loads(child.stdout.strip().splitlines()[-1])
            results[key].append((timing["wall"], timing["cpu"]))
            print(f"round {round_index + 1}: {VARIANTS[key].format(p=args.dropout)}: "
                  f"{tokens / timing['wall']:,.0f} tokens/s, {timing['cpu']:.2f} CPU s/step", flush=True)
    load_after = os.getloadavg()

    best = {key: tokens / min(w for w, _ in runs) for key, runs in results.items()}
    rows = ["| variant | tokens/s (best round) | tokens/s (median round) | CPU s per step (best) | vs reference |",
            "|---|---|---|---|---|"]
    for key, runs in results.items():
        walls = sorted(w for w, _ in runs)
        rows.append(f"| {VARIANTS[key].format(p=args.dropout)} | {best[key]:,.0f} | "
                    f"{tokens / walls[(len(walls) - 1) // 2]:,.0f} | {min(c for _, c in runs):.2f} | "
                    f"{best[key] / best['reference']:.2f}x |")
    table = "\n".join(rows)
    summary = (f"Stock GPT-2 (gelu_new) at dropout {args.dropout}: {best['stock0'] / best['stock'] - 1:.0%} slower "
               f"than at dropout 0. train.py at dropout {args.dropout}: {best['train'] / best['reference']:.2f}x the "
               f"reference loop on the same model (goal >= 1.0), {best['train'] / best['minimal']:.2f}x the minimal "
               f"hand-written GPT, {best['train'] / best['stock'] :.2f}x stock GPT-2 at the same dropout and "
               f"{best['train'] / best['stock0']:.2f}x stock GPT-2 at dropout 0. One paper generation's training "
               f"(5,000 steps of 64 x 256 tokens) at the best train.py speed: "
               f"{5000 * 64 * 256 / best['train'] / 3600:.1f} h on this machine.")
    print(table)
    print(summary)
    if not args.no_append:
        command = " ".join(["python scripts/bench_train.py", *(sys.argv[1:] if argv is None else argv)])
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        entry = (f"\n### Run of {date}\n\nCommand: `{command}`; {machine()}; torch {torch.__version__}, "
                 f"transformers {transformers.__version__}; batch {args.batch_size} x 256 tokens, {args.steps} timed "
                 f"steps after {args.warmup} per variant and round, {args.rounds} rounds, each variant in a fresh "
                 f"process; load average (1, 5, 15 min) {' '.join(f'{x:.2f}' for x in load_before)} before, "
                 f"{' '.join(f'{x:.2f}' for x in load_after)} after.\n\n{table}\n\n{summary}\n")
        path = Path(args.output)
        text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
        path.write_text(text.rstrip("\n") + "\n" + entry, encoding="utf-8")


if __name__ == "__main__":
    main()
