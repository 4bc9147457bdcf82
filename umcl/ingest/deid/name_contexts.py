"""Names by what the sentence does with them, whatever their case: whose home a patient was at
("at seymour black's house"), who is spoken to in the patient's quoted words ("Elaine, I
know"), which member of staff was made aware ("NP grace made aware") or came from which service
("mary theresa kondouli from speech"), a title before an initial alone ("MS S. CARE"), who
opens a sentence doing what people do ("Kevin rang", "Mildred Oyewole requests update") and who
did what only staff do after their role ("RRT Okonkwo-Bamidele suctioned"), and who a relation
is (a nickname in quotes, "son 'Junior'"; a name in capitals, "DAUGHTER MARIA"). Each shape takes
only census names or words spelt as no English word is, none a clinical word (the initial
excepted), so "at the neighbor's house", "MD aware", "NP also aware", "Nocte slept" and "RN
Mepilex changed" stay. Strong evidence: `find_phi` adds them to the names of `names.py`'s
rules."""

from __future__ import annotations

import re
from collections.abc import Iterator

from umcl.ingest.deid.lexicon import (
    _DWELLING,
    _EPONYMS,
    _GRAMMAR,
    _LATIN_EPITHET,
    _RELATION,
    _bare,
    _is_abbreviation,
    is_ordinary,
    is_relation,
    is_word_name,
)
from umcl.ingest.deid.lists import census_key, is_common_english, is_person_name, ranks
from umcl.ingest.deid.name_orders import _no_word
from umcl.ingest.deid.names import _PARTICLE_WORDS
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
# Who did what people do, opening a sentence: "Kevin rang", "Sandra visited", "Mildred Oyewole
# requests update", "GWENDOLYN ACHTERBERG SIGNED CONSENT", "K. VENKATARAMAN PERFORMED ULTRASOUND".
# Alone, a frequent census given name that is no word ("Junior called", "Nana visited" stay);
# with a surname written alike, a census given name that is no frequent word ("gene panel
# reviewed", "JUNIOR HOUSEMAN NOTIFIED" stay; nor is "present" what a person does here: "MISTY
# MESENTERY PRESENT"), or an initial that is no side ("L. knee examined") before a capitalised
# surname that is no organism ("P. falciparum present").
_OPENS_SENTENCE = r"(?:^|(?<=[.!?;][ \t])|(?<=[.!?;][ \t]{2}))[ \t]*"
_PERSON_DID = (
    r"rang|phoned|called|visited|says|said|states|stated|wants|wanted|asked|asks|denies|denied"
    r"|complains|complained|agrees|agreed|refused|declined|feels|felt|slept|ate|vomited|woke|cried"
    r"|(?:is|was|has[ \t]+been)[ \t]+(?:vomiting|tearful|crying|confused|agitated|sleeping|eating)"
)
_SUBJECT = re.compile(
    rf"{_OPENS_SENTENCE}(?P<v>[A-Z][a-z]+(?:[-'’][A-Z][a-z]+)?)[ \t]+(?:{_PERSON_DID})\b",
    re.MULTILINE,
)
_PEOPLE_DID = (
    rf"{_PERSON_DID}|requests|requested|updated|notified|informed|signed|reviewed|performed"
    r"|sutured|examined|evaluated|assessed|consented|paged|aware|at[ \t]+(?:the[ \t]+)?bedside"
)
_FULL_NAME_SUBJECT = re.compile(
    rf"{_OPENS_SENTENCE}(?P<g>[A-Za-z][a-z]+|[A-Z]+|[A-Z]\.)[ \t]+(?P<s>[A-Za-z][A-Za-z'’-]*[A-Za-z])"
    rf"(?:[ \t]*,[ \t]*(?i:{_RELATION})[ \t]*,)?[ \t]+(?i:{_PEOPLE_DID})\b",
    re.MULTILINE,
)
# Which member of staff did what only staff do, after their role: "RRT Okonkwo-Bamidele
# suctioned", "PA-C Siobhán Ní Bhriain evaluated", in any case. One word is a census name or is
# spelt as no English word is (a hyphen or an apostrophe between its parts, a letter outside
# ASCII), and none is a clinical, drug or frequent English word ("RN Glidescope placed", "RT Hamilton adjusted",
# "Resident Nightfloat aware" stay: devices are placed and changed, jargon is made aware).
_CAPITALISED = r"(?=[A-ZÀ-ÖØ-Þ])[^\W\d_]+(?:[-'’](?=[A-ZÀ-ÖØ-Þ])[^\W\d_]+)*"
_STAFF_ACTED = re.compile(
    r"(?<![\w/-])(?i:rt|rrt|rn|np|pa|pa-c|md|dr\.?|ot|pt|slp|crna|lpn|hca|cna|sw|resident|fellow"
    r"|intern|registrar|physio|therapist)[ \t]+"
    rf"(?P<v>{_CAPITALISED}(?:[ \t]+{_CAPITALISED}){{0,2}})[ \t]+(?=(?i:evaluated|assessed|examined"
    r"|reviewed|saw|suctioned|extubated|consulted|spoke|came[ \t]+to[ \t]+see)\b)"
)
# Who a relation is: a word in quotes right after one ("son 'Junior'", "grandson \"Kiki\"").
_NICKNAME = re.compile(
    rf"\b(?i:{_RELATION})[ \t]+[\"“'‘](?P<v>[A-Z][a-z]+(?:[ \t-][A-Z][a-z]+)?)[\"”'’](?![A-Za-z])"
)
# A relation and the name after it in capitals: "WITH HER DAUGHTER-IN-LAW MARIA DE LA CRUZ WHO
# TRANSLATED" (the lower-case form is `names.py`'s): a census given name first, no frequent word.
_CAPS_AFTER_RELATION = re.compile(
    rf"(?<![\w'’-])(?P<kin>[A-Z][A-Z'’-]*)[ \t]+(?:(?:IS|NAMED|CALLED)[ \t]+)?"
    rf"(?P<v>[A-Z][A-Z'’-]+(?:[ \t]+(?:(?i:{_PARTICLE_WORDS})[ \t]+){{0,2}}[A-Z][A-Z'’-]+){{0,2}})"
)
_GREEK_LETTERS = frozenset(["alpha", "beta", "gamma", "delta", "kappa", "sigma", "theta", "omega"])
# Past this census rank a given name after a role is more often a word than a name.
_COMMON_GIVEN = 1_000
# Past this rank an English word is rarer than the names it spells ("elaine", "theresa").
_UNCOMMON_WORD = 10_000
# Within this rank an English word is a word first ("church", "god"), even before a possessive.
_COMMON_WORD = 1_000


def _no_clinical_word(word: str) -> bool:
    """No clinical, grammar or drug word and no eponym ("Allegra from pharmacy")."""
    bare = _bare(word)
    return not (
        is_ordinary(word)
        or bare in _GRAMMAR
        or bare in _EPONYMS
        or census_key(bare) in ranks("drugs")
    )


def _census_word(word: str) -> bool:
    """A census given name or surname that is no clinical, grammar or drug word and no eponym."""
    return is_person_name(_bare(word)) and _no_clinical_word(word)


def _home_owners(text: str) -> Iterator[Span]:
    for match in _POSSESSOR.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        owner = words[-1].group()
        given = words[0].group() if len(words) == 2 else None
        if given is not None and census_key(_bare(given)) not in ranks("given_names"):
            given = None  # "at his daughter's home": the first word is no given name
        if not _census_word(owner) or is_relation(owner):
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


def _name_word(word: str) -> bool:
    """No clinical word, no word that is also a name ("Grace") and no abbreviation in capitals."""
    return (
        _no_clinical_word(word)
        and not is_word_name(word)
        and not (word.isupper() and _is_abbreviation(word))
    )


def _subjects(text: str) -> Iterator[Span]:
    for match in _SUBJECT.finditer(text):
        word = match.group("v")
        rank = ranks("given_names").get(census_key(_bare(word)))
        if (
            rank is not None
            and rank <= _COMMON_GIVEN
            and _name_word(word)
            and not is_relation(word)
            and not is_common_english(_bare(word), _COMMON_WORD)
        ):  # "Kevin rang"; not "Patient slept", "Son rang", "Grace slept", "Junior called"
            yield Span(match.start("v"), match.end("v"), "NAME")


def _forename(given: str, surname: str) -> bool:
    """An initial that is no side before a surname that is no organism ("L. knee", "P.
    falciparum"), or a census given name that is no frequent word, written as its surname is."""
    if given.endswith("."):
        latin = _LATIN_EPITHET.search(surname.lower()) and not is_person_name(_bare(surname))
        return given[0] not in "LR" and not surname.islower() and not latin  # "K. Davis" stays one
    alike = (given.isupper(), given.islower()) == (surname.isupper(), surname.islower())
    return (
        alike
        and census_key(_bare(given)) in ranks("given_names")
        and _name_word(given)
        and not is_common_english(_bare(given), _UNCOMMON_WORD)
    )


def _full_name_subjects(text: str) -> Iterator[Span]:
    for match in _FULL_NAME_SUBJECT.finditer(text):
        given, surname = match.group("g"), match.group("s")
        if (
            _forename(given, surname)
            and _name_word(surname)
            and not is_common_english(_bare(surname))
        ):
            yield Span(match.start("g"), match.end("s"), "NAME")


def _spelt_as_a_name(word: str) -> bool:
    parts = re.split(r"[-'’]", word)
    return is_person_name(_bare(word)) or len(parts) > 1 or any(ord(c) > 127 for c in word)


def _staff_acted(text: str) -> Iterator[Span]:
    for match in _STAFF_ACTED.finditer(text):
        words = match.group("v").split()
        tested = [w for w in words if len(w) > 2]  # "Ní", "Ó": a two-letter particle is no word
        if all(_name_word(w) and not is_common_english(_bare(w)) for w in tested) and any(
            _spelt_as_a_name(w) for w in words
        ):
            yield Span(match.start("v"), match.end("v"), "NAME")


def _relations_named(text: str) -> Iterator[Span]:
    for match in _NICKNAME.finditer(text):
        words = match.group("v").split()
        first = _bare(words[0])
        if all(_no_clinical_word(w) and not is_relation(w) for w in words) and (
            census_key(first) in ranks("given_names") or not is_common_english(first)
        ):  # "son 'Kiki'"; 'Son "Okay"', 'Daughter "Fine"' stay
            yield Span(match.start("v"), match.end("v"), "NAME")
    for match in _CAPS_AFTER_RELATION.finditer(text):
        if not is_relation(match.group("kin")):
            continue
        words = match.group("v").split()
        given = words[0].lower()
        if (
            census_key(given) not in ranks("given_names")
            or not _name_word(given)
            or given in _GREEK_LETTERS
        ):
            continue  # "WIFE WILL BRING", "SON AT BEDSIDE", "SISTER ALPHA THALASSAEMIA TRAIT"
        end = match.start("v") + len(words[0])
        for word in re.finditer(r"\S+", match.group("v")):
            token = word.group().lower()
            if word.start() == 0:
                continue
            if re.fullmatch(_PARTICLE_WORDS, token):
                continue
            if not _no_word(token):
                break
            end = match.start("v") + word.end()
        yield Span(match.start("v"), end, "NAME")


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
    yield from _subjects(text)
    yield from _full_name_subjects(text)
    yield from _staff_acted(text)
    yield from _relations_named(text)
