"""The ``scl-hf`` console script: one subcommand per job, each a thin call into the package."""

from __future__ import annotations

import argparse
import errno
import json
import shutil
import sys
from pathlib import Path

from scl_hf.errors import SclHfError


def _data(args: argparse.Namespace) -> int:
    """Generate the real dataset D0 and print its statistics (and optionally save it)."""
    from scl_hf.config import config_from_args
    from scl_hf.cycles import real_dataset
    from scl_hf.expressions import dataset_stats

    texts = real_dataset(config_from_args(args))["text"]  # exactly the loop's D0
    if args.save:
        with open(args.save, "w", encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
    print(json.dumps({"examples": texts[:5], **dataset_stats(texts)}, indent=2))
    return 0


def _report(args: argparse.Namespace) -> int:
    """One run dir: its report.md and figures, written into it. Several (or --output): a comparison in --output."""
    from scl_hf.report import write_comparison_report, write_run_report

    if not 0.0 <= args.threshold <= 1.0:
        raise SclHfError(f"--threshold must be in [0, 1] (diversity is a share), got {args.threshold}")
    if args.output is None and len(args.run_dirs) > 1:
        raise SclHfError("--output DIR is required with several run directories (where the comparison goes)")
    if args.output is None:
        print(write_run_report(args.run_dirs[0], threshold=args.threshold))
    else:
        print(write_comparison_report(args.run_dirs, args.output, threshold=args.threshold))
    return 0


def _run(args: argparse.Namespace) -> int:
    """The self-consuming loop: run or resume ``<output_dir>/<run_name>``, publishing each generation."""
    from scl_hf.config import config_from_args
    from scl_hf.loop import run_loop

    run_loop(config_from_args(args), allow_config_change=args.allow_config_change)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    """Every run of a sweep file not yet done, then the comparison report, figures and results.csv; --status lists
    the runs, --report writes the results of the runs complete so far, --export copies the small results."""
    from scl_hf.sweep import export_results, load_sweep, run_sweep, status, write_results

    sweep = load_sweep(args.sweep, args.output_dir)
    if args.export is not None:
        print(f"{len(export_results(sweep, args.export))} files copied to {args.export}")
        return 0
    if args.status:
        for name, state, done, total in status(sweep):
            print(f"{state:<12} {done:>3}/{total:<3} {name}")
        return 0
    if not args.report:
        failed = run_sweep(sweep)
        if failed:
            raise SclHfError(f"{len(failed)} of {len(sweep.runs)} runs failed ({', '.join(failed)}); run the sweep "
                             "again to retry them (finished runs are skipped)")
    for path in write_results(sweep):
        print(path)
    return 0


def _read_lines(path: str, what: str) -> list[str]:
    """One string per line of a UTF-8 file. Only "\\n" ends a line (form feeds and the like are content);
    a trailing "\\r" is dropped, blank lines are empty samples, a final newline adds none."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as err:
        raise SclHfError(f"cannot read {what} file {path!r}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise SclHfError(f"{what} file {path!r} is not UTF-8 text: {err}") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _metric(args: argparse.Namespace) -> int:
    """Correctness and diversity of a text file with one expression per line, printed as JSON."""
    from scl_hf.metrics import compute_metrics

    predictions = _read_lines(args.file, "predictions")
    training = None if args.training_texts is None else _read_lines(args.training_texts, "training_texts")
    real = None if args.real_texts is None else _read_lines(args.real_texts, "real_texts")
    try:
        result = compute_metrics(predictions, training, real_texts=real, level=args.level, max_pairs=args.max_pairs)
    except ValueError as err:  # an empty file, a --max_pairs below 2: the file or a flag is at fault
        raise SclHfError(str(err)) from None
    print(json.dumps(result, indent=2))
    return 0


def _hub_serve(args: argparse.Namespace) -> int:
    """Serve an embedded Hub store until interrupted."""
    from scl_hf.hub.server import serve_from_args

    return serve_from_args(args)


def _hub_sync(args: argparse.Namespace) -> int:
    """Replay a run's published generations (embedded store) to another Hub, in order, with their tags."""
    from scl_hf.hub.sync import sync_run

    result = sync_run(args.run_dir, to=args.to, token=args.token, namespace=args.namespace, root=args.root)
    print(json.dumps(result, indent=2))
    return 0


def _sample(args: argparse.Namespace) -> int:
    """Sample from a published generation (``revision="gen-XX"``) and print the samples with their labels as JSON."""
    from scl_hf.config import section_from_args

    cfg = section_from_args(args, "sampling")  # the loop's sampling keys, validated as in a recipe
    if args.generation < 0:
        raise SclHfError(f"--generation must be an integer >= 0, got {args.generation}")
    # The read path points the libraries' global endpoint (from_pretrained takes none): before loading.
    if args.hub_root is not None and args.endpoint is not None:
        raise SclHfError("give at most one of --hub_root (serve a local store) and --endpoint (a running Hub)")
    if args.hub_root is not None:
        from scl_hf.hub.load import use_embedded_hub

        use_embedded_hub(args.hub_root)
    elif args.endpoint is not None:
        from scl_hf.hub.load import point_libraries_at

        point_libraries_at(args.endpoint)
    from scl_hf.expressions import LABELS, classify
    from scl_hf.hub.load import load_generation
    from scl_hf.rundir import tag
    from scl_hf.sample import sample_expressions

    model, tokenizer = load_generation(args.repo, args.generation)
    result = sample_expressions(model, tokenizer, cfg, seed=args.seed)
    labels = [classify(text) for text in result.texts]
    print(json.dumps({"repo": args.repo, "revision": tag(args.generation), "num_samples": len(labels),
                      "label_counts": {label: labels.count(label) for label in LABELS},
                      "samples": [{"text": t, "label": lab, "truncated": tr}
                                  for t, lab, tr in zip(result.texts, labels, result.truncated, strict=True)]},
                     indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from scl_hf.config import add_config_arguments, add_section_arguments
    from scl_hf.diversity import COLLAPSE_THRESHOLD, LEVELS
    from scl_hf.hub.server import add_serve_arguments
    from scl_hf.hub.target import REAL_ENDPOINT

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

    p = sub.add_parser("sweep", allow_abbrev=False,
                       help="every run of a sweep file (recipes x grid x seeds), resumable")
    p.add_argument("sweep", metavar="SWEEP", help="sweep file (YAML: recipes, grid, overrides, seeds, executor, ...)")
    p.add_argument("--output_dir", metavar="DIR", help="the sweep's folder (default: runs/sweeps/<sweep file stem>)")
    p.add_argument("--status", action="store_true", help="list the runs as done / partial / not started, run nothing")
    p.add_argument("--report", action="store_true",
                   help="write comparison/, figures/ and results.csv from the runs complete so far, run nothing")
    p.add_argument("--export", metavar="DIR",
                   help="copy the small results (configs, metrics, reports, figures, results.csv) to DIR, run nothing")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("report", allow_abbrev=False, help="report.md and figures of one run, or a comparison of runs")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (each holds config.yaml)")
    p.add_argument("--output", metavar="DIR", help="write a comparison report here (required with several runs)")
    p.add_argument("--threshold", type=float, default=COLLAPSE_THRESHOLD,
                   help=f"diversity below which a run counts as collapsed, in [0, 1] (default: {COLLAPSE_THRESHOLD})")
    p.set_defaults(func=_report)

    p = sub.add_parser("metric", allow_abbrev=False,
                       help="correctness and diversity of a file of expressions (one per line), as JSON")
    p.add_argument("file", metavar="FILE", help="UTF-8 text file, one generated expression per line")
    p.add_argument("--training_texts", metavar="FILE", help="training set, one per line: adds novelty_rate")
    p.add_argument("--real_texts", metavar="FILE",
                   help="real expressions, one per line (D0): adds the divergences and tail coverage against them")
    p.add_argument("--level", choices=LEVELS, default=LEVELS[0],
                   help=f"edit distance over word tokens or characters (default: {LEVELS[0]})")
    p.add_argument("--max_pairs", type=int, metavar="N",
                   help="estimate the diversity from N random pairs when there are more (default: exact)")
    p.set_defaults(func=_metric)

    p = sub.add_parser("hub", allow_abbrev=False, help="the embedded Hub: serve a store, sync a run to another Hub")
    hub = p.add_subparsers(dest="hub_command", required=True)
    q = hub.add_parser("serve", allow_abbrev=False, help="serve an embedded Hub store (HF_ENDPOINT for the libraries)")
    add_serve_arguments(q)
    q.set_defaults(func=_hub_serve)
    q = hub.add_parser("sync", allow_abbrev=False,
                       help="replay a run's published generations, in order with their tags, to another Hub")
    q.add_argument("run_dir", metavar="RUN_DIR", help="run directory (its config.yaml names the repos)")
    q.add_argument("--to", default=REAL_ENDPOINT, metavar="URL",
                   help=f"destination Hub endpoint (default: {REAL_ENDPOINT})")
    q.add_argument("--token", help="token for the destination (default: HF_TOKEN or the cached login)")
    q.add_argument("--namespace", help="publish under this user/organization instead of the run's namespace")
    q.add_argument("--root", metavar="DIR",
                   help="the run's embedded Hub store (default: embedded_hub_root, else <output_dir>/hub)")
    q.set_defaults(func=_hub_sync)

    p = sub.add_parser("sample", allow_abbrev=False, help="sample from a published generation of a model repo")
    p.add_argument("--repo", required=True, help="model repo id, e.g. scl-hf/smoke")
    p.add_argument("--generation", type=int, required=True, help="generation number: loads revision gen-XX")
    # the loop's sampling keys; 100 samples by default, a quick look (a generation draws num_samples of the recipe)
    add_section_arguments(p, "sampling", aliases={"num_samples": "-n"}, defaults={"num_samples": 100})
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--hub_root", metavar="DIR", help="serve this embedded Hub store from this process and read it")
    p.add_argument("--endpoint", metavar="URL", help="Hub endpoint (default: HF_ENDPOINT or the real Hub)")
    p.set_defaults(func=_sample)
    return parser


def _is_disk_full(err: OSError) -> bool:
    return err.errno == errno.ENOSPC or "No space left on device" in str(err)  # pyarrow's IO errors set no errno


def _disk_full_message(err: OSError, args: argparse.Namespace) -> str:
    """One line: where the disk filled up, how much is free there, and (for a run) what a generation needs."""
    path = Path(err.filename) if isinstance(err.filename, str) else None
    need = ""
    if args.command == "run":
        try:
            from scl_hf.config import config_from_args
            from scl_hf.rundir import generation_dirs

            run_dir = config_from_args(args).run_dir
        except SclHfError:
            run_dir = None
        if run_dir is not None:
            path = path or run_dir
            sizes = [sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
                     for _, folder in generation_dirs(run_dir)]
            if sizes:
                need = f"; a generation of this run takes about {max(sizes) / 2**20:.0f} MiB"
    where, free = "", ""
    if path is not None:
        where = f" writing {path}"
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None:
            free = f" ({shutil.disk_usage(existing).free / 2**20:.0f} MiB free there{need})"
    return (f"no space left on device{where}{free}: free some space and run the same command again "
            "(complete stages are kept and the run resumes)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SclHfError as err:  # bad input the user can fix: one clear line; anything else keeps its traceback
        print(f"scl-hf {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if not _is_disk_full(err):
            raise
        print(f"scl-hf {args.command}: error: {_disk_full_message(err, args)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
