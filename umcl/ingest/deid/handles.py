"""Staff user names and transcription initials, found by where they stand in sign-off and
communication lines; one of the name layers (`names.py` yields them with its own)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from umcl.ingest.deid.lexicon import _GRAMMAR, _MEDIA, _bare, is_ordinary
from umcl.ingest.deid.lists import census_key, is_common_english, is_person_name, ranks
from umcl.ingest.deid.spans import Span

# Staff handles in sign-off and communication lines: "called to dr. … by jkim at 0315", "cc:
# jkim, mlopez" on a line of its own, and transcription initials closing a report or before
# its dictation stamps ("JK/mm", "JK/mm D: 03/15"). A handle is a word no lexicon knows that
# ends its clause after a communication verb: "by mouth", "by consensus", "limited by habitus"
# and "notified by resp therapist" stay.
_BY_HANDLE = re.compile(
    r"\b(?i:by)[ \t]+(?P<v>[a-z][a-z0-9]{1,15})"
    r"(?=[ \t]+at[ \t]+\d|[ \t]+on[ \t]+\d|[ \t]*[.;,]?[ \t]*(?:$|\n)|[ \t]*[.;][ \t])"
)
_COMMUNICATION_CUE = re.compile(
    r"\b(?i:called|discussed|communicated|relayed|notified|paged|conveyed|telephoned|phoned"
    r"|informed|d/w|given|handed|passed|reported|verbal|read[ -]?back)\b"
)
_CC_LINE = re.compile(r"^[ \t]*cc[ \t]*:[ \t]*(?P<v>[^\n.]{1,200})", re.MULTILINE)
# A colon may part them too ("AKO:pf" closing a line).
_INITIALS_PAIR = re.compile(
    r"(?<![\w/:])(?P<v>[A-Z]{2,3}[/:][a-z]{2,3})(?=[ \t]*(?:$|[DT][ \t]*:|\d{1,2}[/.-]\d{1,2}\b))",
    re.MULTILINE,
)
# Right after the word that says it was typed or dictated, or after its time: "typed AG/ht.",
# "Addendum KP/rn: …", "Dictated 10:42 / AKO:pf" ("Addendum: RUQ/epi tenderness" is no pair).
_DICTATED_PAIR = re.compile(
    r"\b(?i:typed|dictated|dict|transcribed|addendum|initials)(?:[ \t]+(?i:by))?"
    r"(?:[ \t]+\d{1,2}:\d{2}[ \t]*/?)?[ \t]+(?P<v>[A-Z]{2,3}[/:][a-z]{2,3})(?![\w/])"
)
# Who wrote a note, in brackets after its title ("Nursing note (nkowalski):", "Addendum 3/4
# (ch):"), and who an audit line names ("opened by user rpatel2", "login: jdoe").
_AUTHOR_IN_BRACKETS = re.compile(
    r"\b(?i:note|notes|addendum|entry|update|amendment|comment|progress)\b[^\n()]{0,24}"
    r"\([ \t]*(?P<v>[a-z][a-z0-9._]{1,15})[ \t]*\)[ \t]*:"
)
_AUDIT_USER = re.compile(
    r"\b(?i:user(?:[ \t]*(?:name|id))?|username|login|logon)(?P<sep>[ \t]*[:=#])?[ \t]*"
    r"(?P<v>[A-Za-z][A-Za-z0-9._-]{1,20}[A-Za-z0-9])(?![\w@])"
)
# A closed-loop read-back names both ends: "read back by RN ejohansson to cxu".
_READ_BACK = re.compile(r"\b(?i:read[ -]?back)\b")
_TO_HANDLE = re.compile(
    r"\bto[ \t]+(?:(?i:rn|dr\.?|nurse|md)[ \t]+)?(?P<v>[a-z][a-z0-9]{2,15})"
    r"(?=[ \t]*[.;,]|[ \t]+at[ \t]+\d|[ \t]*$)",
    re.MULTILINE,
)
_SENTENCE_END = re.compile(
    r"(?<!\b[Dd]r)(?<!\b[Mm]r)(?<!\b[Mm]s)(?<!\b[Mm]rs)(?<!\b[Pp]rof)[.!?][ \t]+(?=[A-Z])|\n"
)
# Routes and frequencies after a drug's route ("SC/bid", "IV/tid"): never a typist's initials.
_DOSING = frozenset(
    [
        "po",
        "im",
        "sc",
        "sq",
        "iv",
        "pr",
        "sl",
        "prn",
        "ng",
        "og",
        "pv",
        "top",
        "bid",
        "tid",
        "qid",
        "qd",
        "qod",
        "qhs",
        "hs",
        "qam",
        "qpm",
        "stat",
        "daily",
    ]
)


def _handle(word: str) -> bool:
    """A word no lexicon knows: "jkim", not "cough" ("CC: cough") or "consensus"."""
    return (
        not is_ordinary(word)
        and _bare(word) not in _GRAMMAR
        and word.lower() not in _MEDIA
        and not (is_common_english(_bare(word)) and not is_person_name(_bare(word)))
    )


def user_name_shaped(word: str) -> bool:
    """An initial or two and a census surname ("hwestover", "ejohansson"), or letters and
    digits ("jdoe2"): how user names are made; a ward's shorthand ("paeds", "ccot") is neither."""
    if re.fullmatch(r"[a-z]{2,}\d{1,4}", word):
        return True
    return (
        len(word) >= 5
        and not is_common_english(word)
        and any(
            census_key(word[k:]) in ranks("surnames") and not is_common_english(word[k:])
            for k in (1, 2)
        )
    )


def _sentence_before(text: str, start: int) -> str:
    """The sentence so far, within 120 characters ("dr. smith" does not end one; ". The" does)."""
    return _SENTENCE_END.split(text[max(0, start - 120) : start])[-1]


def user_name_spans(text: str) -> Iterator[Span]:
    """Staff user names and initials by where they stand (see `_BY_HANDLE`)."""
    for match in _BY_HANDLE.finditer(text):
        if _COMMUNICATION_CUE.search(_sentence_before(text, match.start())) and _handle(
            match.group("v")
        ):
            yield Span(match.start("v"), match.end("v"), "NAME")
    for match in _TO_HANDLE.finditer(text):
        word = match.group("v")
        # Stricter than a handle after "by": a user name's shape ("read back to triage" is none).
        if (
            _READ_BACK.search(_sentence_before(text, match.start()))
            and _handle(word)
            and user_name_shaped(word)
        ):
            yield Span(match.start("v"), match.end("v"), "NAME")
    for match in _AUTHOR_IN_BRACKETS.finditer(text):
        if _handle(match.group("v")) and user_name_shaped(match.group("v")):
            yield Span(match.start("v"), match.end("v"), "NAME")
    for match in _AUDIT_USER.finditer(text):
        word = match.group("v")
        # a user name's shape, or after a colon any lower-case word or one with a digit: "login:
        # jdoe"; "CPAP user ResMed", "Insulin pump user: Omnipod", "login: ICU" stay
        shaped = (word.islower() and user_name_shaped(word)) or (
            match.group("sep") and (word.islower() or any(c.isdigit() for c in word))
        )
        if _handle(word) and shaped:
            yield Span(match.start("v"), match.end("v"), "NAME")
    for match in _CC_LINE.finditer(text):
        for word in re.finditer(r"[^\W\d_][\w'’-]*", match.group("v")):
            if _handle(word.group()):
                start = match.start("v") + word.start()
                yield Span(start, start + len(word.group()), "NAME")
    for match in (*_INITIALS_PAIR.finditer(text), *_DICTATED_PAIR.finditer(text)):
        upper, lower = re.split(r"[/:]", match.group("v"))
        if not is_ordinary(upper) and not is_ordinary(lower) and lower not in _DOSING:
            yield Span(match.start("v"), match.end("v"), "NAME")
