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


def _read_lines(path: str, what: str) -> list[str]:
    """One string per line of a UTF-8 file. Only "\\n" ends a line (form feeds and the like are content);
    a trailing "\\r" is dropped, blank lines are empty samples, a final newline adds none."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as err:
        raise ValueError(f"cannot read {what} file {path!r}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} file {path!r} is not UTF-8 text: {err}") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _metric(args: argparse.Namespace) -> int:
    """Correctness and diversity of a text file with one expression per line, printed as JSON."""
    from scl_hf.metrics import compute_metrics

    predictions = _read_lines(args.file, "predictions")
    references = None if args.references is None else _read_lines(args.references, "references")
    result = compute_metrics(predictions, references, level=args.level, max_pairs=args.max_pairs)
    print(json.dumps(result, indent=2))
    return 0


def _run(args: argparse.Namespace) -> int:
    """The self-consuming loop: run or resume ``<output_dir>/<run_name>``, publishing each generation."""
    from scl_hf.config import config_from_args

    cfg = config_from_args(args)
    # The Hub endpoint is read when huggingface_hub, datasets and evaluate are imported: decide it first.
    from scl_hf.hub.target import configure_hub

    target = configure_hub(cfg)
    from scl_hf.loop import run_loop

    run_loop(cfg, allow_config_change=args.allow_config_change, hub_target=target)
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

    p = sub.add_parser("run", allow_abbrev=False, help="run or resume the self-consuming loop of a config")
    add_config_arguments(p)
    p.add_argument("--allow_config_change", action="store_true",
                   help="resume a run even though its saved config.yaml differs from this config")
    p.set_defaults(func=_run)

    p = sub.add_parser("report", allow_abbrev=False, help="report.md and figures of one run, or a comparison of runs")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (each holds config.yaml)")
    p.add_argument("--output", metavar="DIR", help="write a comparison report here (required with several runs)")
    p.add_argument("--threshold", type=float, default=0.1,
                   help="diversity below which a run counts as collapsed, in [0, 1] (default: 0.1)")
    p.set_defaults(func=_report)

    p = sub.add_parser("metric", allow_abbrev=False,
                       help="correctness and diversity of a file of expressions (one per line), as JSON")
    p.add_argument("file", metavar="FILE", help="UTF-8 text file, one generated expression per line")
    p.add_argument("--references", metavar="FILE", help="training set, one per line: adds novelty_rate")
    p.add_argument("--level", choices=("token", "char"), default="token",
                   help="edit distance over word tokens or characters (default: token)")
    p.add_argument("--max_pairs", type=int, metavar="N",
                   help="estimate the diversity from N random pairs when there are more (default: exact)")
    p.set_defaults(func=_metric)
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
