"""Sampling throughput of ``scl_hf.sample.sample_expressions`` against ``model.generate``, at the paper shape.

Usage:
    python scripts/bench_sample.py                           # train briefly, compare, print the table
    python scripts/bench_sample.py --save-model /tmp/m       # keep the briefly trained model ...
    python scripts/bench_sample.py --model /tmp/m --write    # ... reuse it, append the table to docs/BENCHMARKS.md
    python scripts/bench_sample.py --num-samples 8 --batch-size 4 --train-steps 2 --train-batch-size 2   # smoke

The paper-shape GPT-2 is first trained for ``--train-steps`` steps on real expressions, so that its
samples have a realistic spread of lengths (a model that never emits <eos> would make every method
decode to the cap). Both methods then draw the same number of samples from ``<bos>`` with the same
temperature, length cap (n_positions - 1 = 255 new tokens) and batch size: ``model.generate``
(do_sample, KV cache; a batch runs until its longest sequence ends) and ``sample_expressions``
(preallocated cache, finished sequences leave the batch).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForCausalLM

from scl_hf.benchmarks import add_output_arguments, facts, load_average, report, torch_stack
from scl_hf.config import SamplingConfig, TrainingConfig
from scl_hf.expressions import classify, make_real_dataset
from scl_hf.model import PAPER, make_model
from scl_hf.sample import sample_expressions
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import make_accelerator, train_model

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Sampling throughput (`scripts/bench_sample.py`)"  # the section of docs/BENCHMARKS.md the runs go to


def generate_samples(model, tokenizer, num_samples: int, batch_size: int, temperature: float,
                     max_new_tokens: int, seed: int) -> tuple[list[list[int]], float]:
    """Token ids (through <eos> when drawn) of ``num_samples`` ``model.generate`` samples, and the seconds."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    rows: list[list[int]] = []
    for first in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - first)
        out = model.generate(torch.full((n, 1), tokenizer.bos_token_id),
                             attention_mask=torch.ones(n, 1, dtype=torch.long), do_sample=True,
                             temperature=temperature, top_k=0, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for ids in out[:, 1:].tolist():
            rows.append(ids[: ids.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in ids else ids)
    return rows, time.perf_counter() - start


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=SamplingConfig.per_device_sample_batch_size,
                        help="sequences decoded at once, both methods")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--train-steps", type=int, default=150, help="brief training for realistic lengths")
    parser.add_argument("--train-batch-size", type=int, default=16)
    parser.add_argument("--model", help="load this saved model instead of training one")
    parser.add_argument("--save-model", help="save the briefly trained model here")
    add_output_arguments(parser, REPO / "docs" / "BENCHMARKS.md")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    load_before = load_average()
    tokenizer = build_tokenizer(PAPER.n_positions)
    if args.model:
        model = AutoModelForCausalLM.from_pretrained(args.model)
        trained = f"loaded from {args.model}"
    else:
        torch.manual_seed(0)
        model = make_model(PAPER, tokenizer)
        cfg = TrainingConfig(max_steps=args.train_steps, warmup_steps=min(20, args.train_steps // 5),
                             eval_steps=args.train_steps, logging_steps=max(1, args.train_steps // 10),
                             per_device_train_batch_size=args.train_batch_size)
        dataset = datasets.Dataset.from_dict({"text": make_real_dataset(10_000, seed=0)})
        result = train_model(model, tokenizer, dataset, cfg, make_accelerator(cfg), seed=0)
        trained = (f"trained {args.train_steps} steps of {args.train_batch_size} x 256 tokens "
                   f"(validation loss {result.best_val_loss:.3f}, {result.seconds:.0f} s)")
        if args.save_model:
            model.save_pretrained(args.save_model)
    model.eval()
    cap = model.config.n_positions - 1

    # the methods take turns batch by batch, so that a busy machine slows both alike
    cfg = SamplingConfig(temperature=args.temperature, per_device_sample_batch_size=args.batch_size)
    generated, generate_seconds, ours_texts, ours_truncated, ours_tokens, ours_seconds = [], 0.0, [], [], 0, 0.0
    for index, first in enumerate(range(0, args.num_samples, args.batch_size)):
        n = min(args.batch_size, args.num_samples - first)
        rows, seconds = generate_samples(model, tokenizer, n, args.batch_size, args.temperature, cap, seed=index)
        generated += rows
        generate_seconds += seconds
        result = sample_expressions(model, tokenizer, cfg, seed=index, num_samples=n)
        ours_texts += result.texts
        ours_truncated += result.truncated
        ours_tokens += result.num_tokens
        ours_seconds += result.seconds

    eos = tokenizer.eos_token_id
    gen_texts = tokenizer.batch_decode([ids[:-1] if ids[-1:] == [eos] else ids for ids in generated])
    columns = {
        "model.generate": (sum(map(len, generated)), generate_seconds, gen_texts,
                           sum(ids[-1:] != [eos] for ids in generated)),
        "sample_expressions": (ours_tokens, ours_seconds, ours_texts, sum(ours_truncated)),
    }
    rows = ["| method | samples | seconds | samples/s | tokens/s | mean / max length (chars) | truncated | "
            "syntax errors | speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    for name, (num_tokens, seconds, texts, truncated) in columns.items():
        lengths = [len(t) for t in texts]
        errors = sum(classify(t) == "syntax_error" for t in texts)
        rows.append(f"| {name} | {len(texts):,} | {seconds:.1f} | {len(texts) / seconds:,.1f} | "
                    f"{num_tokens / seconds:,.0f} | {statistics.mean(lengths):.1f} / {max(lengths)} | {truncated} | "
                    f"{errors / len(texts):.1%} | {generate_seconds / seconds:.2f}x |")
    table = "\n".join(rows)
    summary = (f"sample_expressions is {generate_seconds / ours_seconds:.2f}x as fast as model.generate. "
               f"10,000 samples at this speed: {10_000 * ours_seconds / args.num_samples:.0f} s.")
    setup = (f"paper-shape model {trained}; temperature {args.temperature}, cap {cap} new tokens, "
             f"batch {args.batch_size}")
    report(f"\n### Run\n\n{facts(__file__, argv, load_before, torch_stack(), setup)}\n\n{table}\n\n{summary}\n",
           args, HEADING, append=True)


if __name__ == "__main__":
    main()
