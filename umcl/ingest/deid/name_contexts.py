"""Names by what the sentence does with them, whatever their case: whose home a patient was at
("at seymour black's house"), who is spoken to in the patient's quoted words ("Elaine, I
know"), which member of staff was made aware ("NP grace made aware") or came from which service
("mary theresa kondouli from speech"), a title before an initial alone ("MS S. CARE"). Each
shape takes only census given names or surnames that are no clinical word (the initial
excepted), so "at the neighbor's house", "MD aware" and "NP also aware" stay. Strong evidence:
`find_phi` adds them to the names of `names.py`'s rules."""

from __future__ import annotations

import re
from collections.abc import Iterator

from umcl.ingest.deid.lexicon import (
    _DWELLING,
    _EPONYMS,
    _GRAMMAR,
    _LATIN_EPITHET,
    _bare,
    is_ordinary,
    is_word_name,
)
from umcl.ingest.deid.lists import census_key, is_common_english, is_person_name, ranks
from umcl.ingest.deid.name_orders import _no_word
from umcl.ingest.deid.names import _RELATION
from umcl.ingest.deid.spans import Span

_WORD = r"[A-Za-z][A-Za-z'’-]*[A-Za-z]"

# Whose home: one or two words and a possessive before a dwelling, after a preposition of place.
_POSSESSOR = re.compile(
    rf"\b(?i:at|to|from|in|near|outside|by)[ \t]+(?P<v>(?:{_WORD}[ \t]+)?{_WORD})(?i:['’]s)(?={_DWELLING.pattern})"
)
# Who is spoken to: a given name opening quoted speech, before its comma.
_ADDRESSED = re.compile(r"[\"“][ \t]*(?P<v>[A-Z][a-z]+),")
# Who was told: a role, one word, and what was done to tell them.
_TOLD_STAFF = re.compile(
    r"(?<![\w/])(?i:np|rn|md|pa|rrt|rt|dr|doctor|resident|fellow|attending|intern)\.?[ \t]+"
    r"(?P<v>[A-Za-z][a-z]+|[A-Z]+)(?=[ \t]+(?i:made[ \t]+aware|aware|notified|informed|updated"
    r"|paged|called|in[ \t]+to[ \t]+see|at[ \t]+(?:the[ \t]+)?bedside)\b)"
)
# Who is named by a title and an initial alone: "WITH MS S. CARE", "Mrs J. was told".
_TITLED_INITIAL = re.compile(
    r"\b(?:Mrs|Mr|Ms|Miss|Dr|MRS|MR|MS|MISS|DR)\.?[ \t]+(?P<v>[A-Z]\.)(?=[ \t,;)]|$)"
)
# Who came from which service: up to three words before "from speech", "of case management"
# ("mary theresa kondouli from speech and swallow", "karen from case management").
_SERVICE = (
    r"speech|swallow|pt|ot|physical[ \t]+therapy|occupational[ \t]+therapy|nutrition|dietary"
    r"|social[ \t]+work|sw|case[ \t]+management|cm|pharmacy|respiratory|rt|iv[ \t]+team|palliative"
    r"|pastoral[ \t]+care|chaplaincy|ethics|admitting|hospice|interpreter[ \t]+services"
)
_FROM_SERVICE = re.compile(
    r"(?<![\w'’.-])(?P<v>[A-Za-z][A-Za-z'’-]+(?:[ \t]+[A-Za-z][A-Za-z'’-]+){0,2})[ \t]+"
    rf"(?i:from|of)[ \t]+(?:(?i:the)[ \t]+)?(?i:{_SERVICE})\b"
)
# Past this census rank a given name after a role is more often a word than a name.
_COMMON_GIVEN = 1_000
# Past this rank an English word is rarer than the names it spells ("elaine", "theresa").
_UNCOMMON_WORD = 10_000
# Within this rank an English word is a word first ("church", "god"), even before a possessive.
_COMMON_WORD = 1_000


def _census_word(word: str) -> bool:
    """A census given name or surname that is no clinical, grammar or drug word and no eponym."""
    bare = _bare(word)
    return (
        is_person_name(bare)
        and not is_ordinary(word)
        and bare not in _GRAMMAR
        and bare not in _EPONYMS
        and census_key(bare) not in ranks("drugs")  # "Allegra from pharmacy"
    )


def _home_owners(text: str) -> Iterator[Span]:
    for match in _POSSESSOR.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        owner = words[-1].group()
        given = words[0].group() if len(words) == 2 else None
        if given is not None and census_key(_bare(given)) not in ranks("given_names"):
            given = None  # "at his daughter's home": the first word is no given name
        if not _census_word(owner) or re.fullmatch(_RELATION, owner, re.IGNORECASE):
            continue  # "at cousin's house"
        if given is None and (
            is_common_english(_bare(owner), _COMMON_WORD)
            or owner.islower()
            or (len(words) == 2 and _bare(words[0].group()) in _GRAMMAR)
        ):  # a determiner makes it a common noun's: "at the Pastor's house", "at his boss's"
            continue  # "at church's house", "at tia's house": a word's
        start = match.start("v") + words[0 if given else -1].start()
        yield Span(start, match.end("v"), "NAME")


def _addressed(text: str) -> Iterator[Span]:
    for match in _ADDRESSED.finditer(text):
        word = match.group("v")
        bare = _bare(word)
        if (
            census_key(bare) in ranks("given_names")
            and _census_word(word)
            and not is_word_name(word)
            and not is_common_english(bare, _UNCOMMON_WORD)
        ):  # "Elaine," and "Siobhan,"; not "Honey," nor "Doctor,"
            yield Span(match.start("v"), match.end("v"), "NAME")


def _told_staff(text: str) -> Iterator[Span]:
    for match in _TOLD_STAFF.finditer(text):
        word = match.group("v")
        rank = ranks("given_names").get(census_key(_bare(word)))
        if word.isupper() and len(word) <= 3:
            continue  # "RN DON AWARE": the director of nursing, as three capitals write it
        if rank is not None and rank <= _COMMON_GIVEN and _census_word(word):
            yield Span(match.start("v"), match.end("v"), "NAME")


def _staff_from_services(text: str) -> Iterator[Span]:
    """From the first census given name of the words before the service to the service's
    preposition, each later word a word of a name (`name_orders._no_word`: "someone from PT",
    "pt seen from OT", "Crystal Light from dietary" stay)."""
    for match in _FROM_SERVICE.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        for first, word in enumerate(words):
            token = word.group()
            if (
                census_key(_bare(token)) in ranks("given_names")
                and _census_word(token)
                and not is_word_name(token)
                and not is_common_english(_bare(token), _COMMON_WORD)
            ):
                rest = [w.group() for w in words[first + 1 :]]
                if all(_no_word(w) for w in rest):
                    yield Span(match.start("v") + word.start(), match.end("v"), "NAME")
                break


def _titled_initials(text: str) -> Iterator[Span]:
    for match in _TITLED_INITIAL.finditer(text):
        after = re.match(r"[ \t]*([A-Za-z]+)", text[match.end("v") : match.end("v") + 40])
        following = after.group(1) if after else ""
        if _LATIN_EPITHET.search(following.lower()) or (
            following.islower() and match.group()[:2].isupper()
        ):
            continue  # "MS S. viridans", "severe MR E. coli": mitral stenosis and regurgitation
        yield Span(match.start("v"), match.end("v"), "NAME")


def name_context_spans(text: str) -> Iterator[Span]:
    """Names by what the sentence does with them (see the patterns above)."""
    yield from _home_owners(text)
    yield from _addressed(text)
    yield from _told_staff(text)
    yield from _staff_from_services(text)
    yield from _titled_initials(text)
