"""Continuous prompts: label sets → token-embedding sequences for the text tower (CoOp-style).

A prompt is `[CLS] <present context> <phrases of positive findings> <absent context>
<phrases of negative findings> [SEP]`, where a context is `n_ctx` learned vectors. With
`class_specific`, each finding gets its own context, placed before its phrase. The
single-finding prompts `[CLS] ctx phrase [SEP]` that zero-shot classification uses are the
one-label case of the same layout, so training shapes exactly what evaluation asks.

In `handcrafted` mode the contexts are the token embeddings of fixed template words ("there
is" / "there is no"): no parameters, the ablation baseline. Any model can also be asked for
template prompts, to compare learned against handcrafted prompts on one set of weights.

Sequences are assembled by indexing one "bank" of vectors (token embeddings of the words in
use, then the context vectors), so a batch of prompts costs one gather.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from umcl.config import PromptSettings
from umcl.errors import InputError

PRESENT, ABSENT = 0, 1


def unpromptable(
    names: list[str], label_names: list[str], settings: PromptSettings, handcrafted: bool = False
) -> list[str]:
    """The names a model cannot prompt: with class-specific learned contexts, those outside its
    label space (a shared context or the templates can prompt any name)."""
    if handcrafted or settings.mode == "handcrafted" or not settings.class_specific:
        return []
    return [n for n in names if n not in label_names]


def _first_id(*ids: int | None) -> int | None:
    return next((i for i in ids if i is not None), None)


def label_phrase(name: str) -> str:
    """The words that name a finding in a prompt."""
    return name.lower()


class PromptLearner(nn.Module):
    def __init__(
        self,
        settings: PromptSettings,
        label_names: list[str],
        tokenizer: PreTrainedTokenizerBase,
        token_embedding: nn.Embedding,
    ):
        super().__init__()
        self.settings, self.label_names, self.tokenizer = settings, list(label_names), tokenizer
        self.learned = settings.mode == "learned"
        # A BERT-style tokenizer's [CLS] and [SEP]; a CLIP-style one's start and end of text.
        self.special = {
            "cls": _first_id(tokenizer.cls_token_id, tokenizer.bos_token_id),
            "sep": _first_id(tokenizer.sep_token_id, tokenizer.eos_token_id),
            "pad": _first_id(tokenizer.pad_token_id, tokenizer.eos_token_id),
        }
        missing = [name for name, token in self.special.items() if token is None]
        if missing:
            raise InputError(
                f"the tokenizer has no {', '.join(missing)} token (nor a start/end-of-text one) "
                "to frame the prompts with"
            )
        self.phrases = [self._ids(label_phrase(n)) for n in self.label_names]
        self.templates = (
            self._ids(settings.templates.present),
            self._ids(settings.templates.absent),
        )
        if self.learned:
            shape = (
                len(self.label_names) if settings.class_specific else 1,
                settings.n_ctx,
                token_embedding.embedding_dim,
            )
            self.context = nn.Parameter(
                self._initial_context(shape, token_embedding)
            )  # (2, C, M, d)

    def _ids(self, words: str) -> list[int]:
        return self.tokenizer(words, add_special_tokens=False)["input_ids"]

    def _initial_context(
        self, shape: tuple[int, int, int], token_embedding: nn.Embedding
    ) -> torch.Tensor:
        context = torch.randn(2, *shape) * 0.02
        if self.settings.init != "random":
            for polarity, words in enumerate(
                (self.settings.init.present, self.settings.init.absent)
            ):
                ids = self._ids(words)
                if len(ids) > shape[1]:
                    raise InputError(
                        f"prompt.init {words!r} is {len(ids)} tokens; n_ctx is {shape[1]}"
                    )
                with torch.no_grad():
                    context[polarity, :, : len(ids)] = token_embedding.weight[ids]
        return context

    # -- the sequences -----------------------------------------------------------------------

    def label_set_prompts(
        self, labels: torch.Tensor, token_embedding: nn.Embedding
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompts for label sets (n, K): 1 present, 0 absent, NaN unstated (each row states one).

        Identical label sets share one prompt; returns (embeds, mask) of the distinct sets and,
        per row, the index of its prompt.
        """
        codes = torch.nan_to_num(labels, nan=2.0).to(torch.int8)
        distinct, inverse = torch.unique(codes, dim=0, return_inverse=True)
        pieces = []
        for row in distinct.tolist():
            stated = [(k, PRESENT) for k, v in enumerate(row) if v == 1] + [
                (k, ABSENT) for k, v in enumerate(row) if v == 0
            ]
            if not stated:
                raise ValueError("a label prompt needs at least one stated finding")
            pieces.append(stated)
        embeds, mask = self._assemble(
            pieces, self.phrases, token_embedding, handcrafted=not self.learned
        )
        return embeds, mask, inverse

    def finding_prompts(
        self,
        token_embedding: nn.Embedding,
        names: list[str] | None = None,
        handcrafted: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One present and one absent prompt per finding: (embeds, mask) of 2·F sequences,
        the present prompts first. `names` default to the label space; names outside it are
        prompted with the shared context (or the templates)."""
        handcrafted = (not self.learned) if handcrafted is None else handcrafted
        if not handcrafted and not self.learned:
            raise InputError("a handcrafted-prompt model has no learned context to prompt with")
        names = self.label_names if names is None else names
        unknown = unpromptable(names, self.label_names, self.settings, handcrafted)
        if unknown:
            raise InputError(
                f"class-specific contexts cannot prompt findings outside the label space: {unknown}"
            )
        phrases = [
            self.phrases[self.label_names.index(n)]
            if n in self.label_names
            else self._ids(label_phrase(n))
            for n in names
        ]
        slots = [self.label_names.index(n) if n in self.label_names else 0 for n in names]
        # Findings are addressed by position in `phrases`; `slots` picks class-specific contexts.
        pieces = [[(i, polarity)] for polarity in (PRESENT, ABSENT) for i in range(len(names))]
        return self._assemble(pieces, phrases, token_embedding, handcrafted, slots)

    def _assemble(
        self,
        pieces: list[list[tuple[int, int]]],
        phrases: list[list[int]],
        token_embedding: nn.Embedding,
        handcrafted: bool,
        slots: list[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequences of bank rows for each prompt, gathered from one bank tensor."""
        words = sorted(
            {
                *self.special.values(),
                *(t for p in phrases for t in p),
                *self.templates[0],
                *self.templates[1],
            }
        )
        row_of = {token: i for i, token in enumerate(words)}
        bank = [token_embedding(torch.tensor(words, device=token_embedding.weight.device))]
        if not handcrafted:
            bank.append(self.context.reshape(-1, self.context.shape[-1]).to(bank[0].dtype))
        bank = torch.cat(bank)
        n_ctx = self.settings.n_ctx
        contexts_per_polarity = self.context.shape[1] if self.learned else 0

        def context(slot: int, polarity: int) -> list[int]:
            if handcrafted:
                return [row_of[t] for t in self.templates[polarity]]
            c = slot if self.settings.class_specific else 0
            start = len(words) + (polarity * contexts_per_polarity + c) * n_ctx
            return list(range(start, start + n_ctx))

        per_finding = self.settings.class_specific and not handcrafted
        sequences = []
        for stated in pieces:
            seq, previous = [row_of[self.special["cls"]]], None
            for i, polarity in stated:
                slot = i if slots is None else slots[i]
                # A shared context is written once per polarity; class-specific ones per finding.
                if per_finding or previous != polarity:
                    seq += context(slot, polarity)
                seq += [row_of[t] for t in phrases[i]]
                previous = polarity
            sequences.append([*seq, row_of[self.special["sep"]]])
        length = max(len(s) for s in sequences)
        index = torch.full((len(sequences), length), row_of[self.special["pad"]], dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for r, seq in enumerate(sequences):
            index[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        return bank[index.to(bank.device)], mask.to(bank.device)
