"""Publishing a finished generation: one tagged commit in the model repo, one in the dataset repo.

For generation t of a run directory (layout in ``scl_hf.rundir``), ``publish_generation`` makes

- in the model repo, ONE commit holding ``gen_XX/model/`` (weights, config, tokenizer),
  ``generation.json`` (lineage, cycle, config hash, metrics) and ``README.md`` (the model card,
  rendered from ``hub_cards/model_card.md``: lineage, recipe, metrics as ``model-index``, how to
  load), with stale files of the previous generation deleted, then the tag ``gen-XX``;
- in the dataset repo, ONE commit adding config ``gen-XX`` (``gen-XX/train-*.parquet``: exactly
  what M_t trained on, and ``gen-XX/samples-*.parquet``: S_t, provenance columns kept) and
  ``README.md`` (the dataset card listing every config so far), then the same tag;
- the metric Space ``<namespace>/boolean_expressions``: the evaluate module folder and the package
  modules its script imports (``scl_hf.metrics.space_files``), so it loads without scl_hf.

Why not ``model.push_to_hub`` / ``DatasetDict.push_to_hub``: they make one commit per object (and
do not render our cards), so a generation would be spread over several commits; here each repo
gets exactly one commit per generation, which the tag then names.

Idempotent: a generation whose tag exists is skipped; a publish interrupted between the commit and
the tag is finished by the next call (the library sees no changed file, makes no new commit, and
returns the head that the tag then marks). Re-publishing after a resume therefore never duplicates
a commit or fails on an existing tag.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    DatasetCard,
    DatasetCardData,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
)
from huggingface_hub.errors import HfHubHTTPError

import scl_hf
from scl_hf.config import Config
from scl_hf.errors import RunDirError
from scl_hf.expressions import label, parse
from scl_hf.hub.target import METRIC_NAME, HubTarget, xet_scope
from scl_hf.metrics import space_files
from scl_hf.rundir import (
    METRICS,
    MODEL,
    SAMPLES,
    TRAIN_DATA,
    gen_dir,
    generation_of_tag,
    marker_problem,
    read_json,
    tag,
)

# Columns of both splits of a published dataset config: the contract's provenance and sample columns.
PUBLISHED_FEATURES = {"text": "string", "origin": "string", "generation": "int64", "model_revision": "string",
                      "label": "string", "depth": "int64", "truncated": "bool", "logprob": "float64",
                      "num_tokens": "int64"}
SAMPLE_ONLY = ("truncated", "logprob", "num_tokens")  # what the sampler knows of a sample: null on training rows


def cards_dir() -> Path:
    """``hub_cards/``: inside the package in a wheel, next to it in a checkout."""
    inside = Path(scl_hf.__file__).parent / "hub_cards"
    return inside if inside.is_dir() else Path(scl_hf.__file__).parent.parent / "hub_cards"


def make_api(target: HubTarget) -> HfApi:
    # token=False on a token-less embedded Hub: never send a cached real-Hub token to it
    return HfApi(endpoint=target.endpoint, token=target.token or False, library_name="scl_hf",
                 library_version=scl_hf.__version__)


def read_metrics(run_dir: str | Path, generation: int) -> dict:
    """``gen_XX/metrics.json``; a RunDirError naming it when the generation is not complete."""
    path = gen_dir(run_dir, generation) / METRICS
    problem = marker_problem(run_dir, generation)  # the loop's rule for a complete generation
    if problem is not None:
        raise RunDirError(f"generation {generation} of {run_dir} is not complete: {path} is {problem}")
    return read_json(path)


def generation_record(generation: int, cfg: Config, target: HubTarget, metrics: dict) -> dict:
    """``generation.json``: where this model comes from and how good it is. No timestamps (re-publish = same bytes)."""
    this, previous = tag(generation), (tag(generation - 1) if generation > 0 else None)
    return {
        "generation": generation,
        "revision": this,
        "run_name": cfg.loop.run_name,
        "config_hash": cfg.hash(),
        "cycle": {"cycle": cfg.cycle.cycle, "synthetic_fraction": cfg.cycle.synthetic_fraction,
                  "fresh_fraction": cfg.cycle.fresh_fraction, "curation": cfg.cycle.curation},
        "parent": {
            # the data M_t trained on: D0 for t = 0, else built by the cycle from S_{t-1} (samples of M_{t-1})
            "data": {"repo": target.dataset_repo_id, "config": this, "split": "train", "revision": this},
            "samples_from": None if previous is None else {"repo": target.model_repo_id, "revision": previous},
            "weights_from": (None if previous is None or cfg.training.init_from == "scratch"
                             else {"repo": target.model_repo_id, "revision": previous}),
        },
        "metrics": metrics.get("metrics", {}),
        "train": metrics.get("train", {}),
        "sampling": metrics.get("sampling", {}),
        "eval": metrics.get("eval", {}),  # likelihoods: held-out real data under M_t, S_t under M_0 and M_t
        "reference": metrics.get("reference", {}),  # the metric on a real sample of S_t's size
        "data": metrics.get("data", {}),
        "config": cfg.to_flat(),
    }


def model_card(record: dict, cfg: Config, target: HubTarget) -> str:
    revision = record["revision"]
    results = [
        EvalResult(task_type="text-generation", dataset_type=target.dataset_repo_id,
                   dataset_name=f"{cfg.loop.run_name} samples {revision}", dataset_config=revision,
                   dataset_split="samples", dataset_revision=revision, metric_type=name, metric_name=name,
                   metric_value=value)
        for name, value in record["metrics"].items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ]
    data = ModelCardData(library_name="transformers", pipeline_tag="text-generation", model_name=
                         f"{target.model_repo_id} {revision}", datasets=[target.dataset_repo_id],
                         tags=["scl-hf", "self-consuming-loop", "model-collapse", "gpt2", "boolean-expressions"],
                         eval_results=results or None)
    card = ModelCard.from_template(data, template_path=str(cards_dir() / "model_card.md"), record=record, cfg=cfg,
                                   model_repo=target.model_repo_id, dataset_repo=target.dataset_repo_id,
                                   space_repo=target.space_repo_id)
    return str(card)


def dataset_card(record: dict, cfg: Config, target: HubTarget, configs: list[str]) -> str:
    data = DatasetCardData(
        pretty_name=f"scl_hf run {cfg.loop.run_name}", task_categories=["text-generation"],
        tags=["scl-hf", "self-consuming-loop", "model-collapse", "synthetic", "boolean-expressions"],
        configs=[{"config_name": c, "data_files": [{"split": "train", "path": f"{c}/train-*"},
                                                   {"split": "samples", "path": f"{c}/samples-*"}]}
                 for c in configs])
    card = DatasetCard.from_template(data, template_path=str(cards_dir() / "dataset_card.md"), record=record,
                                     cfg=cfg, configs=configs, model_repo=target.model_repo_id,
                                     dataset_repo=target.dataset_repo_id, space_repo=target.space_repo_id)
    return str(card)


def repo_tags(api: HfApi, repo_id: str, repo_type: str) -> dict[str, str]:
    return {ref.name: ref.target_commit for ref in api.list_repo_refs(repo_id, repo_type=repo_type).tags}


def commit_files(api: HfApi, repo_id: str, repo_type: str, additions: list[CommitOperationAdd], message: str,
                 head: str, remote: list[str], keep: set[str] = frozenset()) -> str:
    """One commit on main (parent ``head``) after which the repo holds exactly ``additions`` and ``keep``; the oid.

    ``remote`` lists the files at ``head``; those not kept are deleted (``.gitattributes`` always stays).
    Unchanged files are skipped by the library, and when nothing changed no commit is made and
    ``head`` comes back.
    """
    new_paths = {op.path_in_repo for op in additions} | set(keep) | {".gitattributes"}
    deletions = [CommitOperationDelete(path_in_repo=p) for p in remote if p not in new_paths]
    info = api.create_commit(repo_id, additions + deletions, commit_message=message, repo_type=repo_type,
                             parent_commit=head)
    return info.oid


def tag_commit(api: HfApi, repo_id: str, repo_type: str, tag: str, oid: str, message: str) -> None:
    """Tag ``oid``; an existing tag is fine when it already names ``oid`` (another publisher won the race)."""
    try:
        api.create_tag(repo_id, tag=tag, revision=oid, repo_type=repo_type, tag_message=message)
    except HfHubHTTPError as err:
        if err.response is None or err.response.status_code != 409:
            raise
        if repo_tags(api, repo_id, repo_type).get(tag) != oid:
            raise


def publish_model(api: HfApi, run_dir: Path, generation: int, cfg: Config, target: HubTarget, record: dict) -> dict:
    repo, name = target.model_repo_id, tag(generation)
    api.create_repo(repo, private=cfg.hub.hub_private_repo, exist_ok=True)
    tags = repo_tags(api, repo, "model")
    if name in tags:
        return {"repo_id": repo, "tag": name, "commit": tags[name], "created": False}
    model_dir = gen_dir(run_dir, generation) / MODEL
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"{model_dir} holds no saved model (config.json is missing)")
    additions = [CommitOperationAdd(path_in_repo=p.relative_to(model_dir).as_posix(), path_or_fileobj=str(p))
                 for p in sorted(model_dir.rglob("*")) if p.is_file()]
    additions.append(CommitOperationAdd("generation.json", json.dumps(record, indent=2, sort_keys=True).encode()))
    additions.append(CommitOperationAdd("README.md", model_card(record, cfg, target).encode()))
    head = api.repo_info(repo).sha
    message = f"{name}: model, tokenizer and card of generation {generation}"
    oid = commit_files(api, repo, "model", additions, message, head, api.list_repo_files(repo, revision=head))
    tag_commit(api, repo, "model", name, oid, message)
    return {"repo_id": repo, "tag": name, "commit": oid, "created": True}


def published_splits(folder: Path) -> dict:
    """``{"train": D_t, "samples": S_t}`` as published: both with the columns of ``PUBLISHED_FEATURES``.

    The splits of one dataset config must share their features, so each gets the other's columns:
    training rows are classified with the project's parser (``label``, ``depth``; ``SAMPLE_ONLY`` columns are
    unknown for them: null), samples get ``origin`` "synthetic" (and null ``logprob``/``num_tokens`` when drawn
    before the sampler returned them).
    """
    from datasets import Features, Value, load_from_disk

    features = Features({name: Value(dtype) for name, dtype in PUBLISHED_FEATURES.items()})
    train = load_from_disk(str(folder / TRAIN_DATA))
    samples = load_from_disk(str(folder / SAMPLES))

    def classify_batch(batch: dict) -> dict:
        trees = [parse(text) for text in batch["text"]]
        return {"label": [label(tree) for tree in trees],
                "depth": [-1 if tree is None else tree.depth for tree in trees],
                **{k: [None] * len(trees) for k in SAMPLE_ONLY}}

    # keep_in_memory: a cache file would land in the run directory, next to the saved dataset
    if "label" not in train.column_names:
        train = train.map(classify_batch, batched=True, keep_in_memory=True, features=Features({
            **train.features, **{k: features[k] for k in ("label", "depth", *SAMPLE_ONLY)}}))
    if "origin" not in samples.column_names:
        samples = samples.add_column("origin", ["synthetic"] * len(samples))
    for k in SAMPLE_ONLY:
        if k not in samples.column_names:
            samples = samples.add_column(k, [None] * len(samples), feature=features[k])
    return {split: ds.select_columns(list(features)).cast(features, keep_in_memory=True)
            for split, ds in (("train", train), ("samples", samples))}


def publish_data(api: HfApi, run_dir: Path, generation: int, cfg: Config, target: HubTarget, record: dict) -> dict:
    repo, name = target.dataset_repo_id, tag(generation)
    api.create_repo(repo, repo_type="dataset", private=cfg.hub.hub_private_repo, exist_ok=True)
    tags = repo_tags(api, repo, "dataset")
    if name in tags:
        return {"repo_id": repo, "tag": name, "commit": tags[name], "created": False}
    head = api.dataset_info(repo).sha
    remote = api.list_repo_files(repo, repo_type="dataset", revision=head)
    # Configs already published (gen-XX folders on main) stay listed in the card; their files are kept.
    published = {folder for p in remote if "/" in p and generation_of_tag(folder := p.split("/")[0]) is not None}
    configs = sorted(published | {name}, key=generation_of_tag)
    keep = {p for p in remote if p.split("/")[0] in configs and p.split("/")[0] != name}
    with tempfile.TemporaryDirectory(prefix="scl_hf_publish_") as tmp:
        additions = []
        for split, ds in published_splits(gen_dir(run_dir, generation)).items():
            path = Path(tmp) / f"{split}-00000-of-00001.parquet"
            ds.to_parquet(str(path))
            additions.append(CommitOperationAdd(f"{name}/{path.name}", str(path)))
        additions.append(CommitOperationAdd("README.md", dataset_card(record, cfg, target, configs).encode()))
        message = f"{name}: training data and samples of generation {generation}"
        oid = commit_files(api, repo, "dataset", additions, message, head, remote, keep)
    tag_commit(api, repo, "dataset", name, oid, message)
    return {"repo_id": repo, "tag": name, "commit": oid, "created": True}


def publish_metric_space(api: HfApi, target: HubTarget, private: bool = False) -> dict:
    """Make the Space ``<namespace>/boolean_expressions`` hold exactly ``space_files()``: one commit, or none.

    The script, card, widget and requirements come from the module folder and the parser, diversity
    and metric code are the package's own modules, copied as they are, so ``evaluate.load`` of the
    Space needs no scl_hf.
    """
    repo = target.space_repo_id
    api.create_repo(repo, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    head = api.repo_info(repo, repo_type="space").sha
    additions = [CommitOperationAdd(path, str(source)) for path, source in sorted(space_files().items())]
    oid = commit_files(api, repo, "space", additions, f"Upload the {METRIC_NAME} metric (scl_hf {scl_hf.__version__})",
                       head, api.list_repo_files(repo, repo_type="space", revision=head))
    return {"repo_id": repo, "commit": oid}


def publish_generation(run_dir: Path, generation: int, cfg: Config, target: HubTarget) -> dict:
    """Publish a complete generation (``gen_XX/metrics.json`` present) to ``target``; call on the main process only.

    Returns ``{"generation", "tag", "model": {...}, "dataset": {...}, "space": {...} | None}`` where
    each repo entry is ``{"repo_id", "tag", "commit", "created"}`` (``created`` False: already published).
    """
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir, generation)
    api = make_api(target)
    record = generation_record(generation, cfg, target, metrics)
    with xet_scope(target.endpoint):
        result = {
            "generation": generation,
            "tag": tag(generation),
            "model": publish_model(api, run_dir, generation, cfg, target, record),
            "dataset": publish_data(api, run_dir, generation, cfg, target, record),
        }
        if target.metric_space is None:  # the metric does not change during a run: once per process
            target.metric_space = publish_metric_space(api, target, cfg.hub.hub_private_repo)
    result["space"] = target.metric_space
    return result
