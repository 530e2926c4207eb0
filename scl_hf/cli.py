"""The ``scl-hf`` console script: one subcommand per job, each a thin call into the package."""

from __future__ import annotations

import argparse
import json
import sys


def _data(args: argparse.Namespace) -> int:
    """Generate the real dataset D0 and print its statistics (and optionally save it)."""
    from scl_hf.config import config_from_args
    from scl_hf.expressions import dataset_stats, make_real_dataset

    cfg = config_from_args(args)
    texts = make_real_dataset(cfg.data.dataset_size, cfg.data.data_seed, cfg.data.generator())
    if args.save:
        with open(args.save, "w", encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
    print(json.dumps({"examples": texts[:5], **dataset_stats(texts)}, indent=2))
    return 0


def _report(args: argparse.Namespace) -> int:
    """One run dir: its report.md and figures, written into it. Several (or --output): a comparison in --output."""
    from scl_hf.report import write_comparison_report, write_run_report

    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1] (diversity is a share), got {args.threshold}")
    if args.output is None and len(args.run_dirs) > 1:
        raise ValueError("--output DIR is required with several run directories (where the comparison goes)")
    if args.output is None:
        print(write_run_report(args.run_dirs[0], threshold=args.threshold))
    else:
        print(write_comparison_report(args.run_dirs, args.output, threshold=args.threshold))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from scl_hf.config import add_config_arguments

    parser = argparse.ArgumentParser(prog="scl-hf", allow_abbrev=False,
                                     description="Self-consuming training loops on the Hugging Face stack.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", allow_abbrev=False, help="generate the real dataset D0 and print its statistics")
    add_config_arguments(p)
    p.add_argument("--save", metavar="FILE", help="also write the expressions, one per line")
    p.set_defaults(func=_data)

    p = sub.add_parser("report", allow_abbrev=False, help="report.md and figures of one run, or a comparison of runs")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (each holds config.yaml)")
    p.add_argument("--output", metavar="DIR", help="write a comparison report here (required with several runs)")
    p.add_argument("--threshold", type=float, default=0.1,
                   help="diversity below which a run counts as collapsed, in [0, 1] (default: 0.1)")
    p.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # ConfigError and other bad input: one clear line, no traceback
        print(f"scl-hf {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
