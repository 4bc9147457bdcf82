"""Text tokenizers: a WordPiece vocabulary learned from the training reports, or a local one.

A model built from config has no vocabulary of its own, so the demo learns one from the reports
it will see (plus the label names and prompt templates, so prompts never fall back to [UNK]).
A pretrained text tower brings its tokenizer in its checkpoint directory.

The vocabulary is every character (word-initial and `##` continuation) plus the most frequent
whole words, ties broken alphabetically. The `tokenizers` WordPiece trainer breaks ties in hash
order, which gave different vocabularies in two processes on the same texts; a run must be
reproducible, so the vocabulary is counted here and handed to a `tokenizers` WordPiece model.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A lower-casing BERT-style WordPiece tokenizer whose vocabulary is learned from `texts`."""
    normalizer, splitter = (
        normalizers.BertNormalizer(lowercase=True),
        pre_tokenizers.BertPreTokenizer(),
    )
    counts = Counter(
        word
        for text in texts
        for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))
    )
    # Every ASCII letter and digit too, so an unseen word splits into pieces instead of [UNK].
    alphabet = sorted(
        {c for word in counts for c in word} | set(string.ascii_lowercase + string.digits)
    )
    pieces = [*SPECIAL_TOKENS, *alphabet, *(f"##{c}" for c in alphabet)]
    words = [
        w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if len(w) > 1
    ]
    pieces += words[: max(0, vocab_size - len(pieces))]
    tokenizer = Tokenizer(
        models.WordPiece({piece: i for i, piece in enumerate(pieces)}, unk_token="[UNK]")
    )
    tokenizer.normalizer, tokenizer.pre_tokenizer, tokenizer.decoder = (
        normalizer,
        splitter,
        decoders.WordPiece(),
    )
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """A tokenizer saved in a local directory; never a hub look-up."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{path}: no tokenizer directory")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)
