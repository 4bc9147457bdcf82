"""The learned layer: a CRF token tagger trained on hand-annotated notes, case-robust by design.

The rules and the NER see case; a third of real notes are written in capitals and many in lower
case, where "quartermain", "GH" or "marcela carlson" have no shape. The tagger labels each token
from features that mostly do not depend on case: whether the word is in the public word lists
(`lists.py`: census surnames and given names, GeoNames places, drug names, frequent English
words), in the radiology lexicon (`lexicon.py`), what the rules and the NER said about it, and the
same about its neighbours. Only words of those vocabularies enter as themselves, so the model
holds no name of its training notes: a surname is known to it as "a census surname", never as
itself. Trained by `python -m umcl.ingest.deid.train_tagger` (the model card beside the weights says
on what), loaded once per process, run on CPU by python-crfsuite.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from umcl.errors import UMCLError
from umcl.ingest.deid.lexicon import (
    _DWELLING,
    _EPONYM_HEADS,
    _EPONYMS,
    _LATIN_EPITHET,
    _NAMED_SCALES,
    _bare,
    _clinical_phrases,
    _eponym_head_follows,
    _is_abbreviation,
    is_ordinary,
)
from umcl.ingest.deid.lists import is_common_english, ranks
from umcl.ingest.deid.spans import Span

MODEL_DIR = Path(__file__).parent / "tagger"
MODEL_FILE = MODEL_DIR / "model.crfsuite"
OUTSIDE = "O"
LABELS = ("NAME", "DATE", "LOCATION", "ID", "AGE")
# Words with their inner punctuation ("o'neill-brown", "8/25", "555-0123"), or one symbol.
TOKEN = re.compile(r"[^\W_]+(?:['’.\-/][^\W_]+)*|[^\w\s]")
_MONTH_DAY = re.compile(r"(\d{1,2})[/-](\d{1,2})")
_FULL_DATE = re.compile(r"\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}")
_WINDOW = (-2, -1, 1, 2)
# A genus by its capital initial before a lower-case species: "E. faecalis", "S. aureus".
_GENUS_INITIAL = re.compile(r"(?<![\w.])[A-Z]\.[ \t]?$")


class TaggerMissing(UMCLError, RuntimeError):
    """The tagger's weights are not where the package keeps them."""


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    text: str


def tokens_of(text: str) -> list[Token]:
    return [Token(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text)]


def _bucket(rank: int | None, edges: Sequence[int]) -> str | None:
    if rank is None:
        return None
    return next((str(edge) for edge in edges if rank <= edge), "rest")


def _shape(word: str) -> str:
    shape = re.sub(r"[A-Z]", "X", re.sub(r"[a-z]", "x", re.sub(r"\d", "d", word)))
    return re.sub(r"(.)\1{2,}", r"\1\1", shape)


def _case(word: str) -> str:
    if not any(c.isalpha() for c in word):
        return "none"
    if word.isupper():
        return "upper"
    if word.islower():
        return "lower"
    return "title" if word[:1].isupper() and word[1:].islower() else "mixed"


@lru_cache(maxsize=131072)
def _word_features(word: str) -> tuple[str, ...]:
    """What a word is, by itself: its vocabulary, lists, shape and case."""
    lower = word.lower()
    english = ranks("english").get(lower)
    drug = lower in ranks("drugs")
    ordinary = is_ordinary(lower)
    known = english is not None or drug or ordinary
    out = [f"shape={_shape(word)}", f"case={_case(word)}", f"len={min(len(word), 12)}"]
    out.append(f"w={lower}" if known or (word.isdigit() and len(word) <= 2) else "w=?")
    if any(c.isalpha() for c in word) and len(word) >= 4:
        out.append(f"suffix={lower[-3:]}")
    for name, value in (
        ("eng", _bucket(english, (500, 3000, 10000))),
        ("surname", _bucket(ranks("surnames").get(lower), (1000, 10000))),
        ("given", "yes" if lower in ranks("given_names") else None),
        ("place", "yes" if lower in ranks("places") else None),
        ("drug", "yes" if drug else None),
        ("ordinary", "yes" if ordinary else None),
        ("abbrev", "yes" if word.isupper() and _is_abbreviation(word) else None),
    ):
        if value is not None:
            out.append(f"{name}={value}")
    if month_day := _MONTH_DAY.fullmatch(word):
        month, day = int(month_day[1]), int(month_day[2])
        out.append(f"month_day={1 <= month <= 12 and 1 <= day <= 31}")
    if _FULL_DATE.fullmatch(word):
        out.append("full_date")
    if re.fullmatch(r"(?:19|20|21)\d\d", word):
        out.append("year")
    return tuple(out)


# What the neighbours contribute: their word, case and lists, not their shape details.
_CONTEXT_KEYS = ("w=", "case=", "surname=", "given=", "place=", "eng=")


def layer_labels(tokens: list[Token], layers: dict[str, list[Span]]) -> dict[str, list[str | None]]:
    """Per layer (rules by kind, the NER): the label it gave each token, if any."""
    return {name: _token_labels(tokens, spans) for name, spans in layers.items()}


def token_features(
    text: str, tokens: list[Token], labels: dict[str, list[str | None]]
) -> list[list[str]]:
    """One feature list per token; `labels`: what each earlier layer found (`layer_labels`)."""
    letters = [c for c in text if c.isalpha()]
    capitals = (
        "caps_note"
        if letters and sum(c.isupper() for c in letters) > 0.7 * len(letters)
        else "mixed_note"
    )
    own = [_word_features(t.text) for t in tokens]
    out: list[list[str]] = []
    for i, token in enumerate(tokens):
        features = ["bias", capitals, *own[i]]
        features += [f"{name}={found[i]}" for name, found in labels.items() if found[i]]
        line_start = text.rfind("\n", 0, token.start) + 1
        if not text[line_start : token.start].strip():
            features.append("line_start")
        if text[token.end : token.end + 1] == ":":
            features.append("before_colon")
        for offset in _WINDOW:
            j = i + offset
            if not 0 <= j < len(tokens):
                features.append(f"{offset}:edge")
                continue
            features += [f"{offset}:{f}" for f in own[j] if f.startswith(_CONTEXT_KEYS)]
            features += [
                f"{offset}:{name}={found[j]}" for name, found in labels.items() if found[j]
            ]
        if i > 0:
            features.append(f"bigram={_bigram_word(own[i - 1])}|{_bigram_word(own[i])}")
        out.append(features)
    return out


def _bigram_word(features: tuple[str, ...]) -> str:
    return next(f[2:] for f in features if f.startswith("w="))


def _token_labels(tokens: list[Token], spans: list[Span]) -> list[str | None]:
    """Per token: the label of a span it overlaps, if any (spans sorted and disjoint or not)."""
    out: list[str | None] = [None] * len(tokens)
    ordered = sorted(spans, key=lambda s: s.start)
    k = 0
    for i, token in enumerate(tokens):
        while k < len(ordered) and ordered[k].end <= token.start:
            k += 1
        j = k
        while j < len(ordered) and ordered[j].start < token.end:
            if ordered[j].end > token.start:
                out[i] = ordered[j].label
                break
            j += 1
    return out


_lock = threading.Lock()
_tagging_lock = threading.Lock()
_tagger: Any = None


def tagger() -> Any:
    """The trained CRF, opened once per process."""
    global _tagger
    with _lock:
        if _tagger is None:
            if not MODEL_FILE.is_file():
                raise TaggerMissing(
                    f"{MODEL_FILE} is missing: python -m umcl.ingest.deid.train_tagger builds it"
                )
            import pycrfsuite

            model = pycrfsuite.Tagger()
            model.open(str(MODEL_FILE))
            _tagger = model
        return _tagger


def use_model(path: Path | None) -> None:
    """Tag with the weights at `path` from now on in this process (None: the shipped ones).
    Cross-validation scores each fold with the model fitted without it."""
    global _tagger
    with _lock:
        _tagger = None
        if path is not None:
            import pycrfsuite

            _tagger = pycrfsuite.Tagger()
            _tagger.open(str(path))


# A token is removed when the tagger gives it at least this probability of being an identifier;
# a guess of the other layers (a name by a cue, a place, the NER's, a code or a date by shape)
# stands only where the tagger gives one of its tokens at least `CONFIRM`. The lowest point of
# `benchmarks/deid_physionet.py`'s OPERATING_POINTS that changes no more clinical sentences of the
# project's corpora than the point above it, with PhysioNet words removed under 1 % (figures:
# benchmarks/RESULTS.md); lower ones buy PhysioNet recall with report sentences changed.
THRESHOLD = 0.1
CONFIRM = 0.02


@dataclass(frozen=True)
class Tagging:
    """The tagger's reading of a text: per token, its label and the probability it is PHI."""

    tokens: list[Token]
    labels: list[str]
    phi: list[float]
    protected: list[
        bool
    ]  # a clinical word no other layer flagged: the tagger alone never removes it

    def spans(self) -> Iterator[Span]:
        """Runs of tokens at or over `THRESHOLD`, one span each, labelled by their majority."""
        run: list[int] = []
        for i in range(len(self.tokens) + 1):
            if i < len(self.tokens) and self.phi[i] >= THRESHOLD and not self.protected[i]:
                run.append(i)
                continue
            if run:
                kinds = [self.labels[k] for k in run if self.labels[k] != OUTSIDE] or ["NAME"]
                label = max(sorted(set(kinds)), key=kinds.count)  # ties the same in every process
                yield Span(self.tokens[run[0]].start, self.tokens[run[-1]].end, label)
                run = []

    def confirms(self, span: Span, besides: Sequence[Span] = ()) -> bool:
        """Does the tagger give any token of `span` at least `CONFIRM`? Tokens inside `besides`
        (another layer's finds within it) do not count: a person's name inside a run of capitals
        says nothing of whether the run names a place."""
        i = max(0, bisect.bisect_right(self.starts, span.start) - 1)  # tokens sorted, disjoint
        while i < len(self.tokens) and self.tokens[i].start < span.end:
            token = self.tokens[i]
            inside = any(b.start <= token.start and token.end <= b.end for b in besides)
            if token.end > span.start and self.phi[i] >= CONFIRM and not inside:
                return True
            i += 1
        return False

    @cached_property
    def starts(self) -> list[int]:
        return [t.start for t in self.tokens]


def tag(text: str, layers: dict[str, list[Span]]) -> Tagging:
    tokens = tokens_of(text)
    if not tokens:
        return Tagging([], [], [], [])
    found = layer_labels(tokens, layers)
    features = token_features(text, tokens, found)
    crf = tagger()
    with _tagging_lock:  # the tagger holds one sequence at a time: set, tag, marginals
        crf.set(features)
        labels = crf.tag()
        phi = [1 - crf.marginal(OUTSIDE, i) for i in range(len(tokens))]
    flagged = [any(per_layer[i] for per_layer in found.values()) for i in range(len(tokens))]
    phrases = _clinical_phrases(text)
    protected = [
        not flagged[i]
        and (
            is_ordinary(t.text)
            or _bare(t.text) in _EPONYMS
            or _bare(t.text) in _NAMED_SCALES
            or (t.text.islower() and _bare(t.text) in _EPONYM_HEADS)
            or _describes_a_home(text, t)
            or _eponym_head_follows(text, t.end)
            or any(a <= t.start and t.end <= b for a, b in phrases)
            or (
                (t.text.islower() or _LATIN_EPITHET.search(t.text.lower()))
                and _GENUS_INITIAL.search(text, max(0, t.start - 4), t.start)
            )
        )
        for i, t in enumerate(tokens)
    ]  # "Normal heart size", "Mediport catheter", "Hampton hump", "circle of Willis", "E. faecalis",
    # "Brock syndrome" (a head noun in lower case is never an identifier)
    return Tagging(tokens, labels, phi, protected)


def _describes_a_home(text: str, token: Token) -> bool:
    """A frequent English word in lower case before a kind of home describes it ("uptown
    apartment", "downtown condo"); `places.py`'s home towns skip it the same way."""
    return (
        token.text.islower()
        and is_common_english(token.text, top=20_000)
        and _DWELLING.match(text, token.end) is not None
    )
