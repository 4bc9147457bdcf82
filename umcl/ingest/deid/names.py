"""People's names found by what surrounds them: a title, a post-nominal, a field label, a cue.

Names have no shape of their own, so these rules find a candidate by its context and
`_name_span` decides how much of it is a name, skipping clinical words through `lexicon.py`.
A name the rules found is then found everywhere else it is capitalised (`_propagated`). The name patterns
here (`_UP`, `_NAME_SEQ`, `_CAPS_WORD`) are shared with `rules.py`, `places.py`, `known.py` and `ner.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from umcl.ingest.deid.handles import user_name_spans
from umcl.ingest.deid.lexicon import (
    _EPONYMS,
    _GRAMMAR,
    _KIN,
    _LATIN_EPITHET,
    _MEDIA,
    _RELATION,
    _bare,
    _eponym_head_follows,
    _is_abbreviation,
    _wordset,
    is_ordinary,
    is_word_name,
)
from umcl.ingest.deid.lists import census_key, is_common_english, is_person_name, ranks
from umcl.ingest.deid.spans import Span

_UP = r"[A-ZÀ-ÖØ-Þ]"  # an upper-case letter, accented ones included
_NAME_WORD = rf"{_UP}[\w'’]*(?:-{_UP}[\w'’]*)*"
_PARTICLE_WORDS = (
    r"van|von|de|del|della|der|den|da|di|du|le|la|los|las|ter|ten|bin|binti|bint|ben|ibn|al|el"
    r"|dos|das|do|zu|st\.?"
)
_PARTICLE = rf"(?i:{_PARTICLE_WORDS})"
# Words of a name are one space apart: two spaces separate the fields of a RIS header
# ("Name: Mrs Savitri Devi  Age: 94Y").
_NAME_SEQ = (
    rf"(?:{_UP}\.?\s){{0,2}}(?:{_PARTICLE}\s){{0,3}}{_NAME_WORD}"
    rf"(?:[ \t](?:{_UP}\.[ \t])?(?:{_PARTICLE}[ \t]){{0,2}}{_NAME_WORD}){{0,2}}"
)
_CAPS_WORD = rf"{_UP}[A-ZÀ-ÖØ-Þ'’]*(?:-{_UP}[A-ZÀ-ÖØ-Þ'’]*)*"


_NAME_STOPS = _wordset("at on in by with and or the of for to from is was were via per as if")
# Grammar words that never open a name, even capitalised ("The Brown family", "His GP").
_NEVER_GIVEN = _wordset(
    "a an the this that these those his her their its our my your he she they it we i who which"
    " what all any both each no not nor and or but if as at by for from in of on to with via per"
)


def _given_name_word(token: str, following: str) -> bool:
    """'Will' in 'phoned to Will Brown': a capitalised grammar word right before a surname."""
    nxt = re.match(r"[ \t]+([^\s,;:()]+)", following)
    return (
        token[:1].isupper()
        and not token.isupper()
        and token.lower() in _GRAMMAR
        and token.lower() not in _NEVER_GIVEN
        and nxt is not None
        and nxt.group(1)[:1].isupper()
        and not is_ordinary(nxt.group(1))
        and not _is_abbreviation(nxt.group(1))
    )


def _plain_word(token: str) -> bool:
    """A frequent English word written where case says nothing (all capitals or all lower
    case) that is barely a name: "DENIES", "STARTED", "currently", "ALERT"."""
    return (token.isupper() or token.islower()) and _word_not_name(token)


# Past this rank the census's surnames are rarer than the English words that share their
# spelling ("alert" is the 66,111th surname and the 4,014th English word; "Mahoney" the 1,071st).
_RARE_SURNAME = 50_000
# The census's most frequent surnames: after a side's initial they are still names.
_COMMON_SURNAME = 5_000
# The census's most frequent given names, which stand without the tagger after a relation.
_COMMON_GIVEN = 1_000


def _word_not_name(token: str, top: int = 30_000) -> bool:
    """One of the `top` English words that is no given name and at most a rare surname."""
    bare = census_key(_bare(token))
    return (
        is_common_english(bare, top)
        and bare not in ranks("given_names")
        and ranks("surnames").get(bare, _RARE_SURNAME + 1) > _RARE_SURNAME
    )


def _lower_name_words(words: list[str]) -> bool:
    """Words of a lower-case name: census names, or no frequent English or clinical word."""
    return all(
        not is_ordinary(w) and (is_person_name(w.strip(".")) or not is_common_english(w.strip(".")))
        for w in words
        if len(w.strip(".")) > 1
    )


def _census_full_name(words: list[str]) -> bool:
    """A census given name and a census surname, neither an English, clinical or drug word that
    names also are ("KATIE MAHONEY", "carol wolfe"; not "Grace Hall", "Will Brown", "Heart
    Failure"): after a cue, such a pair names a person whatever the tagger says."""
    if len(words) < 2:
        return False
    bare = [census_key(_bare(w)) for w in words]
    return (
        bare[0] in ranks("given_names")
        and bare[-1] in ranks("surnames")
        and not any(is_word_name(w) for w in words)
    )


def _short_given_name(token: str, following: str) -> bool:
    """A census given name of three or four capitals (which would read as an abbreviation)
    right before a census surname in capitals: "JOHN SMITH", "ANNE MUNROE"."""
    nxt = re.match(r"[ \t]+([A-Z][A-Z'’-]+)(?![\w])", following)
    return (
        token.isupper()
        and token.isalpha()
        and 3 <= len(token) <= 4
        and token.lower() in ranks("given_names")
        and not is_ordinary(token)
        and nxt is not None
        and len(nxt.group(1)) >= 3
        and census_key(_bare(nxt.group(1))) in ranks("surnames")
        and not is_ordinary(nxt.group(1))
        and not _is_abbreviation(nxt.group(1))
    )


def _family_name_first(token: str, following: str) -> bool:
    """A census surname in capitals right before a capitalised given name ("WONG Siu Ming")."""
    nxt = re.match(r"[ \t]+([^\s,;:()]+)", following)
    return (
        token.isalpha()
        and is_person_name(token)
        and not is_ordinary(token)
        and nxt is not None
        and nxt.group(1)[:1].isupper()
        and not nxt.group(1).isupper()
        and not is_ordinary(nxt.group(1))
    )


def _name_span(text: str, start: int, end: int, evidence: str = "context") -> Span | None:
    """A candidate name in text[start:end]; None when nothing name-like is in it.

    Leading role words are skipped ("Nurse Practitioner Smith" → "Smith"). With
    `evidence="context"` ("discussed with …") the name stops at the next ordinary word:
    "Castellanos, was" keeps Castellanos, "DR Portable" gives None. After a title ("Dr.",
    "Mrs") ordinary words are names too ("Dr. White"), and before a post-nominal (", MD") once
    a name-like word started the name ("Radiologist John Small, MD" → "John Small").
    """
    first = last = given_only = None
    for word in re.finditer(r"[^\s,;:()]+", text[start:end]):
        token, word_end = word.group(), start + word.end()
        if (
            last is None
            and evidence != "title"
            and is_ordinary(token)
            and _given_name_word(token, text[word_end:end])
        ):
            first = start + word.start() if first is None else first
            continue  # "Will" of "Will Brown", "May" of "May Evans"
        if evidence == "context" and _bare(token) in _EPONYMS:
            break  # "s/o Koch's": an eponym, not a name
        if text[word_end : word_end + 1] == ":" and is_ordinary(token):
            break  # the next field's label: "… Devi  Age: 94Y"
        if re.fullmatch(rf"{_PARTICLE}|{_UP}\.?", token, re.IGNORECASE):
            first = start + word.start() if first is None else first
            continue  # initials and particles lead into the surname
        if _eponym_head_follows(text, word_end):
            break
        if token.lower() in _NAME_STOPS:
            break  # "DR. SMITH AT 1400"
        short = len(token.strip(".")) <= 2  # "LI" after "Dr." is a name, "ICU" after "per" is not
        # "PT ALERT AND ORIENTED", "as per carevue"; capitalised, only the 10,000 most frequent
        # words, which hold few names no census lists ("Patient Alert And …"; "Son Rahul" stays)
        if evidence == "context" and (_plain_word(token) or _word_not_name(token, top=10_000)):
            break
        if (
            last is not None
            and token.isupper()
            and token.isalpha()
            and len(token) > 2  # "… MAHONEY RE PLAN": "RE" is a census name, and "regarding"
            and is_person_name(token)
            and not is_ordinary(token)
        ):
            last = word_end
            continue  # "CARROLL ANNE": a short given name in capitals, not an abbreviation
        if last is None and _short_given_name(token, text[word_end:end]):
            first = start + word.start() if first is None else first
            last = given_only = word_end
            continue  # "JOHN SMITH": four capitals are a given name before a surname
        if _is_abbreviation(token) and _family_name_first(token, text[word_end:end]):
            first = start + word.start() if first is None else first
            last = word_end
            continue  # "WONG Siu Ming", "KIM Seo-yeon": the family name in capitals first
        if is_ordinary(token) or (_is_abbreviation(token) and (short or evidence != "title")):
            if last is None and evidence != "title":
                first = None  # a leading role word: "Nurse Practitioner Smith", "Radiologist …"
                continue
            if evidence == "context":
                break
        first = start + word.start() if first is None else first
        last = word_end
    if first is None or last is None or last == given_only:
        return None  # a given name whose surname did not follow it ("JOHN HOPKINS PROTOCOL")
    return Span(first, last, "NAME")


# The name rules: by title, post-nominal, field label or what is said around them.
_TITLE = (
    r"(?:[Dd]r|DR|[Dd]octor|DOCTOR|Mrs|Mr|Ms|Mx|Miss|MRS|MISS|Prof|Professor|[Nn]urse|Sister|Sr)"
)
_TITLED = re.compile(
    rf"\b(?P<title>(?:{_TITLE}|mrs|mr|ms|MR|MS|Mw|mw\.(?=[ \t]*[A-Z]\.)|[Mm]evr|[Dd]hr|Mme|Mlle)(?:\.[ \t]*|[ \t]+))(?P<v>{_NAME_SEQ}|{_CAPS_WORD}(?:[ \t]{_CAPS_WORD}){{0,2}})"
)  # "Dr.King": a title's full stop may end it without a space
# A name in lower case before its post-nominal: "irene snell, rn", "mary o'hara np aware".
_LOWER_POSTNOMINAL = re.compile(
    r"(?<![\w.'’-])(?P<v>[a-z][a-z'’-]+(?:[ \t]+[a-z]\.?)?[ \t]+[a-z][a-z'’-]+)[ \t]*,?[ \t]+"
    r"(?:md|rn|np|pa|pa-c|rrt|lpn|bsn/rn|bsn|crna|msw|lcsw|pt|ot|do)\b(?![ \t]*[:/-])"
)
_POSTNOMINAL = re.compile(
    rf"(?P<v>{_NAME_SEQ})[ \t]*,?[ \t]+(?:MD|M\.D\.|DO|D\.O\.|RN|NP|PA-C|PhD|MBBS|MBChB|FRCR|FRCPC"
    rf"|FRANZCR|DMRD|DNB|MRCP|RRT|CRNA|ARNP|DNP|APRN|LPN|RT\(R\))\b"
)
# A name in capitals before its post-nominal: "PER WARREN KAVALIUNAS NP", "JARED HARTWELL RRT".
_CAPS_POSTNOMINAL = re.compile(
    rf"(?<![\w'’-])(?P<v>{_CAPS_WORD}(?:[ \t]+{_CAPS_WORD}){{1,2}})[ \t]*,?[ \t]+"
    r"(?:NP|RN|MD|RRT|PA|PA-C|CRNA|LPN|ARNP|APRN)\b(?![ \t]*[:/-])"
)


def _caps_name_words(words: list[str]) -> bool:
    """Words of a name in capitals: none a clinical, grammar or plain English word, none an
    abbreviation unless it is a census given name ("JOHN", "ANNE")."""
    return all(
        len(w) >= 3
        and not is_ordinary(w)
        and not _plain_word(w)
        and _bare(w) not in _GRAMMAR
        and (not _is_abbreviation(w) or _bare(w) in ranks("given_names"))
        for w in words
    )


_FIELD_LABEL = (
    r"(?:patient(?:'s)?(?:[ \t]+name)?|pt(?:[ \t]+name)?|name|attending|resident|fellow|radiologist"
    r"|technologist|tech|referring(?:[ \t]+(?:physician|provider|doctor|clinician|md))?"
    r"|(?:ordering|requesting)(?:[ \t]+(?:physician|provider|doctor|clinician|md|dr))?|ref(?:erred)?(?:[ \t]+by)?"
    r"|provider|pcp|gp|physician|consultant|surgeon|reading[ \t]+physician|(?:electronically[ \t]+)?signed(?:[ \t]+by)?"
    r"|radiographer|sonographer|typist|secretary|transcriptionist|registrar|reporter|author"
    r"|reporting[ \t]+(?:radiologist|doctor|clinician)|(?:checked|authori[sz]ed)[ \t]+by"
    r"|(?:reported|dictated|transcribed|verified|approved|interpreted|read|reviewed|requested"
    r"|performed|prepared|entered|finalized|finalised)[ \t]+by|cc|attn|guarantor|next[ \t]+of[ \t]+kin"
    r"|nok|emergency[ \t]+contact|contact[ \t]+person|scribe|surname|forename|family[ \t]+name"
    r"|given[ \t]+names?|first[ \t]+name|last[ \t]+name|surname[ \t]+forename|paciente|patiënt|patiente"
    r"|nom|nombre|nome|naam|(?:pt|patient)[ \t]+name)"
)
# Titles of other languages before a name in a field: "Patiënt: mevr. J. de Vries-Bakker".
_FOREIGN_TITLE = r"mme|mlle|m\.|mevr\.?|mevrouw|dhr\.?|herr|frau|sra\.?|srta\.?|sr\.?|sig\.?(?:ra)?|signora|señora|señor|senhora|senhor"
_FIELD_NAME = re.compile(
    rf"\b(?i:{_FIELD_LABEL})[ \t]*:[ \t]*(?:(?i:{_FOREIGN_TITLE})[ \t]+)?"
    rf"(?P<v>{_CAPS_WORD}(?:[ \t](?:{_PARTICLE}[ \t])?{_CAPS_WORD})?,[ \t]*{_CAPS_WORD}(?:[ \t](?:{_PARTICLE}[ \t]){{0,2}}{_CAPS_WORD}){{0,3}}(?:[ \t][A-Z]\b\.?)?"
    rf"|[a-z][a-z'’-]+,[ \t]*[a-z][a-z'’-]+(?:[ \t][a-z]\b)?"
    rf"|{_NAME_WORD}(?:[ \t]{_NAME_WORD})?,[ \t]*{_NAME_WORD}(?:[ \t][A-Z]\b\.?)?|{_NAME_SEQ}|[A-Za-z][\w.'’-]*[A-Za-z0-9])(?!&)"
)  # "…, QMH A&E": a department's initial is no name's
# Initials with their stops after who made or typed the images ("Radiographer: C.M."); "T.B.C.",
# "N.K." and "N.B." are no one's.
_STAFF_INITIALS = re.compile(
    r"(?i:radiographer|sonographer|technologist|tech|typist|transcriptionist|secretary|scribe)"
    r"[ \t]*:[ \t]*(?!T\.B\.[AC]|N\.[KAB]\.|A\.N\.P)(?P<v>(?:[A-Z]\.){2,3})(?![\w.])"
)
_ROLE = (
    rf"(?:the|his|her|their|patient'?s?|pt'?s?|{_KIN}"
    r"|partner|carer|caregiver|friend|nurse|resident|fellow|attending|technologist|tech|colleague"
    r"|physician|doctor|surgeon|clinician|provider|covering|ordering|referring|on-call|RN|NP|PA)"
)
_CUE = (
    r"(?:discussed[ \t]+(?:[a-z]+ly[ \t]+)?with|d/w|s/o|d/o|w/o|spoke[ \t]+(?:[a-z]+ly[ \t]+)?(?:with|to)"
    r"|(?:speak|speaking|talk|talked|talking)[ \t]+(?:with|to)"
    r"|spoken[ \t]+(?:[a-z]+ly[ \t]+)?(?:with|to)|communicated[ \t]+(?:to|with)|contact[ \t]+person"
    r"|called[ \t]+(?:to|in[ \t]+to)|relayed[ \t]+to|conveyed[ \t]+to|reported[ \t]+to|given[ \t]+to"
    r"|phoned[ \t]+(?:to|through[ \t]+to)|paged|notified|informed|reviewed[ \t]+with|consult(?:ed)?[ \t]+with"
    r"|per|accompanied[ \t]+by|escorted[ \t]+by|(?:signed|dictated|reported|read|transcribed|verified|approved"
    r"|performed|protocoll?ed|requested|referred|ordered|prepared|provided|seen|examined|entered|vetted)[ \t]+by"
    rf"|patient|pt|{_KIN}|partner|carer|caregiver|friend|nurse)"
)
# After the cue a comma may stand without its space: "SISTER,CARROLL ANNE", "sister ,JANET".
# The role words are taken possessively, each separator one way only: "son  son  son …" with
# two spaces could otherwise be split 2^n ways; and at most three of them ("the patient's wife,
# Mary"), so that a run of cue words ("pt pt pt …") is not read to its end from each of them.
_CUED_NAME = re.compile(
    rf"\b(?i:{_CUE})(?:[ \t]*,[ \t]*|[ \t]+)(?:(?i:{_ROLE})(?:[ \t]*,[ \t]*|[ \t]+)){{0,3}}+(?P<v>{_NAME_SEQ})"
)
# A family by its name: "KEEP ROMERO FAMILY AWARE", "the Okafor family".
_FAMILY_NAME = re.compile(rf"\b(?P<v>{_NAME_WORD})[ \t]+(?i:family)\b")
_AUTHOR_HANDLE = re.compile(
    r"\b(?i:(?:signed|dictated|read|transcribed|verified|approved|performed|protocoll?ed|prepared"
    r"|entered|reviewed|finalized|prelim(?:inary)?(?:[ \t]+read)?|wet[ \t]+read|authori[sz]ed)"
    r"(?:[ \t]+(?:off|back|electronically))?[ \t]+by[ \t]*:?[ \t]+(?:(?:the[ \t]+)?(?:technologist|tech"
    r"|resident|fellow|radiologist|rn|nurse|dr\.?|md)[ \t]+)?|(?:technologist|tech)[ \t]*:?[ \t]+)"
    r"(?P<v>[a-z][a-z0-9._-]{2,}[a-z0-9])\b"
)

# A relation and a name in brackets, either way round: "Son (Rahul)", "GP (Dr Helen O'Neill)",
# "Sunita (wife)".
_TITLE_WORD = rf"(?:{_TITLE}|MR|MS|PROF|Shri|Smt|Sri)\.?"
_RELATION_NAME = re.compile(
    rf"\b(?i:{_RELATION})['’]?s?[ \t]*\([ \t]*(?:{_TITLE_WORD}[ \t]+)?(?P<v>{_NAME_SEQ})[ \t]*\)"
    rf"|(?:{_TITLE_WORD}[ \t]+)?(?P<w>{_NAME_SEQ})[ \t]*\([ \t]*(?:the[ \t]+)?(?:patient['’]?s[ \t]+)?(?i:{_RELATION})[ \t]*[),;/]"
)  # "Maeve (wife, NOK)"
# A relation and a given name set off by commas: "Son, Ed, was updated", "wife, Mary, at bedside".
_RELATION_COMMA_NAME = re.compile(
    rf"\b(?i:{_RELATION})[ \t]*,[ \t]*(?P<v>{_UP}[a-z]+(?:[ \t]+{_UP}[a-z'’-]+)?)[ \t]*(?P<end>,|[.;](?:[ \t]|$)|$)",
    re.MULTILINE,
)  # or closing the sentence: "discussed with her grandson, Kwabena."
# A given name said to be a relation: "Anne is family contact", "Marcus, her son, called".
_NAME_IS_RELATION = re.compile(
    rf"(?<![\w'’-])(?P<v>{_UP}[a-z]+(?:[ \t]+{_UP}[a-z'’-]+)?)(?:[ \t]+(?:is|was)|[ \t]*,)[ \t]+"
    rf"(?:(?:the|her|his|their|pt'?s|patient'?s)[ \t]+)?(?i:{_RELATION}|family[ \t]+contact)\b"
)
# Surname, forename after a signing cue, with no colon: "Signed by Okoro, Chidi".
_SIGNED_LAST_FIRST = re.compile(
    rf"\b(?i:(?:electronically[ \t]+)?(?:signed|reported|dictated|authori[sz]ed|verified|approved"
    rf"|checked|typed|transcribed|read|interpreted|reviewed|finali[sz]ed)[ \t]+by)[ \t]*:?[ \t]+"
    rf"(?:{_TITLE_WORD}[ \t]+)?(?P<last>{_NAME_WORD}),[ \t]*(?P<first>{_NAME_WORD}(?:[ \t]+{_NAME_WORD})?)"
)
# Typist and dictation initials: "Dictated: RJT/ab", "transcribed: EW/pl", "Typed by: kls", and
# a footer line holding only "RJT/ab".
_TYPIST = re.compile(
    r"\b(?i:dictated|dict|typed|typist|transcribed|transcriptionist|transcription|secretary|initials)"
    r"(?:[ \t]+(?i:by)[ \t]*:?|[ \t]*[:-])[ \t]*(?P<v>[A-Za-z]{2,4}(?:[ \t]*/[ \t]*[A-Za-z]{2,4})?)\b(?![.'’-]?\w)"
    r"|^[ \t]*(?P<w>[A-Z]{2,4}[ \t]*/[ \t]*[a-z]{2,4})[ \t]*$",
    re.MULTILINE,
)
_TITLE_ONLY = re.compile(rf"(?i:{_TITLE}|mr|ms|mrs|prof)\.?")


# Names typed in lower case after a title or a conversation: "dr smith", "spoke to jsmith".
_LOWER_CASE_NAME = re.compile(
    r"\b(?:(?i:dr|doctor)\.?|(?i:discussed[ \t]+with|spoke[ \t]+(?:with|to)|paged|d/w))"
    rf"[ \t]+(?P<v>(?![a-z]+ly\b|overhead\b|stat\b|again\b|twice\b|(?:{_RELATION}|{_ROLE})\b)[a-z][a-z'’-]{{3,}})\b"
)  # not the relation or role before the name: "spoke with granddaughter Priyanka"


# Names in lower-case notes after a title or a relation: "daughter is mrs. marcela carlson",
# "pt's son dwayne at bedside". Words are taken while they are census names or no frequent
# English word ("son at bedside", "wife aware" stay).
_LOWER_AFTER_PERSON = re.compile(
    rf"\b(?:(?i:mrs|mr|ms|miss|dr|doctor)(?:\.[ \t]*|[ \t]+)|(?P<kin>(?i:{_RELATION}))(?:[ \t]*,[ \t]*|[ \t]+(?:(?:is|named|called)[ \t]+)?)(?:(?i:mrs|mr|ms|miss)\.?[ \t]+)?)"
    r"(?P<v>[a-z][a-z'’-]+(?:[ \t]+[a-z][a-z'’-]+){0,2})"
)


_TITLE_STOP = re.compile(r"\b(?i:mrs|mr|ms|miss|dr)\.")


def _lower_case_names(text: str) -> Iterator[tuple[Span, bool]]:
    """Strong after a title with its stop ("ms. d'ambrosio-kent"), else for the tagger to confirm.
    A word right after a relation is a given name or no word ("mum rang" stays)."""
    for match in _LOWER_AFTER_PERSON.finditer(text):
        end, kin = None, match.group("kin") is not None
        for word in re.finditer(r"[^ \t]+", match.group("v")):
            token = word.group()
            if is_ordinary(token) or token in _NAME_STOPS or token in _MEDIA:
                break
            given = census_key(token) in ranks("given_names")
            if is_common_english(token) and not (
                given if kin and end is None else is_person_name(token)
            ):
                break
            end = match.start("v") + word.end()
        if end is not None:
            titled = _TITLE_STOP.search(text, match.start(), match.start("v")) is not None
            yield Span(match.start("v"), end, "NAME"), titled


# A surname after an initial, in any case: "Z. MILLER aware", "nsg (d. renna and j. o'brien)",
# "q. lander rrt"; not "e.g.", "a.m.", "S. aureus" (an organism), "p.o. q.d.".
_INITIAL_NAME = re.compile(
    r"(?<![\w.])[A-Za-z]\.[ \t]?(?P<v>[A-Za-z][A-Za-z'’]+(?:-[A-Za-z][A-Za-z'’]+)?)\b(?!\.\w)"
)


def _initial_names(text: str) -> Iterator[Span]:
    for match in _INITIAL_NAME.finditer(text):
        word = match.group("v")
        if is_ordinary(word) or _bare(word) in _EPONYMS or _bare(word) in _GRAMMAR:
            continue
        if match.group()[:1].isupper() and word.islower():
            continue  # "B. fragilis", "E. faecalis": an organism's genus and species
        if _LATIN_EPITHET.search(word.lower()) and census_key(_bare(word)) not in ranks("surnames"):
            continue  # "A. XYLOSOXIDANS", "P. OVALE": a species in capitals
        side = match.group()[:1] in "LRlr" and is_common_english(_bare(word))
        if side and ranks("surnames").get(census_key(_bare(word)), _RARE_SURNAME) > _COMMON_SURNAME:
            continue  # "R. FLANK PAIN", "l. brow": a side ("R. MILLER" stays a name)
        if is_common_english(_bare(word)) and not is_person_name(_bare(word)):
            continue
        yield Span(match.start(), match.end("v"), "NAME")


def _name_rule_spans(text: str) -> Iterator[Span]:
    """Names by strong evidence: a title with its full stop, a post-nominal, a field label, a
    signing cue, a relation in brackets, typist initials, staff handles in sign-off lines."""
    return (span for span, strong in _name_finds(text) if strong)


def _cued_name_spans(text: str) -> Iterator[Span]:
    """Names by weaker evidence, which the tagger must confirm: a cue ("discussed with …"), a
    title in capitals without its stop ("DR TYRO"), lower-case names after a title, a relation
    or before a post-nominal, an initial, a family ("the ROMERO FAMILY")."""
    return (span for span, strong in _name_finds(text) if not strong)


def _cued_names(text: str) -> Iterator[tuple[Span, bool]]:
    """Names after a cue, strong when they are a census given name and surname. A cue whose words
    hold no name may hide the next cue ("SON TO SPEAK WITH KATIE MAHONEY"): the search goes on
    from where its words started (they are three at most, so this stays linear)."""
    position = 0
    while match := _CUED_NAME.search(text, position):
        span = _name_span(text, match.start("v"), match.end("v"), "context")
        if span is None:
            position = match.start("v")
            continue
        yield span, _census_full_name(text[span.start : span.end].split())
        position = match.end("v")


def _name_finds(text: str) -> Iterator[tuple[Span, bool]]:
    for match in _TITLED.finditer(text):
        # "DR Portable" is a modality; "Dr. White", "Dr White" and "DR. WHITE" are people.
        title = match.group("title").strip()
        first_word = match.group("v").split()[0]
        strong = (
            "." in title
            or not title.isupper()
            # "DR TYRO" in a note written in capitals: no modality is a word of 4+ letters
            # that the lexicon does not know ("DR PORTABLE", "DR CHEST" are known)
            or (len(first_word) >= 4 and first_word.isalpha() and not is_ordinary(first_word))
        ) and title.lower().rstrip(".") not in ("nurse", "sister", "sr")
        if title in ("MR", "MS") and not strong:
            continue  # "MR angiography", "MS plaques": the modality and the disease
        if span := _name_span(
            text, match.start("v"), match.end("v"), "title" if strong else "context"
        ):
            yield span, strong
    for match in _CAPS_POSTNOMINAL.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        while len(words) >= 2 and not _caps_name_words([w.group() for w in words]):
            words.pop(0)  # "PER WARREN KAVALIUNAS NP": the name is what follows the cue
        # A census given name opens it: "AIRVO OPTIFLOW, NP AWARE" names two devices
        if len(words) >= 2 and _bare(words[0].group()) in ranks("given_names"):
            yield Span(match.start("v") + words[0].start(), match.end("v"), "NAME"), True
    for match in _POSTNOMINAL.finditer(text):
        if span := _name_span(text, match.start("v"), match.end("v"), "postnominal"):
            yield span, True
    yield from _cued_names(text)
    for match in _FIELD_NAME.finditer(text):
        value = match.group("v")
        if value.islower() and "," in value and not _lower_name_words(re.split(r"[,\s]+", value)):
            continue  # "attn: sternum,direct": lower-case words that are no name
        if "," in value or "^" in value:
            yield Span(match.start("v"), match.end("v"), "NAME"), True
        elif span := _name_span(text, match.start("v"), match.end("v")):
            yield span, True
        elif not is_ordinary(value) and not _is_abbreviation(value) and value.lower() == value:
            yield Span(match.start("v"), match.end("v"), "NAME"), True  # a user name: "mlopez"
        elif value.isupper() and len(value) > 4 and not is_ordinary(value):
            yield Span(match.start("v"), match.end("v"), "NAME"), True  # "RSANTOS"
        elif re.fullmatch(r"[A-Z]{2,3}", value) and not is_ordinary(value):
            typist = re.match(r"/[a-z]{2,4}\b", text[match.end("v") :])  # "Ref: JP/sm"
            end = match.end("v") + (typist.end() if typist else 0)
            yield Span(match.start("v"), end, "NAME"), True  # initials: "Radiographer: TJ"
    for match in _STAFF_INITIALS.finditer(text):
        yield Span(match.start("v"), match.end("v"), "NAME"), True
    for pattern in (_AUTHOR_HANDLE, _LOWER_CASE_NAME):
        for match in pattern.finditer(text):
            value = match.group("v")
            if is_ordinary(value) or (
                pattern is _AUTHOR_HANDLE and is_common_english(value) and not is_person_name(value)
            ):
                continue  # "read back by RN taking the call", "signed off by charge nurse"
            yield Span(match.start("v"), match.end("v"), "NAME"), pattern is _AUTHOR_HANDLE
    for match in _NAME_IS_RELATION.finditer(text):
        first = _bare(match.group("v").split()[0])
        rank = ranks("given_names").get(first)
        if rank is not None and not is_word_name(first) and first not in _GRAMMAR:
            # A common given name stands ("Anne is family contact"); a rarer one shares its
            # spelling with clinical shorthand more often ("Brady, wife at bedside", "Peg, her
            # daughter's concern"): the tagger decides.
            yield Span(match.start("v"), match.end("v"), "NAME"), rank <= _COMMON_GIVEN
    for match in _RELATION_COMMA_NAME.finditer(text):
        first = match.group("v").split()[0]
        closing = match.group("end") != ","  # then no word at all, nor a census name that is one
        if (
            _bare(first) in ranks("given_names") and not (closing and _plain_word(first.lower()))
        ) or (closing and not (is_ordinary(first) or is_common_english(_bare(first)))):
            yield (
                Span(match.start("v"), match.end("v"), "NAME"),
                True,
            )  # "Ed", though "ED" is a word
    for match in _RELATION_NAME.finditer(text):
        group = "v" if match.group("v") else "w"
        if span := _name_span(text, match.start(group), match.end(group)):
            yield span, True
    for match in _SIGNED_LAST_FIRST.finditer(text):
        last, first = match.group("last"), match.group("first").split()
        while first and (is_ordinary(first[-1]) or _is_abbreviation(first[-1])):
            first.pop()  # "Nkemelu, Adaeze MBBS"
        if first and not is_ordinary(last) and not _is_abbreviation(last):
            end = match.start("first") + match.group("first").index(first[-1]) + len(first[-1])
            yield Span(match.start("last"), end, "NAME"), True
    for match in _TYPIST.finditer(text):
        group = "v" if match.group("v") else "w"
        parts = re.split(r"[ \t]*/[ \t]*", match.group(group))
        if not any(is_ordinary(p) or _TITLE_ONLY.fullmatch(p) for p in parts):
            yield Span(match.start(group), match.end(group), "NAME"), True
    for span in user_name_spans(text):
        yield span, True  # staff handles stay out of every vocabulary, whatever the tagger says
    yield from _lower_case_names(text)
    for span in _initial_names(text):
        yield span, False
    for match in _FAMILY_NAME.finditer(text):
        word = match.group("v")
        if not (
            is_ordinary(word)
            or _is_abbreviation(word)
            or _plain_word(word)
            or _bare(word) in _GRAMMAR
        ):
            yield Span(match.start("v"), match.end("v"), "NAME"), False
    for match in _LOWER_POSTNOMINAL.finditer(text):
        if _lower_name_words(match.group("v").split()):
            yield Span(match.start("v"), match.end("v"), "NAME"), False


def _propagated(text: str, spans: list[Span]) -> Iterator[Span]:
    """Every other occurrence of a name the rules found ('Dr. Okafor … Okafor agreed').

    Only names with strong evidence are passed here (the rules', not the NER's guesses), and an
    occurrence counts only as written (a user name) or capitalised ("OKAFOR", "Okafor"): a
    lower-case word is an ordinary word the lexicon lacks ("Low grade fever"), not a name."""
    words = {
        w
        for s in spans
        if s.label == "NAME"
        for w in re.findall(r"[^\W\d_][\w'’-]{2,}", text[s.start : s.end])
        if not is_ordinary(w) and _bare(w) not in _EPONYMS
    }
    if not words:
        return
    written = {_bare(w) for w in words if w.islower()}
    alternatives = "|".join(sorted({re.escape(_bare(w)) for w in words}, key=len, reverse=True))
    for match in re.finditer(rf"(?<!\w)(?:{alternatives})(?:['’]s)?(?!\w)", text, re.IGNORECASE):
        if match.group()[:1].isupper() or _bare(match.group()) in written:
            yield Span(match.start(), match.end(), "NAME")
