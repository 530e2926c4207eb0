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


def build_parser() -> argparse.ArgumentParser:
    from scl_hf.config import add_config_arguments

    parser = argparse.ArgumentParser(prog="scl-hf", allow_abbrev=False,
                                     description="Self-consuming training loops on the Hugging Face stack.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", allow_abbrev=False, help="generate the real dataset D0 and print its statistics")
    add_config_arguments(p)
    p.add_argument("--save", metavar="FILE", help="also write the expressions, one per line")
    p.set_defaults(func=_data)
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
