"""Character tokenizer whose vocabulary is fixed by the grammar's alphabet, never by data.

Ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, then the alphabet's characters in sorted
order. Built with ``tokenizers`` (one token per character, a ``Fuse`` decoder so that
``decode(encode(s)) == s``) and wrapped as a ``PreTrainedTokenizerFast``, so ``save_pretrained``
output reloads with stock ``AutoTokenizer`` and no custom code. The tokenizer adds no special tokens
by itself: training sequences are ``<bos>expr<eos>``, built where they are packed.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from scl_hf.expressions import ALPHABET

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def build_tokenizer(model_max_length: int = 256) -> PreTrainedTokenizerFast:
    """The character tokenizer for ``ALPHABET`` (19 tokens)."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + tuple(ALPHABET))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every char alone
    backend.decoder = decoders.Fuse()  # join tokens without inserting spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        model_max_length=model_max_length,
    )
