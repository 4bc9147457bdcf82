"""Text tokenizers: a WordPiece vocabulary learned from the training reports, or a local one.

A model built from config has no vocabulary of its own, so the demo learns one from the reports
it will see (plus the label names and prompt templates, so prompts never fall back to [UNK]).
A pretrained text tower brings its tokenizer in its checkpoint directory.

The vocabulary is every ASCII letter and digit and every other character enough patients use
(word-initial and `##` continuation), the words the prompts need, and the most frequent whole
words, ties broken alphabetically. Only words and characters that occur in the reports of at
least `min_patients` distinct patients are admitted: a name, an MRN or a street that slipped past
de-identification is rare by nature, and then exists in the model only as single characters. The `tokenizers` WordPiece trainer breaks ties in hash
order, which gave different vocabularies in two processes on the same texts; a run must be
reproducible, so the vocabulary is counted here and handed to a `tokenizers` WordPiece model.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from umcl.errors import MissingInputError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(
    texts: Sequence[str],
    vocab_size: int,
    patients: Sequence[str] | None = None,
    min_patients: int = 1,
    required: Iterable[str] = (),
) -> PreTrainedTokenizerFast:
    """A lower-casing BERT-style WordPiece tokenizer whose vocabulary is learned from `texts`.

    `patients[i]` is who `texts[i]` belongs to (default: each text its own patient); a word or
    character enters only if at least `min_patients` of them use it. The words of `required`
    (label names, prompt templates: written by us, not by patients) always enter."""
    normalizer, splitter = (
        normalizers.BertNormalizer(lowercase=True),
        pre_tokenizers.BertPreTokenizer(),
    )

    def words_of(text: str) -> list[str]:
        return [w for w, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))]

    owners = patients if patients is not None else range(len(texts))
    if len(owners) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(owners)} patients")
    counts: dict[str, int] = defaultdict(int)
    users: dict[str, set] = defaultdict(set)
    for text, owner in zip(texts, owners, strict=True):
        for word in words_of(text):
            counts[word] += 1
            users[word].add(owner)
    common = {w for w, who in users.items() if len(who) >= min_patients}
    needed = sorted({w for text in required for w in words_of(text)})
    char_users: dict[str, set] = defaultdict(set)
    for word, who in users.items():
        for c in word:
            char_users[c] |= who
    # Every ASCII letter and digit too, so an unseen word splits into pieces instead of [UNK].
    alphabet = sorted(
        {c for c, who in char_users.items() if len(who) >= min_patients}
        | {c for word in needed for c in word}
        | set(string.ascii_lowercase + string.digits)
    )
    pieces = [*SPECIAL_TOKENS, *alphabet, *(f"##{c}" for c in alphabet)]
    pieces += [w for w in needed if len(w) > 1 and w not in pieces]
    words = [
        w
        for w in sorted(common, key=lambda word: (-counts[word], word))
        if len(w) > 1 and w not in pieces
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
        raise MissingInputError(f"{path}: no tokenizer directory")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Token ids and attention mask of `texts`, padded to the longest and cut at `max_length`:
    the one tokenisation of training batches (`umcl/data/dataset.py: Collate`) and encoding."""
    if not texts:
        empty = torch.zeros(0, 0, dtype=torch.long)
        return {"input_ids": empty, "attention_mask": empty.clone()}
    tokens = tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
