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


def _hub_serve(args: argparse.Namespace) -> int:
    """Serve an embedded Hub store until interrupted."""
    from scl_hf.hub.server import serve

    return serve(args.root, host=args.host, port=args.port, token=args.token, verbose=args.verbose)


def _hub_sync(args: argparse.Namespace) -> int:
    """Replay a run's published generations (embedded store) to another Hub, in order, with their tags."""
    from scl_hf.hub.sync import sync_run

    result = sync_run(args.run_dir, to=args.to, token=args.token, namespace=args.namespace, root=args.root)
    print(json.dumps(result, indent=2))
    return 0


def _sample(args: argparse.Namespace) -> int:
    """Sample from a published generation (``revision="gen-XX"``) and print the samples with their labels as JSON."""
    if args.num_samples < 1:
        raise ValueError(f"-n/--num_samples must be an integer >= 1, got {args.num_samples}")
    if args.generation < 0:
        raise ValueError(f"--generation must be an integer >= 0, got {args.generation}")
    # The endpoint is read when the Hugging Face libraries are imported: set it before they are.
    if args.hub_root is not None and args.endpoint is not None:
        raise ValueError("give at most one of --hub_root (serve a local store) and --endpoint (a running Hub)")
    if args.hub_root is not None:
        from scl_hf.hub.load import use_embedded_hub

        use_embedded_hub(args.hub_root)
    elif args.endpoint is not None:
        from scl_hf.hub.target import point_libraries_at, uses_xet

        point_libraries_at(args.endpoint, xet=uses_xet(args.endpoint))
    from scl_hf.config import SamplingConfig
    from scl_hf.cycles import revision
    from scl_hf.expressions import LABELS, classify
    from scl_hf.hub.load import load_generation
    from scl_hf.sample import sample_expressions

    cfg = SamplingConfig(num_samples=args.num_samples, temperature=args.temperature, top_k=args.top_k,
                         top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                         per_device_sample_batch_size=min(args.num_samples, 1000))
    model, tokenizer = load_generation(args.repo, args.generation)
    result = sample_expressions(model, tokenizer, cfg, seed=args.seed)
    labels = [classify(text) for text in result.texts]
    print(json.dumps({"repo": args.repo, "revision": revision(args.generation), "num_samples": len(labels),
                      "label_counts": {label: labels.count(label) for label in LABELS},
                      "samples": [{"text": t, "label": lab, "truncated": tr}
                                  for t, lab, tr in zip(result.texts, labels, result.truncated, strict=True)]},
                     indent=2))
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

    p = sub.add_parser("hub", allow_abbrev=False, help="the embedded Hub: serve a store, sync a run to another Hub")
    hub = p.add_subparsers(dest="hub_command", required=True)
    q = hub.add_parser("serve", allow_abbrev=False, help="serve an embedded Hub store (HF_ENDPOINT for the libraries)")
    q.add_argument("--root", required=True, metavar="DIR", help="store folder, e.g. runs/hub (created if missing)")
    q.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    q.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: 8080)")
    q.add_argument("--token", help="write token that clients must send; required with a --host other than loopback")
    q.add_argument("--verbose", action="store_true", help="log every request")
    q.set_defaults(func=_hub_serve)
    q = hub.add_parser("sync", allow_abbrev=False,
                       help="replay a run's published generations, in order with their tags, to another Hub")
    q.add_argument("run_dir", metavar="RUN_DIR", help="run directory (its config.yaml names the repos)")
    q.add_argument("--to", default="https://huggingface.co", metavar="URL",
                   help="destination Hub endpoint (default: https://huggingface.co)")
    q.add_argument("--token", help="token for the destination (default: HF_TOKEN or the cached login)")
    q.add_argument("--namespace", help="publish under this user/organization instead of the run's namespace")
    q.add_argument("--root", metavar="DIR",
                   help="the run's embedded Hub store (default: embedded_hub_root, else <output_dir>/hub)")
    q.set_defaults(func=_hub_sync)

    p = sub.add_parser("sample", allow_abbrev=False, help="sample from a published generation of a model repo")
    p.add_argument("--repo", required=True, help="model repo id, e.g. scl-hf/smoke")
    p.add_argument("--generation", type=int, required=True, help="generation number: loads revision gen-XX")
    p.add_argument("-n", "--num_samples", type=int, default=100, help="how many samples (default: 100)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default: 0.8)")
    p.add_argument("--top_k", type=int, default=0, help="0: off (default)")
    p.add_argument("--top_p", type=float, default=1.0, help="1.0: off (default)")
    p.add_argument("--max_new_tokens", type=int, help="length cap in characters (default: fill the context)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--hub_root", metavar="DIR", help="serve this embedded Hub store from this process and read it")
    p.add_argument("--endpoint", metavar="URL", help="Hub endpoint (default: HF_ENDPOINT or the real Hub)")
    p.set_defaults(func=_sample)
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
