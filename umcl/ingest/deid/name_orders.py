"""Names by the order their words stand in, whatever the case: a header line's `LAST, FIRST` or
`LAST FIRST`, Vietnamese family-name-first names, a member of staff in capitals after their
role or in any case after a role or "per" ("md Saeed", "per carol wolfe"), and, with no cue at
all, a given name and surname (or an initial and surname) that only a person's name spells.
Strong evidence: `find_phi` adds them to the names of `names.py`'s rules."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from umcl.ingest.deid.lexicon import (
    _EPONYMS,
    _GRAMMAR,
    _MEDIA,
    _NAMED_SCALES,
    _bare,
    _clinical_phrases,
    _eponym_head_follows,
    _is_abbreviation,
    _wordset,
    is_ordinary,
    is_rate,
    is_word_name,
)
from umcl.ingest.deid.lists import census_key, is_common_english, is_person_name, ranks
from umcl.ingest.deid.names import _CAPS_WORD, _NAME_STOPS
from umcl.ingest.deid.spans import Span

_LOWER = r"[a-zà-öø-ÿ][a-zà-öø-ÿ'’]+(?:-[a-zà-öø-ÿ][a-zà-öø-ÿ'’]+)*"

# A header line that opens with who the record is about, without a field colon or with one
# that `names.py`'s field labels do not know: "re: przybylski, tomasz j", "PATIENT LABEL
# ABERNATHY KEITH  M", "Client: N'DIAYE-FALL, AMINATA KHADY".
_HEADER = re.compile(
    r"^[ \t]*(?i:re|client|patient[ \t]+label|label|worklist|pt[ \t]+label)(?:[ \t]*:[ \t]*|[ \t]+)"
    rf"(?P<v>{_CAPS_WORD},?[ \t]+{_CAPS_WORD}(?:[ \t]+{_CAPS_WORD}){{0,2}}|{_LOWER},?[ \t]+{_LOWER}(?:[ \t]+{_LOWER})?)"
    r"(?![\w'’-])",
    re.MULTILINE,
)

# Vietnamese names put the family name first and a middle name after it ("Nguyen Van An",
# "DO THI THU TRANG"): a frequent family name before one of the frequent middle names, and one
# or two given names. "Le Fort" has no middle name; "Ho Chi Minh" no middle name of the list.
_VIETNAMESE = re.compile(
    r"(?<![\w'’-])(?P<v>(?=[A-ZĐ])(?i:nguy[eễ]n|tr[aầ]n|l[eê]|ph[aạ]m|ho[aà]ng|hu[yỳ]nh|phan|v[uũ]|v[oõ]|[dđ][aặ]ng"
    r"|b[uù]i|[dđ][oỗ]|h[oồ]|ng[oô]|d[uư][oơ]ng|l[yý]|tr[uư][oơ]ng|[dđ]inh|l[aâ]m|mai|t[aạ]|cao)"
    r"[ \t]+(?i:v[aă]n|th[iị]|[dđ][uứ]c|h[uữ]u|ng[oọ]c|qu[oố]c|thanh|c[oô]ng|xu[aâ]n)"
    r"(?:[ \t]+[\wÀ-ỹ]+){1,2})(?![\w'’-])"
)

# A member of staff in capitals after their role: "CHARGE NURSE OLUWAKEMI ADEYINKA", "IV NURSE
# VIRGINIA SALLESE CALLED". Each word is no English, clinical or grammar word, or the first is
# a census given name ("VIRGINIA"); two words at least, so "NURSE AWARE" and "RN CARE" stay.
_STAFF_CAPS = re.compile(
    r"(?<![\w'’-])(?:NURSE|PHYSIO|PHYSIOTHERAPIST|THERAPIST|PHARMACIST|DIETITIAN|DIETICIAN"
    r"|SOCIAL[ \t]+WORKER|CASE[ \t]+MANAGER|CHAPLAIN|INTERPRETER|RESIDENT|FELLOW|ATTENDING)[ \t]+"
    rf"(?P<v>{_CAPS_WORD}(?:[ \t]+{_CAPS_WORD}){{1,2}})(?![\w'’-])"
)


def _no_word(token: str) -> bool:
    """A word of a name here: a census given name that is no frequent English word ("JOHN",
    "tomasz"), or no English, clinical or grammar word at all ("ADEYINKA", "przybylski");
    "self", "CHEST", "AWARE" are words."""
    bare = _bare(token)
    if len(bare) < 2 or is_ordinary(token) or bare in _GRAMMAR:
        return False
    if census_key(bare) in ranks("given_names") and not is_common_english(bare, top=5_000):
        return True
    return len(bare) >= 3 and not _is_abbreviation(token) and not is_common_english(bare)


_FREQUENT_SURNAME = 5_000


def _name_words(words: list[str]) -> int:
    """How many of the leading words are a name's, 0 unless two are: each no word at all; or a
    census given name first; or a frequent census surname and a given name either way round,
    though English has the surname ("re: smith, john", "NURSE ANNE LEE")."""
    keys = [census_key(_bare(w)) for w in words]
    given = [k in ranks("given_names") for k in keys]
    frequent = [ranks("surnames").get(k, _FREQUENT_SURNAME + 1) <= _FREQUENT_SURNAME for k in keys]
    count = 0
    for index, word in enumerate(words):
        pair = frequent[index] and (
            (index == 0 and len(words) > 1 and given[1])
            or (index == 1 and given[0] and not is_word_name(words[0]))
        )  # not "NURSE WILL CALL", "NURSE MAY CALL MD": a given name that is mostly a word
        first_given = given[index] and (index == 0 or (index == 1 and frequent[0]))
        if not (_no_word(word) or first_given or pair):
            break
        count += 1
    return count if count >= 2 else 0


def _header_names(text: str) -> Iterator[Span]:
    for match in _HEADER.finditer(text):
        words = list(re.finditer(r"[^\s,]+", match.group("v")))
        count = _name_words([w.group() for w in words])
        if "," not in match.group("v") and not any(
            census_key(_bare(w.group())) in ranks("given_names") for w in words[:count]
        ):
            continue  # without a comma a given name must say so: "RE: HENOCH SCHONLEIN PURPURA"
        if count:
            start = match.start("v")
            yield Span(start, start + words[count - 1].end(), "NAME")


def _names_by(
    pattern: re.Pattern[str], accept: Callable[[list[str]], int], text: str
) -> Iterator[Span]:
    """Each match's leading words that `accept` counts as a name."""
    for match in pattern.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        if count := accept([w.group() for w in words]):
            start = match.start("v")
            yield Span(start, start + words[count - 1].end(), "NAME")


# Words that never follow a Vietnamese name as one of its given names.
_NOT_GIVEN = _wordset(
    "the this that his her and or but at in on to of for with was is who has had will"
)


def _vietnamese_words(words: list[str]) -> int:
    """The family and middle names and the capitalised given names after them: "Nguyen Van An",
    "NGUYEN VAN LONG"; a longer clinical or English word ends them ("LE VAN TAM CALLED")."""
    count = 2
    for word in words[2:]:
        if not word[:1].isupper() or word.lower() in _NOT_GIVEN:
            break
        if is_ordinary(word) and not (word.lower() in _GRAMMAR and not word.islower()):
            break  # "Ho Van Transfer", "Minh Bed 4"; "An", "AN" of "Nguyen Van An" a name
        if is_common_english(_bare(word)) and len(word) > 4:
            break  # "LE VAN TAM CALLED"; most given names are one short syllable, whatever
            # English shares it ("LONG", "HA")
        count += 1
    return count if count > 2 else 0


# Past this rank an English word is rarer than the names it spells ("agnes", "munroe"): a
# census given name and surname both beyond it name a person with no cue around them.
_UNCOMMON_WORD = 10_000
# A census given name and surname written alike, anywhere ("AGNES MUNROE", "irene snell, rn",
# "Frances Giggey"); the second word is read ahead so that "mary theresa kondouli" gives both pairs.
_BARE_FULL_NAME = re.compile(
    r"(?<![\w'’.-])(?P<g>[A-Z][a-z]{2,}|[a-z]{3,}|[A-Z]{3,})"
    r"(?=[ \t]+(?P<s>[A-Z][a-z'’]{2,}(?:-[A-Z][a-z'’]+)?|[a-z'’]{3,}(?:-[a-z'’]+)?|[A-Z'’]{3,}(?:-[A-Z'’]+)?)(?![\w'’-]))"
)
# An initial and a census surname in capitals: "M. PEPPLER PLACING STITCH", "E. WELSH AWARE".
_INITIAL_AND_SURNAME = re.compile(r"(?<![\w.'’])[A-Z]\.[ \t]?(?P<s>[A-Z][A-Z'’-]{2,})(?![\w'’-])")

# A surname in capitals, its comma and a forename or an initial, as wristbands, bed boards
# and worklists write them: "HALVORSEN, Ingrid", "BED 4 - MCGRATH, S.".
_CAPS_COMMA_GIVEN = re.compile(
    r"(?<![\w'’.-])(?P<s>[A-Z][A-Z'’]{2,}(?:-[A-Z][A-Z'’]+)?),[ \t]*"
    r"(?P<g>[A-Z][a-z]{1,}(?:-[A-Z]?[a-z]+)?|[A-Z]\.)(?![\w'’-])"
)


def _uncommon_name_word(word: str, census: str, text: str, end: int) -> bool:
    """A word of the census list `census` that is no English word of the first `_UNCOMMON_WORD`,
    no clinical, drug or scale word, no abbreviation and no eponym before its head noun."""
    bare = census_key(_bare(word))
    return (
        bare in ranks(census)
        and not is_word_name(word)
        and not is_common_english(bare, _UNCOMMON_WORD)
        and bare not in ranks("drugs")
        and bare not in _EPONYMS
        and bare not in _NAMED_SCALES
        and not (word.isupper() and _is_abbreviation(word))
        and not _eponym_head_follows(text, end)
    )


def _uncued_names(text: str) -> Iterator[Span]:
    """Names with no cue around them that only a person's name spells: a census given name and
    surname, both uncommon words and one of them no English word at all ("pia mater", "scarlet
    rash" are words), written alike; an initial before a surname that is no English word (not
    "R. FLANK": L. and R. are sides)."""
    phrases = _clinical_phrases(text)
    for match in _BARE_FULL_NAME.finditer(text):
        given, surname = match.group("g"), match.group("s")
        alike = (given.isupper(), given.islower()) == (surname.isupper(), surname.islower())
        if (
            alike
            and not (is_common_english(_bare(given)) and is_common_english(_bare(surname)))
            and _uncommon_name_word(given, "given_names", text, match.end("g"))
            and _uncommon_name_word(surname, "surnames", text, match.end("s"))
            and not any(a < match.end("s") and match.start("g") < b for a, b in phrases)
        ):
            yield Span(match.start("g"), match.end("s"), "NAME")
    for match in _INITIAL_AND_SURNAME.finditer(text):
        surname = match.group("s")
        if (
            match.group()[0] not in "LR"
            and not is_common_english(_bare(surname))
            and _uncommon_name_word(surname, "surnames", text, match.end("s"))
        ):
            yield Span(match.start(), match.end(), "NAME")


def _caps_comma_given(text: str) -> Iterator[Span]:
    """A census surname that is no frequent word before a census given name that is no word,
    or an initial ("ROMBERG, Neg.", "YEAST, Scanty.", "SHILEY, Cuffed" and "IMPRESSION, Stable"
    stay: a forename no list knows is as often a finding)."""
    for match in _CAPS_COMMA_GIVEN.finditer(text):
        given = match.group("g")
        bare = _bare(given)
        forename = given.endswith(".") or all(
            census_key(part) in ranks("given_names")
            and not is_word_name(part)
            and part not in _GRAMMAR
            and not is_common_english(part, _UNCOMMON_WORD)
            for part in bare.split("-")
        )  # "Anne-Marie": each part a given name
        surname = match.group("s")
        if forename and all(
            _uncommon_name_word(part, "surnames", text, match.end("s"))
            for part in surname.split("-")
        ):  # "SMITH-JONES": each part a surname
            yield Span(match.start("s"), match.end("g"), "NAME")


# A member of staff after their role or "per", in any case: "per carol wolfe", "md Saeed", "W/MD
# SPEARS", "docter Sullivan". Words are taken while they are census names that are seldom words
# ("NP grace" stays), or, after a doctor, no English or ward word at all ("md aware", "per
# protocol", "per carevue", "md amt" stay).
_STAFF_AFTER_ROLE = re.compile(
    r"(?<![\w])(?P<role>(?i:per|md|np|rn|rrt|docter|doctor|dr)\.?)[ \t]+"
    r"(?P<initial>[A-Za-z]\.[ \t]?)?(?P<v>[A-Za-z][A-Za-z'’-]+(?:[ \t]+[A-Za-z][A-Za-z'’-]+){0,2})"
)  # after an initial, too: "AS PER B. KARGAS"; one role word only, so that a run of them ("md md
# md …") costs one match each, never a scan to the run's end from every one of them
_ROLE_WORD = re.compile(r"(?i:md|np|rn|rrt|dr|doctor)\.?")
_DOCTOR = re.compile(r"(?i:md|dr|docter|doctor)\.?$")


def _staff_after_role(text: str) -> Iterator[Span]:
    for match in _STAFF_AFTER_ROLE.finditer(text):
        if match.group("role").lower() == "per" and is_rate(text, match.start(), match.end("role")):
            continue  # "2 Gy per fraction", "10 mg per day": a rate, not who said it
        end = None
        doctor = match.group("initial") or _DOCTOR.search(match.group("role")) is not None
        start = None
        for word in re.finditer(r"[^ \t]+", match.group("v")):
            token = word.group()
            bare = _bare(token)
            if start is None and not match.group("initial") and _ROLE_WORD.fullmatch(token):
                doctor = doctor or _DOCTOR.fullmatch(token) is not None  # "per md Saeed"
                continue
            start = match.start("v") + word.start() if start is None else start
            if bare in _NAMED_SCALES:
                break  # "per braden", "per glasgow scale"
            if is_ordinary(token) or bare in _NAME_STOPS or bare in _GRAMMAR or bare in _MEDIA:
                break
            eponym = _eponym_head_follows(text, match.start("v") + word.end())
            if bare in _EPONYMS or eponym or _is_abbreviation(token.upper()):
                break  # "per Fleischner Society", "per NG", "per RISS", "per flow"
            if is_person_name(bare):
                if is_word_name(token) or is_common_english(bare, top=5_000):
                    break
            elif not doctor or len(bare) < 4 or is_common_english(bare) or token.islower():
                break  # a lower-case word no list knows, after a doctor, is ward jargon ("md cortrak")
            end = match.start("v") + word.end()
        if end is not None and start is not None:
            yield Span(match.start("initial") if match.group("initial") else start, end, "NAME")


def name_order_spans(text: str) -> Iterator[Span]:
    """Names by their order (see the patterns above)."""
    yield from _header_names(text)
    yield from _names_by(_VIETNAMESE, _vietnamese_words, text)
    yield from _names_by(_STAFF_CAPS, _name_words, text)
    yield from _uncued_names(text)
    yield from _caps_comma_given(text)
    yield from _staff_after_role(text)
