"""Training throughput of ``scl_hf.train.train_model`` against plain reference loops, at the paper shape.

Usage:
    python scripts/bench_train.py                      # paper shape, batch 64: print the table
    python scripts/bench_train.py --write              # ... and append it to docs/BENCHMARKS.md
    python scripts/bench_train.py --batch-size 16 --steps 2 --rounds 1   # a quick look
    python scripts/bench_train.py --components --batch-size 16   # what dropout costs, part by part

Every variant trains the paper's GPT-2 (6 x 384, 256 positions) on the blocks train.py packs from
real expressions, with AdamW and gradient clipping; each variant runs in a fresh process (so no
allocator state carries over) and the variants take turns for ``--rounds`` rounds so that a busy
machine slows them alike. Per variant: tokens/s from the wall time of the timed steps (best and
median round), and CPU seconds per step (all threads; less stretched than wall time when other
processes share the machine).

Variants:
- reference loop: a bare ``GPT2LMHeadModel`` loop (``model(input_ids, labels=input_ids).loss``,
  backward, clip, ``AdamW.step``), with transformers' stock GPT-2 activation ``gelu_new`` at dropout 0
  and 0.2 (the gap this benchmark was written to close), and with ``make_model``'s config at dropout
  0.2 (the plain loop on the model scl_hf trains: the ratio's denominator).
- minimal hand-written GPT: nanoGPT's model at the same shape (``nn.Linear``, fused tanh GELU,
  ``scaled_dot_product_attention`` with dropout, ``nn.Dropout``), plain loop.
- train.py: ``train_model`` itself (its logged tokens/s, validation excluded), which on top of the
  plain loop builds each block's per-sequence positions and attention mask.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2LMHeadModel

from scl_hf.benchmarks import add_output_arguments, facts, load_average, report, torch_stack
from scl_hf.config import ModelConfig, TrainingConfig
from scl_hf.expressions import make_real_dataset
from scl_hf.model import make_gpt2_config
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import PackedStream, encode_sequences, make_accelerator, train_model

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Training throughput (`scripts/bench_train.py`)"  # the section of docs/BENCHMARKS.md the runs go to
PAPER = ModelConfig()  # the shape every variant trains: ModelConfig's defaults, the paper's


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
        inputs, targets = stream.next_batch(batch)  # the blocks train.py packs (without its attention masks)
        if hf:
            loss = model(input_ids=inputs, labels=inputs).loss  # transformers shifts the labels itself
        else:
            loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten(), ignore_index=-100)
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
    stream = PackedStream(encode_sequences(texts, tokenizer), PAPER.n_positions, seed=0, bos_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    if key == "minimal":
        model = MinimalGPT(len(tokenizer), PAPER.n_positions, PAPER.n_embd, PAPER.n_layer, PAPER.n_head, dropout)
        return time_plain(plain_loop(model, stream, batch, hf=False), warmup, steps)
    config = make_gpt2_config(replace(PAPER, dropout=0.0 if key == "stock0" else dropout), tokenizer)
    if key in ("stock0", "stock"):
        config.activation_function = "gelu_new"  # transformers' GPT-2 default
    return time_plain(plain_loop(GPT2LMHeadModel(config), stream, batch, hf=True), warmup, steps)


def best_ms(fn, reps: int = 7) -> float:
    """Best wall milliseconds of ``fn()`` over ``reps`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def components(batch: int, dropout: float) -> str:
    """Markdown table: what dropout (and GPT-2's gelu_new) cost per call, forward + backward, at this batch.

    Runs in its own process before anything called ``keep_freed_memory``, so the first row sees
    glibc's default allocator behaviour.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers.activations import ACT2FN

    from scl_hf.cpu_kernels import keep_freed_memory, rand_dropout, rand_dropout_attention

    t, c, h = PAPER.n_positions, PAPER.n_embd, PAPER.n_head
    torch.manual_seed(0)
    probs = torch.rand(batch, h, t, t)
    q, k, v = (torch.randn(batch, h, t, c // h, requires_grad=True) for _ in range(3))
    grad_qkv = torch.randn(batch, h, t, c // h)
    x, grad_x = torch.randn(batch, t, c, requires_grad=True), torch.randn(batch, t, c)
    wide, grad_wide = torch.randn(batch, t, 4 * c, requires_grad=True), torch.randn(batch, t, 4 * c)

    def many_outputs() -> None:  # 40 live [B, T, 4C] results, as between forward and backward
        keep = [wide.detach() * 0.5 for _ in range(40)]
        del keep

    fresh = best_ms(many_outputs, reps=3) / 40
    keep_freed_memory()
    reused = best_ms(many_outputs, reps=3) / 40
    sdpa = F.scaled_dot_product_attention

    def math_attention() -> None:
        with sdpa_kernel(SDPBackend.MATH):
            sdpa(q, k, v, is_causal=True).backward(grad_qkv)

    rows = [
        ("25 MB-class elementwise op with 40 live results: fresh pages (glibc default) vs reused (keep_freed_memory)",
         fresh, reused),
        (f"dropout mask for the attention probabilities {tuple(probs.shape)}: bernoulli_ vs torch.rand >= p",
         best_ms(lambda: torch.empty_like(probs).bernoulli_(1 - dropout)),
         best_ms(lambda: torch.rand_like(probs) >= dropout)),
        (f"residual dropout {tuple(x.shape)}, fwd+bwd: F.dropout vs rand_dropout",
         best_ms(lambda: F.dropout(x, dropout, True).backward(grad_x)),
         best_ms(lambda: rand_dropout(x, dropout).backward(grad_x))),
        (f"causal attention {tuple(q.shape)}, fwd+bwd: SDPA dropout_p={dropout} (math kernel) vs "
         "rand_dropout_attention",
         best_ms(lambda: sdpa(q, k, v, dropout_p=dropout, is_causal=True).backward(grad_qkv)),
         best_ms(lambda: rand_dropout_attention(None, q, k, v, None, dropout=dropout)[0].transpose(1, 2).backward(
             grad_qkv))),
        (f"causal attention {tuple(q.shape)}, fwd+bwd, no dropout: SDPA (flash kernel) vs SDPA math kernel",
         best_ms(lambda: sdpa(q, k, v, is_causal=True).backward(grad_qkv)), best_ms(math_attention)),
        (f"GELU {tuple(wide.shape)}, fwd+bwd: gelu_new (Python, GPT-2's default) vs gelu_pytorch_tanh (fused)",
         best_ms(lambda: ACT2FN["gelu_new"](wide).backward(grad_wide)),
         best_ms(lambda: ACT2FN["gelu_pytorch_tanh"](wide).backward(grad_wide))),
    ]
    lines = ["| component (per call; per step: 6 attention layers, 13 residual/embedding dropouts, 6 GELUs) | "
             "stock ms | scl_hf ms |", "|---|---|---|"]
    lines += [f"| {name} | {a:.1f} | {b:.1f} |" for name, a, b in rows]
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--batch-size", type=int, default=64, help="blocks of 256 tokens per step (paper: 64)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=2, help="the variants take turns this many times")
    parser.add_argument("--dropout", type=float, default=0.2)
    add_output_arguments(parser, REPO / "docs" / "BENCHMARKS.md")
    parser.add_argument("--run-variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--components", action="store_true", help="time the parts dropout adds, not the variants")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    if args.run_variant:
        wall, cpu = run_variant(args.run_variant, args.batch_size, args.warmup, args.steps, args.dropout)
        print(json.dumps({"wall": wall, "cpu": cpu}))
        return
    load_before = load_average()
    if args.components:
        table = components(args.batch_size, args.dropout)
        report(f"\n### Components\n\n{facts(__file__, argv, load_before, torch_stack())}\n\n{table}\n", args,
               HEADING, append=True)
        return

    # every variant runs in a fresh process: no allocator state or memory carries over between them
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

    best = {key: tokens / min(w for w, _ in runs) for key, runs in results.items()}
    rows = ["| variant | tokens/s (best round) | tokens/s (median round) | CPU s per step (best) | vs reference |",
            "|---|---|---|---|---|"]
    for key, runs in results.items():
        rows.append(f"| {VARIANTS[key].format(p=args.dropout)} | {best[key]:,.0f} | "
                    f"{tokens / statistics.median(w for w, _ in runs):,.0f} | {min(c for _, c in runs):.2f} | "
                    f"{best[key] / best['reference']:.2f}x |")
    table = "\n".join(rows)
    summary = (f"Stock GPT-2 (gelu_new) at dropout {args.dropout}: {best['stock0'] / best['stock'] - 1:.0%} slower "
               f"than at dropout 0. train.py at dropout {args.dropout}: {best['train'] / best['reference']:.2f}x the "
               f"reference loop on the same model, {best['train'] / best['minimal']:.2f}x the minimal "
               f"hand-written GPT, {best['train'] / best['stock'] :.2f}x stock GPT-2 at the same dropout and "
               f"{best['train'] / best['stock0']:.2f}x stock GPT-2 at dropout 0. One paper generation's training "
               f"(5,000 steps of 64 x 256 tokens) at the best train.py speed: "
               f"{5000 * 64 * 256 / best['train'] / 3600:.1f} h.")
    setup = (f"batch {args.batch_size} x 256 tokens, {args.steps} timed steps after {args.warmup} per variant and "
             f"round, {args.rounds} rounds, each variant in a fresh process")
    report(f"\n### Run\n\n{facts(__file__, argv, load_before, torch_stack(), setup)}\n\n{table}\n\n{summary}\n",
           args, HEADING, append=True)


if __name__ == "__main__":
    main()
