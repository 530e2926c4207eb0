"""Character tokenizer and GPT-2 factory: fixed vocabulary, lossless round trip, stock reloads."""

import torch
from helpers import TINY, num_parameters
from transformers import AutoModelForCausalLM, AutoTokenizer

from scl_hf.config import ModelConfig
from scl_hf.expressions import ALPHABET, make_real_dataset
from scl_hf.model import load_model, make_model
from scl_hf.tokenizer import build_tokenizer


def test_vocabulary_comes_from_the_alphabet():
    tok = build_tokenizer()
    assert len(tok) == 19
    assert tok.convert_ids_to_tokens(list(range(4))) == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert tok.convert_ids_to_tokens(list(range(4, 19))) == list(ALPHABET)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)


def test_round_trip_and_unknown_characters():
    tok = build_tokenizer()
    for text in make_real_dataset(200, seed=3) + ["not  (True)", "", "((("]:
        ids = tok(text)["input_ids"]
        assert len(ids) == len(text)
        assert tok.decode(ids) == text
    assert tok("é\nX")["input_ids"] == [3, 3, 3]
    assert tok("<bos>True<eos>")["input_ids"] == [1, 8, 15, 18, 11, 2]


def test_tokenizer_reloads_with_auto_tokenizer(tmp_path):
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "not (True and False) or False"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.decode(tok(text)["input_ids"]) == text
    assert (again.bos_token, again.eos_token, again.pad_token) == ("<bos>", "<eos>", "<pad>")


def test_the_default_shape_is_the_papers_with_about_ten_point_seven_million_parameters():
    model = make_model(ModelConfig(), build_tokenizer())
    assert num_parameters(model) == 10_753_152  # 6 x 1,774,464 blocks + 19x384 tokens + 256x384 positions + ln_f
    assert model.config.n_layer == 6 and model.config.n_embd == 384 and model.config.attn_pdrop == 0.2


def test_saved_model_reloads_with_auto_model(tmp_path):
    tok = build_tokenizer(TINY.n_positions)
    torch.manual_seed(0)
    model = make_model(TINY, tok).eval()
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([tok("<bos>True and")["input_ids"]])
    assert torch.equal(model(ids).logits, again(ids).logits)
    assert again.config.bos_token_id == tok.bos_token_id and again.config.eos_token_id == tok.eos_token_id


def test_load_model_leaves_hub_kernels_off_and_loads_offline(tmp_path, monkeypatch):
    """transformers >= 5.2x kernelizes from_pretrained models by default where `kernels` is installed (as pip
    installs it here): the run's own checkpoints load with kernels off, with no network (HF_HUB_OFFLINE)."""
    tok = build_tokenizer(TINY.n_positions)
    torch.manual_seed(0)
    model = make_model(TINY, tok).eval()
    model.save_pretrained(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    again = load_model(tmp_path)
    assert not again.training and again.lm_head.weight.device.type == "cpu"
    assert getattr(again, "use_kernels", False) is False  # the property exists from transformers 5.2x on
    ids = torch.tensor([tok("<bos>True and")["input_ids"]])
    assert torch.equal(model(ids).logits, again(ids).logits)
