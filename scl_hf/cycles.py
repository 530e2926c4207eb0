"""Data cycles and curation: how generation t+1's training set is built from D0, D_t and S_t.

Notation: n = ``dataset_size`` = |D0|, λ = ``synthetic_fraction``, φ = ``fresh_fraction``,
S_t = the samples of M_t after curation (in sampling order), and ``new(k)`` = k new rows of which
round(φ·k) are fresh real expressions (drawn from the generator with the stream ``seed_for(real_data_seed,
"fresh", t + 1)``, never a string of D0, D_t or the held-out set H) and the rest are the first samples of S_t.

=======================  ==================================================  ===========
cycle                    D_{t+1}                                             |D_{t+1}|
=======================  ==================================================  ===========
full_synthetic           new(n)                                              n
balanced                 ⌊n/2⌋ rows drawn from D0  ∪  new(n − ⌊n/2⌋)          n
incremental (λ)          n − round(λn) rows drawn from D_t  ∪  new(round(λn))  n
expanding (φ)            D_t  ∪  new(n)                                      |D_t| + n
accumulate               D_t  ∪  every kept sample of S_t                    |D_t| + |S_t|
accumulate_subsample     n rows drawn from D0 ∪ S_0 ∪ … ∪ S_t                 n
=======================  ==================================================  ===========

The paper's four cycles are the first four with φ = 0 (and its expanding-with-fresh-data variant
is φ = 0.25: the paper's λ for expanding is 1 − φ here). ``accumulate`` and ``accumulate_subsample`` are
Gerstgrasser et al.'s "accumulate all data" and its fixed-size variant. "Drawn" means a uniformly
random subset without replacement, from the stream ``seed_for(seed, "draw", t + 1)``; row order inside D_{t+1} is
[rows drawn or kept, fresh rows, samples] — training shuffles anyway.

Curation runs on samples before they are used, with the steps of ``curation`` in the given order:
``syntactic`` keeps parsable expressions, ``verified`` keeps those that evaluate to True (selection by a
verifier adds information — the counter-thesis; with ``verifier_error`` = ε each verdict is wrong with
probability ε, independently, from the stream ``seed_for(seed, "verify", t + 1)``: a False or unparsable
sample is then kept and a True one rejected, and ``wrong_verdicts`` counts both; ε = 0.5 knows nothing),
``correct`` sends each sample the verifier does not judge True to ``scl_hf.correction.correct_text`` and keeps
the True expression fewest token edits away (at most ``correction_max_edits``, depth within D0's bounds; ties
seeded from ``seed_for(seed, "correct", t + 1)`` plus the sample's position) or drops it as ``uncorrectable``;
rows then carry ``corrected_from`` and ``edits`` (``PROVENANCE``), ``dedup`` drops a sample already present in
the samples kept so far or in the rows it joins, ``quota`` keeps the depth distribution of D0: with m rows
needed, depth d gets round(m·p_d) slots (p_d = share of depth d in D0) and a sample whose depth is full (or
that does not parse) is set aside; when the samples run out before every slot is filled, the set-aside samples
fill the rest in order ("as far as the samples allow"). When curation keeps fewer samples than a cycle needs,
the loop draws more from the same model (up to ``resample_budget`` × ``num_samples`` extra) and records
``extra_samples`` and any ``shortfall``, with the cost: ``samples_drawn`` (S_t and the extra samples),
``samples_per_kept_row`` and the ``seconds`` spent resampling, curating and selecting.

Selection spends extra compute per kept row: with ``selection_pool`` = k and m samples needed, curation keeps
k·m samples (the pool; resampling may then draw up to (k − 1)·``num_samples`` + k·``resample_budget``·``num_samples``
extra), and ``select`` keeps m of them (``scl_hf.selection``; rows stay in pool order): ``novelty`` greedily
the sample farthest from those kept so far and from the rows they join, ``novelty_stratified`` the same inside
quotas per (depth, length tertile) stratum that follow D0's shares (farthest points alone drift to long samples),
``likelihood`` the highest log-probabilities per token under M_t (T = 1, as the sampler returned them), ``random``
a uniformly random subset from ``seed_for(seed, "select", t + 1)`` (the matched null). The rest of the pool is
counted as rejected ``not_selected``, and the record gains ``selection`` (``select``, ``selection_pool``,
``pool_size``). The accumulate cycles keep every curated sample, so they have no number to select and refuse
``select``.

Provenance columns on every row: ``text``, ``origin`` ("real" for D0, "fresh" for fresh real data,
"synthetic" for samples), ``generation`` (-1 for D0 rows; the producing generation t for samples of
M_t; the generation whose training set a fresh row was drawn for), ``model_revision`` ("gen-07"
for samples of M_07, "" otherwise).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from datasets import Dataset, concatenate_datasets

from scl_hf.config import Config
from scl_hf.correction import DEFAULT_MAX_EDITS, correct_text
from scl_hf.expressions import GeneratorConfig, make_real_dataset, num_true_expressions, parse
from scl_hf.rundir import seed_for, tag
from scl_hf.selection import SELECTIONS, select_likely, select_novel, select_novel_stratified, select_random

COLUMNS = ("text", "origin", "generation", "model_revision")
REJECT_REASONS = ("syntax_error", "false", "duplicate", "quota", "uncorrectable", "not_selected")
PROVENANCE = ("corrected_from", "edits")  # the columns ``correct`` adds to every row of the datasets it builds


def rows(texts: list[str], origin: str, generation: int, model_revision: str = "") -> Dataset:
    """A dataset with the provenance columns for ``texts``."""
    n = len(texts)
    return Dataset.from_dict({"text": list(texts), "origin": [origin] * n, "generation": [generation] * n,
                              "model_revision": [model_revision] * n})


def real_dataset(cfg: Config) -> Dataset:
    """D0 with provenance (generation -1): ``dataset_size`` unique True expressions of the ``real`` stream."""
    texts = make_real_dataset(cfg.data.dataset_size, seed_for(cfg.real_data_seed, "real", 0), cfg.data)
    return rows(texts, "real", -1)


def heldout_texts(cfg: Config, d0: Dataset) -> list[str]:
    """H: ``heldout_size`` unique True expressions of the ``heldout`` stream, none of them in D0.

    No training set ever holds them (fresh real data avoids them too), so each generation's likelihood
    of H measures how well it still explains real data it never saw.
    """
    return make_real_dataset(cfg.data.heldout_size, seed_for(cfg.real_data_seed, "heldout", 0), cfg.data,
                             exclude=set(d0["text"]))


def reference_texts(cfg: Config, generation: int, size: int) -> list[str]:
    """R_t: ``size`` distinct True expressions drawn like D0, from the ``reference`` stream of ``generation``.

    The loop measures R_t with the same metric as S_t (against D0): what a model whose samples follow the real
    distribution would score at that sample size, so a report can show how far S_t is from real and how much of a
    difference is sampling noise (each generation draws its own R_t). Drawn like D0, R_t holds no duplicates;
    where the depth bounds allow fewer than ``size`` distinct True expressions it holds all there are.
    """
    size = min(size, num_true_expressions(cfg.data, limit=size))
    return make_real_dataset(size, seed_for(cfg.real_data_seed, "reference", generation), cfg.data)


def with_provenance(ds: Dataset) -> Dataset:
    """``ds`` with the ``PROVENANCE`` columns, added where missing: each row as it is (``corrected_from`` = its
    text) with 0 edits, as for D0, fresh rows and the rows of generations built before ``correct`` ran."""
    drawn_as, edits = PROVENANCE
    if drawn_as in ds.column_names:
        return ds
    return ds.add_column(drawn_as, list(ds["text"])).add_column(edits, [0] * len(ds))


def draw(ds: Dataset, k: int, seed: int) -> Dataset:
    """``k`` rows of ``ds`` drawn uniformly without replacement, in their original order."""
    if k >= len(ds):
        return ds
    keep = sorted(random.Random(seed).sample(range(len(ds)), k))
    return ds.select(keep)


class Kept(NamedTuple):
    """A sample the curation kept: as it joins the data, as it was drawn, the edits between, the model's score."""

    text: str
    drawn: str
    edits: int
    score: float | None  # its log-probability per token under the model that drew it (T = 1); None: not known


@dataclass
class Curator:
    """Applies the curation steps to a stream of samples until ``needed`` are kept.

    Args:
        steps: curation steps in order (``CycleConfig.curation_steps``); empty keeps everything.
        needed: samples wanted; None keeps every sample that passes (accumulate).
        existing: strings already in the dataset the samples will join (for ``dedup``).
        depth_shares: share of each depth in D0 (for ``quota``).
        verifier_error: ε, the chance that the verifier of ``verified`` and ``correct`` gives the wrong verdict.
        verifier_seed: seed of the wrong verdicts (one draw per verifier call, in offering order).
        depth_bounds: ``(min_depth, max_depth)`` of the real data, which a correction must respect.
        max_edits: the edit budget of ``correct`` (``correction_max_edits``).
        correction_seed: ``correct`` breaks the ties of the n-th sample offered with seed ``correction_seed + n``.
    """

    steps: list[str]
    needed: int | None
    existing: set[str] = field(default_factory=set)
    depth_shares: dict[int, float] = field(default_factory=dict)
    verifier_error: float = 0.0
    verifier_seed: int = 0
    depth_bounds: tuple[int, int] = (GeneratorConfig.min_depth, GeneratorConfig.max_depth)
    max_edits: int = DEFAULT_MAX_EDITS
    correction_seed: int = 0
    rows: list[Kept] = field(default_factory=list)
    offered: int = 0
    rejected: Counter = field(default_factory=Counter)
    verifier_calls: int = 0
    wrong_verdicts: Counter = field(default_factory=Counter)  # "accepted" (not True, kept), "rejected" (True)
    edit_histogram: Counter = field(default_factory=Counter)  # edits -> samples the verifier sent to correction
    _seen: set[str] = field(default_factory=set)
    _set_aside: list[Kept] = field(default_factory=list)
    _depth_count: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._verifier_rng = random.Random(self.verifier_seed)

    def _verdict(self, tree) -> bool:
        """The verifier's verdict "evaluates to True" on a parsed sample (None: a syntax error); wrong with
        probability ``verifier_error``, drawn only when it is above 0 (so an exact verifier draws nothing)."""
        truth = tree is not None and tree.value
        self.verifier_calls += 1
        if self.verifier_error > 0.0 and self._verifier_rng.random() < self.verifier_error:
            self.wrong_verdicts["rejected" if truth else "accepted"] += 1
            return not truth
        return truth

    def _slots(self, depth: int) -> int:
        m = self.needed if self.needed is not None else self.offered
        return round(m * self.depth_shares.get(depth, 0.0))

    def _judge(self, text: str) -> tuple[str | None, str, int]:
        """``(why text is rejected or None to keep it, the text kept, the edits correct made to it)``."""
        tree = parse(text) if {"syntactic", "verified", "correct", "quota"} & set(self.steps) else None
        edits = 0
        for step in self.steps:
            if step == "syntactic" and tree is None:
                return "syntax_error", text, 0
            if step == "verified" and not self._verdict(tree):  # a rejection says what the verifier was shown
                return ("syntax_error" if tree is None else "false"), text, 0
            if step == "correct" and not self._verdict(tree):  # the verifier sends it to correction
                lo, hi = self.depth_bounds
                fixed = correct_text(text, lo, hi, self.max_edits, seed=self.correction_seed + self.offered)
                if fixed is None:
                    return "uncorrectable", text, 0
                text, edits = fixed
                self.edit_histogram[edits] += 1
                tree = parse(text)
            if step == "dedup" and (text in self._seen or text in self.existing):
                return "duplicate", text, edits
            if step == "quota" and (tree is None or self._depth_count[tree.depth] >= self._slots(tree.depth)):
                return "quota", text, edits
        if "quota" in self.steps:
            self._depth_count[tree.depth] += 1
        return None, text, edits

    def _keep(self, row: Kept) -> None:
        self.rows.append(row)
        self._seen.add(row.text)

    @property
    def kept(self) -> list[str]:
        """The texts of the kept rows, in the order they were kept."""
        return [row.text for row in self.rows]

    @property
    def satisfied(self) -> bool:
        return self.needed is not None and len(self.rows) >= self.needed

    def offer(self, texts: Iterable[str], scores: Iterable[float] | None = None) -> None:
        """Curate ``texts`` in order (``scores``: the model's score of each, kept beside it); stop keeping once
        ``needed`` are kept."""
        texts = list(texts)
        for drawn, score in zip(texts, [None] * len(texts) if scores is None else scores, strict=True):
            if self.satisfied:
                return
            self.offered += 1
            reason, text, edits = self._judge(drawn)
            if reason is None:
                self._keep(Kept(text, drawn, edits, score))
            elif reason == "quota":
                self._set_aside.append(Kept(text, drawn, edits, score))
            else:
                self.rejected[reason] += 1

    def finish(self) -> list[Kept]:
        """Fill what quota left empty from the set-aside samples; return the kept rows."""
        while self._set_aside and not self.satisfied and self.needed is not None:
            row = self._set_aside.pop(0)
            if "dedup" in self.steps and (row.text in self._seen or row.text in self.existing):
                self.rejected["duplicate"] += 1
                continue
            self._keep(row)
        self.rejected["quota"] += len(self._set_aside)
        self._set_aside = []
        return self.rows

    def record(self, extra_samples: int) -> dict:
        """The ``data.curation`` block of metrics.json."""
        shortfall = max(0, self.needed - len(self.rows)) if self.needed is not None else 0
        return {"steps": list(self.steps), "input": self.offered, "kept": len(self.rows),
                "rejected": {r: self.rejected.get(r, 0) for r in REJECT_REASONS},
                "extra_samples": extra_samples, "shortfall": shortfall,
                "verifier_calls": self.verifier_calls,
                "wrong_verdicts": {k: self.wrong_verdicts.get(k, 0) for k in ("accepted", "rejected")},
                "corrections": {"made": sum(v for k, v in self.edit_histogram.items() if k > 0),
                                "edits": {str(k): self.edit_histogram.get(k, 0) for k in range(self.max_edits + 1)}}}


def select(method: str, pool: list[Kept], k: int, *, joined: list[str], real: list[str], seed: int) -> list[Kept]:
    """``k`` rows of the curated ``pool`` (all of them when it holds at most ``k``), by ``method``
    (``scl_hf.selection``), in pool order: ``novelty`` far from each other and from the ``joined`` rows,
    ``novelty_stratified`` the same within quotas set by the ``real`` texts (D0), ``likelihood`` the highest
    scores, ``random`` drawn with ``random.Random(seed)``."""
    if method == "novelty":
        chosen = select_novel([row.text for row in pool], k, joined)
    elif method == "novelty_stratified":
        chosen = select_novel_stratified([row.text for row in pool], k, real, joined)
    elif method == "likelihood":
        if any(row.score is None for row in pool):
            raise ValueError("select 'likelihood' needs each sample's log-probability, and some samples have none "
                             "(drawn before the sampler returned them): delete that generation's samples to redraw")
        chosen = select_likely([row.score for row in pool], k)
    elif method == "random":
        chosen = select_random(len(pool), k, seed)
    else:
        raise ValueError(f"select must be one of {SELECTIONS}, got {method!r}")
    return [pool[i] for i in chosen]


def depth_shares(texts: list[str]) -> dict[int, float]:
    """Share of each depth among the parsable ``texts``."""
    depths = Counter(tree.depth for tree in map(parse, texts) if tree is not None)
    total = sum(depths.values())
    return {d: c / total for d, c in sorted(depths.items())}


@dataclass
class NextDataset:
    """D_{t+1} and how it was made."""

    dataset: Dataset
    curation: dict | None  # the data.curation block of metrics.json (None without curation or resampling)
    pool: Dataset | None = None  # accumulate_subsample: D0 ∪ S_0 ∪ … ∪ S_t, what the next draw starts from


def build_next_dataset(
    cfg: Config,
    generation: int,
    d0: Dataset,
    current: Dataset,
    samples: list[str],
    sample_more: Callable[[int, int], tuple[list[str], list[float] | None]],
    pool: Dataset | None = None,
    heldout: frozenset[str] | set[str] = frozenset(),
    scores: list[float] | None = None,
) -> NextDataset:
    """Build D_{generation} from D0, D_{generation-1} (``current``) and the samples of M_{generation-1}.

    Args:
        cfg: the run's config.
        generation: t + 1, the generation whose training set is built.
        d0: the real dataset with provenance.
        current: D_t, what M_t trained on.
        samples: S_t in sampling order (uncurated).
        sample_more: ``sample_more(k, round)`` draws k more samples from M_t (round 1, 2, ...: fresh streams) and
            returns them with their scores (or None), as ``samples`` and ``scores`` are given.
        pool: for ``accumulate_subsample``: D0 ∪ S_0 ∪ … ∪ S_{t-1} (curated); ignored otherwise.
        heldout: the held-out set H, which fresh real rows never repeat.
        scores: each sample's log-probability per token under M_t at temperature 1 (``select: likelihood`` needs
            them); None: unknown.
    """
    cyc, n, t = cfg.cycle, cfg.data.dataset_size, generation - 1
    seed = seed_for(cfg.training.seed, "draw", generation)
    num_new, num_fresh = cyc.new_rows(n), cyc.fresh_rows(n)  # the formulas the config's capacity check uses too
    if cyc.cycle in ("accumulate", "accumulate_subsample"):
        base = current if cyc.cycle == "accumulate" else pool
    elif cyc.cycle == "full_synthetic":
        base = current.select([])
    elif cyc.cycle == "balanced":
        base = draw(d0, n // 2, seed)
    elif cyc.cycle == "incremental":
        base = draw(current, n - num_new, seed)
    else:  # expanding
        base = current

    parts = [base]
    existing = set(base["text"])
    if num_fresh:
        fresh = make_real_dataset(num_fresh, seed_for(cfg.real_data_seed, "fresh", generation), cfg.data,
                                  exclude=existing | set(d0["text"]) | set(current["text"]) | set(heldout))
        parts.append(rows(fresh, "fresh", generation))
        existing |= set(fresh)

    num_samples = None if num_new is None else num_new - num_fresh
    selecting = cyc.select != "none"  # the config allows it only where num_samples is a number
    curator = Curator(cyc.curation_steps, num_samples * cyc.selection_pool if selecting else num_samples, existing,
                      depth_shares(d0["text"]),
                      verifier_error=cyc.verifier_error,
                      verifier_seed=seed_for(cfg.training.seed, "verify", generation),
                      depth_bounds=(cfg.data.min_depth, cfg.data.max_depth), max_edits=cyc.correction_max_edits,
                      correction_seed=seed_for(cfg.training.seed, "correct", generation))
    start, resampling = time.perf_counter(), 0.0
    curator.offer(samples, scores)
    budget, extra, rounds = int(cyc.extra_samples_allowed(cfg.sampling.num_samples)), 0, 0
    while curator.needed is not None and not curator.satisfied and extra < budget:
        missing = curator.needed - len(curator.rows)
        # ask for enough to cover the observed rejection rate, within the budget (without curation steps, only
        # a selection pool asks: nothing is rejected, and exactly the missing samples are drawn)
        keep_rate = max(len(curator.rows) / max(curator.offered, 1), 0.05)
        wanted = int(missing / keep_rate * 1.1) + 1 if cyc.curation_steps else missing
        k = min(budget - extra, max(missing, wanted))
        rounds += 1
        before = time.perf_counter()
        more, more_scores = sample_more(k, rounds)
        resampling += time.perf_counter() - before
        curator.offer(more, more_scores)
        extra += k
    kept = curator.finish()
    curating = time.perf_counter() - start - resampling
    before = time.perf_counter()
    if selecting:
        kept = select(cyc.select, kept, num_samples, joined=sorted(existing), real=list(d0["text"]),
                      seed=seed_for(cfg.training.seed, "select", generation))
    selecting_seconds = time.perf_counter() - before
    parts.append(rows([row.text for row in kept], "synthetic", t, tag(t)))
    if "correct" in cyc.curation_steps:  # every row says what it was drawn as and how many edits made it
        drawn_as, edits = PROVENANCE
        parts[-1] = (parts[-1].add_column(drawn_as, [row.drawn for row in kept])
                     .add_column(edits, [row.edits for row in kept]))
        parts = [with_provenance(part) for part in parts]
    dataset = concatenate_datasets(parts)
    record = curator.record(extra) if (cyc.curation_steps or extra or selecting) else None
    if record is not None:  # the cost of what was kept: the thesis is about spending compute on samples
        drawn = len(samples) + extra
        record.update(samples_drawn=drawn, samples_per_kept_row=drawn / len(kept) if kept else None,
                      seconds={"resampling": resampling, "curating": curating, "selecting": selecting_seconds})
        if selecting:
            pool_size = record["kept"]
            record["rejected"]["not_selected"] = pool_size - len(kept)
            record.update(kept=len(kept), shortfall=max(0, num_samples - len(kept)),
                          selection={"select": cyc.select, "selection_pool": cyc.selection_pool,
                                     "pool_size": pool_size})
    if cyc.cycle == "accumulate_subsample":
        return NextDataset(draw(dataset, n, seed), record, pool=dataset)
    return NextDataset(dataset, record)
