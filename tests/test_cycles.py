"""Data cycles and curation: exact row counts, provenance and curation records."""

import random
from collections import Counter

import pytest

from scl_hf.config import build_config
from scl_hf.cycles import Curator, build_next_dataset, heldout_texts, real_dataset, reference_texts, rows, select
from scl_hf.expressions import classify, make_real_dataset
from scl_hf.rundir import seed_for
from scl_hf.selection import SELECTIONS

N = 20


def config(**overrides):
    return build_config({"dataset_size": N, "num_samples": N, "max_depth": 4, **overrides})


def samples_of(k, seed=5):
    """k distinct True expressions, unlike any of D0 (a stand-in for a model's samples)."""
    return make_real_dataset(k, seed=seed, exclude=set(make_real_dataset(N, seed=0)))


def never_called(k, round_):
    raise AssertionError("no resampling expected")


def origins(ds):
    return {o: ds["origin"].count(o) for o in ("real", "fresh", "synthetic")}


@pytest.mark.parametrize(
    ("cycle", "extra", "size", "counts"),
    [
        ("full_synthetic", {}, N, {"real": 0, "fresh": 0, "synthetic": 20}),
        ("full_synthetic", {"fresh_fraction": 0.25}, N, {"real": 0, "fresh": 5, "synthetic": 15}),
        ("balanced", {}, N, {"real": 10, "fresh": 0, "synthetic": 10}),
        ("incremental", {"synthetic_fraction": 0.25}, N, {"real": 15, "fresh": 0, "synthetic": 5}),
        ("incremental", {"synthetic_fraction": 0.9}, N, {"real": 2, "fresh": 0, "synthetic": 18}),
        ("expanding", {}, 2 * N, {"real": 20, "fresh": 0, "synthetic": 20}),
        ("expanding", {"fresh_fraction": 0.25}, 2 * N, {"real": 20, "fresh": 5, "synthetic": 15}),
        ("accumulate", {}, 2 * N, {"real": 20, "fresh": 0, "synthetic": 20}),
        ("accumulate_subsample", {}, N, None),
    ],
)
def test_first_step_of_every_cycle(cycle, extra, size, counts):
    cfg = config(cycle=cycle, **extra)
    d0 = real_dataset(cfg)
    out = build_next_dataset(cfg, 1, d0, d0, samples_of(N), never_called, pool=d0)
    ds = out.dataset
    assert len(ds) == size and ds.column_names == ["text", "origin", "generation", "model_revision"]
    if counts is not None:
        assert origins(ds) == counts
    assert out.curation is None
    for row in ds:
        expected = {"real": (-1, ""), "fresh": (1, ""), "synthetic": (0, "gen-00")}[row["origin"]]
        assert (row["generation"], row["model_revision"]) == expected
    if cycle == "accumulate_subsample":
        assert len(out.pool) == 2 * N and set(ds["text"]) <= set(out.pool["text"])
    fresh = [r["text"] for r in ds if r["origin"] == "fresh"]
    assert not set(fresh) & set(d0["text"])  # fresh real data is new to the loop


def test_the_heldout_set_is_disjoint_from_d0_and_from_fresh_rows():
    cfg = config(cycle="full_synthetic", fresh_fraction=1.0, heldout_size=30)
    d0 = real_dataset(cfg)
    heldout = heldout_texts(cfg, d0)
    assert len(set(heldout)) == 30 and not set(heldout) & set(d0["text"])
    assert heldout == heldout_texts(cfg, d0) and all(classify(t) == "true" for t in heldout)
    unguarded = build_next_dataset(cfg, 1, d0, d0, samples_of(N), never_called).dataset["text"]
    # H made of the very rows the fresh draw would pick: with H given, the draw avoids every one of them
    trap = set(unguarded)
    guarded = build_next_dataset(cfg, 1, d0, d0, samples_of(N), never_called, heldout=trap).dataset["text"]
    assert len(guarded) == N and not set(guarded) & trap
    assert heldout_texts(config(heldout_size=0), d0) == []


def test_the_reference_sample_is_real_data_of_its_own_stream_per_generation():
    cfg = config()
    first, again, second = reference_texts(cfg, 1, 25), reference_texts(cfg, 1, 25), reference_texts(cfg, 2, 25)
    assert first == again and first != second  # reproducible; each generation draws its own
    assert len(set(first)) == 25 and all(classify(t) == "true" for t in first)
    assert first != real_dataset(config(dataset_size=25))["text"]  # not D0's stream
    assert reference_texts(config(data_seed=7), 1, 25) != first
    tiny = config(dataset_size=2, max_depth=1, heldout_size=0)  # depth 1: "True" and "(True)" only
    assert sorted(reference_texts(tiny, 0, 50)) == ["(True)", "True"]


def test_a_replicate_seed_varies_real_data_unless_a_recipe_pins_it():
    """seed drives D0, H and R_t through the derived real-data seed; data_seed pins them across seeds."""
    def real(**overrides):
        cfg = config(heldout_size=10, **overrides)
        d0 = real_dataset(cfg)
        return d0["text"], heldout_texts(cfg, d0), reference_texts(cfg, 1, 10), cfg.real_data_seed

    seed0, seed1 = real(seed=0), real(seed=1)
    assert seed0 == real(seed=0)
    assert all(a != b for a, b in zip(seed0, seed1, strict=True))  # D0, H, R_1 and the seed itself all differ
    assert seed0[3] == seed_for(0, "data", 0)
    pinned0, pinned1 = real(seed=0, data_seed=3), real(seed=1, data_seed=3)
    assert pinned0 == pinned1 and pinned0[3] == 3


def test_cycles_over_several_generations():
    cfg = config(cycle="expanding", fresh_fraction=0.25)
    d0 = real_dataset(cfg)
    d1 = build_next_dataset(cfg, 1, d0, d0, samples_of(N, 1), never_called).dataset
    d2 = build_next_dataset(cfg, 2, d0, d1, samples_of(N, 2), never_called).dataset
    assert len(d2) == 3 * N
    assert origins(d2) == {"real": 20, "fresh": 10, "synthetic": 30}
    assert sorted(set(d2["generation"])) == [-1, 0, 1, 2]

    cfg = config(cycle="accumulate_subsample")
    out1 = build_next_dataset(cfg, 1, d0, d0, samples_of(N, 1), never_called, pool=d0)
    out2 = build_next_dataset(cfg, 2, d0, out1.dataset, samples_of(N, 2), never_called, pool=out1.pool)
    assert len(out2.pool) == 3 * N and len(out2.dataset) == N

    cfg = config(cycle="incremental", synthetic_fraction=0.5)
    d1 = build_next_dataset(cfg, 1, d0, d0, samples_of(N, 1), never_called).dataset
    d2 = build_next_dataset(cfg, 2, d0, d1, samples_of(N, 2), never_called).dataset
    assert len(d2) == N and d2["model_revision"].count("gen-01") == 10


def test_same_inputs_give_the_same_dataset():
    cfg = config(cycle="balanced")
    d0 = real_dataset(cfg)
    a = build_next_dataset(cfg, 3, d0, d0, samples_of(N), never_called).dataset
    b = build_next_dataset(cfg, 3, d0, d0, samples_of(N), never_called).dataset
    c = build_next_dataset(cfg, 4, d0, d0, samples_of(N), never_called).dataset
    assert a.to_dict() == b.to_dict()
    assert a["text"][:10] != c["text"][:10]  # a different generation draws a different half of D0


MIXED = ["True", "False", "True and", "True", "not False", "((True))", "False or False", "True", "not not True",
         "garbage é", "True or False", "not (True and False)"]


@pytest.mark.parametrize(
    ("curation", "kept", "rejected", "extra"),
    [
        ("none", 10, {}, 0),
        ("syntactic", 10, {"syntax_error": 2}, 0),
        ("verified", 10, {"syntax_error": 2, "false": 2}, 4),  # 8 kept of 12: 2 missing / (8/12) * 1.1 + 1
        ("dedup", 10, {"duplicate": 2}, 0),
        ("verified+dedup", 10, {"syntax_error": 2, "false": 2, "duplicate": 2}, 9),  # 4 / 0.5 * 1.1 + 1
    ],
)
def test_curation_counts(curation, kept, rejected, extra):
    cfg = config(cycle="full_synthetic", curation=curation, num_samples=12, dataset_size=10)
    d0 = real_dataset(cfg)
    pool = iter(make_real_dataset(50, seed=9, exclude=set(MIXED)))
    out = build_next_dataset(cfg, 1, d0, d0, MIXED, lambda k, r: ([next(pool) for _ in range(k)], None))
    assert len(out.dataset) == kept
    if curation == "none":
        assert out.curation is None and out.dataset["text"] == MIXED[:10]
        return
    record = out.curation
    assert record["kept"] == kept and record["shortfall"] == 0
    assert {k: v for k, v in record["rejected"].items() if v} == rejected
    assert record["input"] == record["kept"] + sum(record["rejected"].values())
    assert record["extra_samples"] == extra
    assert record["input"] == 12 + min(extra, record["kept"] - (12 - sum(rejected.values())))
    if "verified" in curation:
        assert all(classify(t) == "true" for t in out.dataset["text"])


def test_resampling_is_bounded_by_the_budget_and_records_the_shortfall():
    cfg = config(cycle="full_synthetic", curation="verified", num_samples=10, dataset_size=10, resample_budget=2.0)
    d0 = real_dataset(cfg)
    calls = []

    def only_false(k, round_):
        calls.append((k, round_))
        return ["False"] * k, None

    out = build_next_dataset(cfg, 1, d0, d0, ["True"] * 3 + ["False"] * 7, only_false)
    assert len(out.dataset) == 3
    assert out.curation["extra_samples"] == 20 and out.curation["shortfall"] == 7
    assert out.curation["samples_drawn"] == 30 and out.curation["samples_per_kept_row"] == 10.0
    assert all(v >= 0.0 for v in out.curation["seconds"].values())
    assert out.curation["rejected"]["false"] == 27
    assert sum(k for k, _ in calls) == 20 and [r for _, r in calls] == list(range(1, len(calls) + 1))


def test_quota_keeps_the_depth_distribution_as_far_as_samples_allow():
    d0 = ["True", "not False", "not not True", "not not not False"]  # depths 1, 2, 3, 4: a quarter each
    shares = {1: 0.25, 2: 0.25, 3: 0.25, 4: 0.25}
    curator = Curator(["quota"], needed=4, depth_shares=shares)
    curator.offer(["True", "(True)", "True", "not False", "True and True", "not not True", "not not not False"])
    assert [row.text for row in curator.finish()] == ["True", "not False", "not not True", "not not not False"]
    assert curator.record(0)["rejected"]["quota"] == 3 and len(d0) == 4
    # too few deep samples: the set-aside ones fill the rest, in order
    curator = Curator(["quota"], needed=4, depth_shares=shares)
    curator.offer(["True", "False", "(True)", "True or False", "bad"])
    assert [row.text for row in curator.finish()] == ["True", "True or False", "False", "(True)"]
    assert curator.record(0) == {"steps": ["quota"], "input": 5, "kept": 4,
                                 "rejected": {"syntax_error": 0, "false": 0, "duplicate": 0, "quota": 1,
                                              "uncorrectable": 0, "not_selected": 0},
                                 "extra_samples": 0, "shortfall": 0, "verifier_calls": 0,
                                 "wrong_verdicts": {"accepted": 0, "rejected": 0},
                                 "corrections": {"made": 0, "edits": {"0": 0, "1": 0, "2": 0}}}


def test_an_exact_verifier_is_called_once_per_sample_and_never_wrong():
    curator = Curator(["syntactic", "verified"], needed=None)
    curator.offer(MIXED)
    record = curator.record(0)
    assert record["verifier_calls"] == 10  # the two syntax errors stop at the parser, before the verifier
    assert record["wrong_verdicts"] == {"accepted": 0, "rejected": 0}
    assert curator.kept == [t for t in MIXED if classify(t) == "true"]


def test_an_imperfect_verifier_flips_each_verdict_with_probability_epsilon():
    truth = [classify(t) == "true" for t in MIXED]
    rng = random.Random(11)
    flips = [rng.random() < 0.4 for _ in MIXED]  # one draw per verifier call, in offering order
    curator = Curator(["verified"], needed=None, verifier_error=0.4, verifier_seed=11)
    curator.offer(MIXED)
    assert curator.kept == [t for t, ok, flip in zip(MIXED, truth, flips, strict=True) if ok != flip]
    record = curator.record(0)
    assert record["verifier_calls"] == len(MIXED)
    assert record["wrong_verdicts"] == {"accepted": sum(f and not ok for ok, f in zip(truth, flips, strict=True)),
                                        "rejected": sum(f and ok for ok, f in zip(truth, flips, strict=True))}
    assert sum(record["wrong_verdicts"].values()) == sum(flips) > 0
    # what was wrongly rejected is counted by what the verifier said: True samples under "false"
    wrongly_rejected_true = record["wrong_verdicts"]["rejected"]
    right_false = sum(not f and classify(t) == "false" for t, f in zip(MIXED, flips, strict=True))
    assert record["rejected"]["false"] == right_false + wrongly_rejected_true


def test_a_blind_verifier_is_wrong_about_half_the_time():
    samples = ["True", "False", "True and"] * 1000
    curator = Curator(["verified"], needed=None, verifier_error=0.5, verifier_seed=3)
    curator.offer(samples)
    wrong = sum(curator.record(0)["wrong_verdicts"].values())
    assert 1350 <= wrong <= 1650  # Binomial(3000, 0.5): mean 1500, sd 27; these bounds are 5.5 sd
    kept = Counter(curator.kept)
    assert set(kept) == set(samples[:3]) and all(420 <= count <= 580 for count in kept.values())  # each ~500


def test_the_verifier_noise_of_a_generation_is_reproducible_and_recorded():
    cfg = config(cycle="full_synthetic", curation="verified", num_samples=12, dataset_size=10, verifier_error=0.3)
    d0 = real_dataset(cfg)

    def more(k, round_):
        return make_real_dataset(k, seed=100 + round_, exclude=set(MIXED)), None

    first, again = (build_next_dataset(cfg, 1, d0, d0, MIXED, more) for _ in range(2))
    first.curation.pop("seconds"), again.curation.pop("seconds")
    assert first.dataset["text"] == again.dataset["text"] and first.curation == again.curation
    other = build_next_dataset(cfg, 2, d0, d0, MIXED, more)  # another generation: another stream
    assert other.curation["wrong_verdicts"] != first.curation["wrong_verdicts"] or \
        other.dataset["text"] != first.dataset["text"]
    assert first.curation["verifier_calls"] == first.curation["input"]
    assert len(first.dataset) == 10


def test_dedup_also_drops_samples_already_in_the_joined_rows():
    cfg = config(cycle="expanding", curation="dedup", dataset_size=4, num_samples=4)
    d0 = rows(["True", "not False", "True or False", "False or True"], "real", -1)
    out = build_next_dataset(cfg, 1, d0, d0, ["True", "(True)", "(True)", "not True", "False", "True and True"],
                             never_called)
    assert out.dataset["text"][4:] == ["(True)", "not True", "False", "True and True"]
    assert out.curation["rejected"]["duplicate"] == 2


def test_correct_replaces_each_sample_that_is_not_true_and_keeps_its_provenance():
    cfg = config(cycle="full_synthetic", curation="correct", num_samples=6, dataset_size=6, max_depth=5)
    d0 = real_dataset(cfg)
    samples = ["True", "not (True", "not not not not not True", "Tr ue x", "True and and True", "False",
               "(True)"]
    out = build_next_dataset(cfg, 1, d0, d0, samples, never_called)
    ds = out.dataset
    assert ds.column_names == ["text", "origin", "generation", "model_revision", "corrected_from", "edits"]
    assert ds["corrected_from"] == ["True", "not (True", "not not not not not True", "True and and True", "False",
                                    "(True)"]  # "Tr ue x" needs 3 edits: dropped
    assert ds["text"][:3] == ["True", "not not True", "not not not not True"]
    assert ds["text"][3] in {"True and True", "True and True and True"}  # a tie: "and" deleted or "True" inserted
    assert ds["text"][4] in {"True", "not False"} and ds["edits"] == [0, 1, 1, 1, 1, 0]
    assert all(classify(t) == "true" for t in ds["text"])
    record = out.curation
    assert record["rejected"]["uncorrectable"] == 1 and record["kept"] == 6 and record["input"] == 7
    assert record["corrections"] == {"made": 4, "edits": {"0": 0, "1": 4, "2": 0}}
    assert record["verifier_calls"] == 7
    again = build_next_dataset(cfg, 1, d0, d0, samples, never_called)
    assert again.dataset["text"] == ds["text"]  # ties broken by the seed: the same every time


def test_correct_gives_every_row_provenance_whatever_the_cycle():
    cfg = config(cycle="incremental", synthetic_fraction=0.5, curation="correct+dedup", num_samples=10)
    d0 = real_dataset(cfg)
    out = build_next_dataset(cfg, 1, d0, d0, ["False"] * 3 + samples_of(N), never_called)
    ds = out.dataset
    real = [i for i, o in enumerate(ds["origin"]) if o == "real"]
    assert len(real) == N // 2 and all(ds["corrected_from"][i] == ds["text"][i] and ds["edits"][i] == 0
                                       for i in real)
    # the three "False" become "True" or "not False" (ties, seeded per sample): at least one is a duplicate
    assert out.curation["rejected"]["duplicate"] >= 1 and len(set(ds["text"])) == len(ds)


def test_an_imperfect_verifier_decides_what_goes_to_correction():
    curator = Curator(["correct"], needed=None, verifier_error=0.5, verifier_seed=1)
    curator.offer(["False"] * 200)
    wrong = curator.record(0)["wrong_verdicts"]["accepted"]
    assert 60 <= wrong <= 140 and curator.kept.count("False") == wrong  # wrongly judged True: kept uncorrected
    assert curator.record(0)["corrections"]["made"] == 200 - wrong


@pytest.mark.parametrize("method", SELECTIONS)
def test_selection_curates_a_pool_k_times_the_rows_needed_and_keeps_the_needed(method):
    cfg = config(cycle="balanced", curation="verified", select=method, selection_pool=3, num_samples=10,
                 dataset_size=10, resample_budget=1.0)
    d0 = real_dataset(cfg)
    calls = []

    def more(k, round_):
        calls.append(k)
        texts = make_real_dataset(k, seed=200 + round_, exclude=set(MIXED))
        return texts, [-len(t) / 10 for t in texts]

    scores = [-len(t) / 10 for t in MIXED]
    out = build_next_dataset(cfg, 1, d0, d0, MIXED, more, scores=scores)
    record = out.curation
    synthetic = [t for t, o in zip(out.dataset["text"], out.dataset["origin"], strict=True) if o == "synthetic"]
    assert len(out.dataset) == 10 and len(synthetic) == 5  # balanced: 5 rows of D0, 5 samples
    assert record["selection"] == {"select": method, "selection_pool": 3, "pool_size": 15}
    assert record["kept"] == 5 and record["shortfall"] == 0 and record["rejected"]["not_selected"] == 10
    assert record["input"] == record["kept"] + sum(record["rejected"].values())
    assert record["samples_drawn"] == 12 + sum(calls) and record["samples_per_kept_row"] == record["samples_drawn"] / 5
    assert set(record["seconds"]) == {"resampling", "curating", "selecting"}
    assert all(classify(t) == "true" for t in synthetic)
    again = build_next_dataset(cfg, 1, d0, d0, MIXED, more, scores=scores)
    assert again.dataset["text"] == out.dataset["text"]  # the same generation selects the same rows
    if method == "likelihood":  # the five shortest of the pool: the score is minus the length
        pool = [t for t in MIXED if classify(t) == "true"] + make_real_dataset(calls[0], seed=201, exclude=set(MIXED))
        assert sorted(map(len, synthetic)) == sorted(map(len, pool[:15]))[:5]


def test_a_pool_is_drawn_through_the_resampling_budget_scaled_by_k():
    cfg = config(cycle="full_synthetic", select="random", selection_pool=2, num_samples=10, dataset_size=10,
                 resample_budget=0.0)
    d0 = real_dataset(cfg)
    out = build_next_dataset(cfg, 1, d0, d0, samples_of(10), lambda k, r: (samples_of(k, seed=7), None))
    assert out.curation["extra_samples"] == 10 and out.curation["selection"]["pool_size"] == 20
    assert len(out.dataset) == 10 and out.curation["steps"] == []
    other = build_next_dataset(cfg, 2, d0, d0, samples_of(10), lambda k, r: (samples_of(k, seed=7), None))
    assert other.dataset["text"] != out.dataset["text"]  # each generation draws its own random subset
    # a pool the budget cannot fill: selection keeps what there is, and the shortfall is recorded
    cfg = config(cycle="full_synthetic", curation="verified", select="random", selection_pool=2, num_samples=10,
                 dataset_size=10, resample_budget=0.0)
    out = build_next_dataset(cfg, 1, d0, d0, ["True"] * 3 + ["False"] * 7, lambda k, r: (["False"] * k, None))
    assert len(out.dataset) == 3 and out.curation["shortfall"] == 7 and out.curation["extra_samples"] == 10


def test_novelty_selection_avoids_the_rows_it_joins():
    cfg = config(cycle="expanding", select="novelty", selection_pool=2, num_samples=2, dataset_size=2)
    d0 = rows(["True", "not True"], "real", -1)
    out = build_next_dataset(cfg, 1, d0, d0, ["True", "not True", "False", "True or not False"], never_called)
    assert out.dataset["text"][2:] == ["False", "True or not False"]


def test_stratified_novelty_selection_keeps_d0s_strata_among_verified_samples():
    d0 = rows(["True", "not False", "True or False"], "real", -1)  # 1, 2 and 3 tokens: one row per length tertile
    long = "not (True and False) or not (False or True)"
    samples = ["False", "True", long, "not False", "not True", "True and not (False or (True and not True))",
               "True or False", "not (not (True or False) and False) or True", "True and"]

    def kept(method):
        cfg = config(cycle="full_synthetic", curation="verified", selection_pool=2, select=method, num_samples=3,
                     dataset_size=3)
        return build_next_dataset(cfg, 1, d0, d0, samples, never_called)

    assert kept("novelty").dataset["text"] == ["True", long, "not False"]  # the farthest points take a long one
    out = kept("novelty_stratified")
    assert out.dataset["text"] == ["True", "not False", "True or False"]  # one per stratum of D0
    record = out.curation
    assert record["selection"] == {"select": "novelty_stratified", "selection_pool": 2, "pool_size": 6}
    assert (record["input"], record["kept"], record["shortfall"]) == (8, 3, 0)  # 6 True of the first 8 fill the pool
    assert record["rejected"] == {"syntax_error": 0, "false": 2, "duplicate": 0, "quota": 0, "uncorrectable": 0,
                                  "not_selected": 3}
    assert kept("novelty_stratified").dataset["text"] == out.dataset["text"]


def test_an_unknown_selection_is_refused():
    with pytest.raises(ValueError, match=r"select must be one of \('novelty', 'novelty_stratified', 'likelihood'"):
        select("best", [], 1, joined=[], real=[], seed=0)


def test_likelihood_selection_refuses_samples_without_scores():
    cfg = config(cycle="full_synthetic", select="likelihood", selection_pool=2, num_samples=10, dataset_size=10)
    d0 = real_dataset(cfg)
    with pytest.raises(ValueError, match="log-probability"):
        build_next_dataset(cfg, 1, d0, d0, samples_of(20), never_called)
