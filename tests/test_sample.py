"""Sampling: same distribution as ``model.generate``, deterministic, exact counts, truncation flags.

Sharding across two processes is checked in tests/test_train.py (one ``accelerate launch`` serves both).
"""

import math
from collections import Counter

import datasets
import pytest
import torch
from helpers import TINY
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from scl_hf.config import SamplingConfig, TrainingConfig
from scl_hf.expressions import make_real_dataset
from scl_hf.model import make_model
from scl_hf.sample import process_seed, sample_expressions, sample_token_ids, shard_size, warp_logits
from scl_hf.tokenizer import build_tokenizer
from scl_hf.train import make_accelerator, train_model

CAP = 48  # length cap of the distribution test: long enough that most samples end with <eos>


@pytest.fixture(scope="module")
def trained():
    """The tiny model after 60 steps: peaked, position-dependent next-token distributions."""
    tokenizer = build_tokenizer(TINY.n_positions)
    torch.manual_seed(0)
    model = make_model(TINY, tokenizer)
    cfg = TrainingConfig(max_steps=60, warmup_steps=10, eval_steps=60, logging_steps=60,
                         per_device_train_batch_size=16)
    dataset = datasets.Dataset.from_dict({"text": make_real_dataset(1000, seed=0)})
    train_model(model, tokenizer, dataset, cfg, make_accelerator(cfg), seed=1)
    return model, tokenizer


def generate_texts(model, tokenizer, n, temperature, seed, device="cpu"):
    """``n`` samples from ``model.generate`` from <bos>, cut at the first <eos>."""
    torch.manual_seed(seed)
    texts = []
    for first in range(0, n, 1000):
        rows = min(1000, n - first)
        out = model.generate(torch.full((rows, 1), tokenizer.bos_token_id, device=device),
                             attention_mask=torch.ones(rows, 1, dtype=torch.long, device=device), do_sample=True,
                             temperature=temperature, top_k=0, max_new_tokens=CAP,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for ids in out[:, 1:].tolist():
            texts.append(tokenizer.decode(ids[: ids.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in ids
                                          else ids))
    return texts


def chi_square(a: Counter, b: Counter) -> tuple[float, int]:
    """Two-sample chi-square statistic for equal sample sizes, pooling categories seen fewer than 20 times."""
    keys = [k for k in set(a) | set(b) if a[k] + b[k] >= 20]
    rest_a = sum(a.values()) - sum(a[k] for k in keys)
    rest_b = sum(b.values()) - sum(b[k] for k in keys)
    cells = [(a[k], b[k]) for k in keys] + ([(rest_a, rest_b)] if rest_a + rest_b else [])
    return sum((x - y) ** 2 / (x + y) for x, y in cells), len(cells) - 1


def critical(df: int, z: float = 3.72) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile; z = 3.72 is the one-sided 1e-4 level."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def statistics(texts: list[str]) -> dict[str, Counter]:
    """Length (5-character bins, 'cap' for truncated) and the character at each of the first 8 positions."""
    stats = {"length": Counter(len(t) // 5 for t in texts)}
    for pos in range(8):
        stats[f"char{pos}"] = Counter(t[pos] if len(t) > pos else "<end>" for t in texts)
    return stats


def worst_ratio(a: list[str], b: list[str]) -> float:
    """Largest chi-square / critical-value ratio over the statistics: below 1 means no detectable difference."""
    sa, sb = statistics(a), statistics(b)
    return max(stat / critical(df) for stat, df in (chi_square(sa[k], sb[k]) for k in sa))


@pytest.mark.slow
def test_samples_are_distributed_like_model_generate(trained):
    model, tokenizer = trained
    n = 4000
    cfg = SamplingConfig(num_samples=n, temperature=0.8, max_new_tokens=CAP, per_device_sample_batch_size=1000)
    ours = sample_expressions(model, tokenizer, cfg, seed=0).texts
    reference = generate_texts(model, tokenizer, n, temperature=0.8, seed=0)
    assert worst_ratio(ours, reference) < 1.0
    # the statistic has the power to see a wrong temperature
    assert worst_ratio(generate_texts(model, tokenizer, n, temperature=1.0, seed=1), reference) > 1.0


@pytest.mark.slow
def test_continuous_batching_samples_like_model_generate(trained):
    """The refilling path (a GPU's) on the CPU: rows at different positions, each masked to its own prefix."""
    model, tokenizer = trained
    n = 4000
    cfg = SamplingConfig(temperature=0.8)
    tokens, lengths, _ = sample_token_ids(model, n, tokenizer.bos_token_id, tokenizer.eos_token_id, CAP, cfg,
                                          torch.Generator().manual_seed(0), batch_size=500, refill=True)
    eos = tokenizer.eos_token_id
    ours = [tokenizer.decode(ids[: length - (ids[length - 1] == eos)])
            for ids, length in zip(tokens.tolist(), lengths.tolist(), strict=True)]
    assert worst_ratio(ours, generate_texts(model, tokenizer, n, temperature=0.8, seed=0)) < 1.0


def test_greedy_decoding_matches_model_generate_token_for_token(trained):
    model, tokenizer = trained
    cfg = SamplingConfig(top_k=1, max_new_tokens=CAP)
    tokens, lengths, _ = sample_token_ids(model, 3, tokenizer.bos_token_id, tokenizer.eos_token_id, CAP, cfg,
                                       torch.Generator().manual_seed(0))
    reference = model.generate(torch.tensor([[tokenizer.bos_token_id]]), do_sample=False, max_new_tokens=CAP,
                               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)[0, 1:]
    for row, length in zip(tokens, lengths, strict=True):
        assert row[:length].tolist() == reference.tolist()
    # refilled rows start later than their neighbours: every one still decodes exactly the greedy sequence
    steps = []
    tokens, lengths, _ = sample_token_ids(model, 10, tokenizer.bos_token_id, tokenizer.eos_token_id, CAP, cfg,
                                          torch.Generator().manual_seed(0), batch_size=3, refill=True,
                                          on_step=steps.append)
    for row, length in zip(tokens, lengths, strict=True):
        assert row[:length].tolist() == reference.tolist()
    assert steps[-1] == 10 and steps == sorted(steps) and len(steps) == 4 * len(reference)  # 4 rounds of 3, 3, 3, 1


def test_a_refilled_batch_stays_full_until_nothing_is_left_to_start(trained):
    model, tokenizer = trained
    cfg = SamplingConfig(max_new_tokens=30)
    steps = []
    _, lengths, _ = sample_token_ids(model, 200, tokenizer.bos_token_id, tokenizer.eos_token_id, 30, cfg,
                                     torch.Generator().manual_seed(3), batch_size=16, refill=True,
                                     on_step=steps.append)
    # 16 rows decode every step: the tokens generated by the time the last sequence starts fill the batch
    assert sum(lengths.tolist()) >= 16 * next(i for i, done in enumerate(steps) if done >= 200 - 16)
    assert len(steps) <= sum(lengths.tolist()) / 16 + 30  # then at most one more sequence's length


def test_cached_decoding_gives_the_full_forward_logits(trained):
    """Feed a sampled batch back through the plain forward: every drawn token had probability > 0 there."""
    model, tokenizer = trained
    cfg = SamplingConfig(top_k=3, max_new_tokens=30)
    tokens, lengths, _ = sample_token_ids(model, 64, tokenizer.bos_token_id, tokenizer.eos_token_id, 30, cfg,
                                          torch.Generator().manual_seed(1))
    assert lengths.min() < lengths.max()  # sequences finished at different steps: compaction happened
    inputs = torch.cat([torch.full((64, 1), tokenizer.bos_token_id), tokens], dim=1)
    with torch.no_grad():
        logits = model(inputs).logits[:, :-1]
    allowed = torch.topk(logits, 3, dim=-1).indices  # top-3 under the plain forward at every position
    for row in range(64):
        for t in range(int(lengths[row])):
            assert tokens[row, t] in allowed[row, t]


def test_sampling_is_deterministic_for_the_seed(trained):
    model, tokenizer = trained
    cfg = SamplingConfig(num_samples=50, max_new_tokens=CAP, per_device_sample_batch_size=16)
    a = sample_expressions(model, tokenizer, cfg, seed=4)
    b = sample_expressions(model, tokenizer, cfg, seed=4)
    assert (a.texts, a.truncated, a.total_tokens, a.logprobs) == (b.texts, b.truncated, b.total_tokens, b.logprobs)
    assert sample_expressions(model, tokenizer, cfg, seed=5).texts != a.texts
    assert len(sample_expressions(model, tokenizer, cfg, seed=4, num_samples=7).texts) == 7
    empty = sample_expressions(model, tokenizer, cfg, seed=4, num_samples=0)
    assert (empty.texts, empty.truncated, empty.total_tokens, empty.logprobs) == ([], [], 0, [])


def test_truncated_samples_hit_the_cap_and_the_others_ended_with_eos(trained):
    model, tokenizer = trained
    cfg = SamplingConfig(num_samples=200, max_new_tokens=6, per_device_sample_batch_size=64)
    result = sample_expressions(model, tokenizer, cfg, seed=0)
    assert 0 < sum(result.truncated) < 200
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in result.texts]
    for length, cut in zip(lengths, result.truncated, strict=True):
        assert length == 6 if cut else length < 6  # <eos> ends a sample and is not part of its text
    assert result.total_tokens == sum(length + (not cut) for length, cut in zip(lengths, result.truncated,
                                                                              strict=True))


def test_length_cap_and_model_type_are_checked(trained):
    model, tokenizer = trained
    with pytest.raises(ValueError, match="max_new_tokens must be at most n_positions - 1 = 127"):
        sample_expressions(model, tokenizer, SamplingConfig(max_new_tokens=128), seed=0)
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        sample_expressions(torch.nn.Linear(2, 2), tokenizer, SamplingConfig(), seed=0)


def test_warping_matches_the_transformers_logits_warpers():
    torch.manual_seed(0)
    logits = torch.randn(32, 19) * 3
    for temperature, top_k, top_p in [(0.8, 0, 1.0), (1.3, 5, 1.0), (0.7, 0, 0.9), (1.0, 4, 0.5)]:
        warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)]
                                      + ([TopKLogitsWarper(top_k)] if top_k else [])
                                      + ([TopPLogitsWarper(top_p)] if top_p < 1.0 else []))
        expected = warpers(torch.zeros(32, 1, dtype=torch.long), logits.clone())
        assert torch.equal(warp_logits(logits, temperature, top_k, top_p).isinf(), expected.isinf())
        finite = expected.isfinite()
        assert torch.allclose(warp_logits(logits, temperature, top_k, top_p)[finite], expected[finite])


def test_shards_add_up_and_seeds_differ_per_process():
    for total in (0, 1, 7, 10_000):
        for world in (1, 2, 3, 8):
            sizes = [shard_size(total, rank, world) for rank in range(world)]
            assert sum(sizes) == total and max(sizes) - min(sizes) <= 1
    seeds = {process_seed(seed, rank) for seed in range(50) for rank in range(8)}
    assert len(seeds) == 400 and all(0 <= s < 2 ** 63 for s in seeds)


def test_each_sample_comes_with_its_log_probability_at_temperature_one(trained):
    """The sampler's log-probabilities are those of the plain forward at T = 1, whatever T, top-k and top-p drew."""
    model, tokenizer = trained
    cfg = SamplingConfig(num_samples=40, temperature=0.7, top_k=5, top_p=0.9, max_new_tokens=20,
                         per_device_sample_batch_size=16)
    result = sample_expressions(model, tokenizer, cfg, seed=2)
    assert sum(result.token_counts) == result.total_tokens and 0 < sum(result.truncated) < 40  # some hit the cap
    for text, cut, count, logprob in zip(result.texts, result.truncated, result.token_counts, result.logprobs,
                                         strict=True):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + ([] if cut else [tokenizer.eos_token_id])
        assert len(ids) == count
        inputs = torch.tensor([[tokenizer.bos_token_id, *ids]])
        with torch.no_grad():
            logp = model(inputs).logits[0, :-1].log_softmax(-1)
        assert logprob == pytest.approx(float(logp[torch.arange(count), ids].sum()), abs=1e-4)
        assert logprob < 0
