"""The record's own known identifiers (its name, MRN, accession number), matched wherever the text
holds them, except placeholders ("-", "Unknown") and name parts that are ordinary words, which count
only where they stand as a name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from umcl.ingest.deid.lexicon import _wordset, is_word_name
from umcl.ingest.deid.names import _CUE, _ROLE, _TITLE
from umcl.ingest.deid.spans import Span

# What RIS exports write in an identifier column when there is no identifier.
_PLACEHOLDERS = _wordset(
    "na n/a n.a. n.a nil none null nan unknown unk not-known notknown anonymous anon tbc tba"
    " unnamed noname test dummy xxx xxxx missing blank"
)
# Where an ordinary word of a known name is the name: after a title or a cue ("Mr Small",
# "discussed with Small"), or beside another part of the same name ("John Small").
_NAME_POSITION = re.compile(
    rf"(?:\b(?i:{_TITLE}|mr|ms|mrs|prof|shri|smt)\.?|\b(?i:{_CUE})[ \t]*,?(?:[ \t]+(?i:{_ROLE})[ \t]*,?)*)[ \t]+$"
)


def _placeholder(value: str) -> bool:
    """'-', 'N/A', 'Unknown', '000', 'XXXX': what an export writes for no identifier."""
    bare = value.strip().lower()
    return bare in _PLACEHOLDERS or not any(c.isalnum() for c in bare) or len(set(bare)) == 1


# Kana, CJK ideographs and Hangul: two such characters make a whole name part (山田, 太郎).
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]{2}")


def _too_short(part: str) -> bool:
    return len(part) < 3 and not _CJK.fullmatch(part)


def _known_spans(text: str, known_identifiers: Iterable[str]) -> Iterator[Span]:
    """The record's own identifiers, whole and by part ('DOE^JOHN' → 'DOE', 'JOHN').

    Identifiers under 3 characters ("1", "NA"; two CJK characters are a name) and placeholders ("-", "Unknown", "N/A") are not
    identifiers: matching them would scrub clinical text ("1.2 cm", "of unknown significance").
    A part of a name that is an ordinary word ("SMALL^JOHN") is removed only where it is a name:
    capitalised, after a title or a cue or beside another part of the name ("Mr Small", "John
    Small"), never in "Small left effusion". Numbers match whole, never inside a decimal."""
    folded = text.casefold()
    for identifier in {str(i).strip() for i in known_identifiers if i and str(i).strip()}:
        if _too_short(identifier) or _placeholder(identifier):
            continue
        parts = [p for p in re.split(r"[\^,\s]+", identifier) if p]
        # The parts that vouch for a neighbour: "John" in "John Small", not "Not" in "Not Known".
        others = {p.lower() for p in parts if not _placeholder(p) and not is_word_name(p)}
        whole = len(parts) > 1 and not all(_placeholder(p) or is_word_name(p) for p in parts)
        for part in {identifier, *parts} if whole or len(parts) == 1 else set(parts):
            if _too_short(part) or _placeholder(part) or part.casefold() not in folded:
                continue  # a 1-2 letter fragment of a name would scrub ordinary words
            if any(c.isdigit() for c in part):
                pattern = rf"(?<![\w.,]){re.escape(part)}(?!\w|[.,]\d)"
                for match in re.finditer(pattern, text, re.IGNORECASE):
                    yield Span(match.start(), match.end(), "ID")
                continue
            if (part != identifier or len(parts) == 1) and is_word_name(part):
                yield from _known_ordinary(text, part, others - {part.lower()})
                continue
            # A known surname inside a double-barrelled one takes the whole name with it.
            pattern = rf"(?<!\w)(?:[^\W\d_]+-)*{re.escape(part)}(?:-[^\W\d_]+)*(?!\w)"
            for match in re.finditer(pattern, text, re.IGNORECASE):
                yield Span(match.start(), match.end(), "NAME")


def _known_ordinary(text: str, part: str, others: set[str]) -> Iterator[Span]:
    for match in re.finditer(rf"(?<![\w-]){re.escape(part)}(?![\w-])", text, re.IGNORECASE):
        word = match.group()
        if not word[:1].isupper():
            continue
        before = text[max(0, match.start() - 80) : match.start()]
        previous = re.search(r"([^\W\d_][\w'’-]*)[ \t]*[,^]?[ \t]*$", before)
        following = re.match(r"[ \t]*[,^]?[ \t]*([^\W\d_][\w'’-]*)", text[match.end() :])
        if (
            _NAME_POSITION.search(before)
            or (previous and previous.group(1).lower() in others)
            or (following and following.group(1).lower() in others)
        ):
            yield Span(match.start(), match.end(), "NAME")
