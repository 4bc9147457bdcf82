"""Places: street addresses in the layouts of several countries, institutions by their head word,
towns after a residence cue, facilities before their head word and wards by their number.

Addresses and institutions with a head word are identifiers by shape; towns and facilities found
by a word list after a cue are guesses the tagger must confirm (`_place_guesses`); facilities
before their head word, wards by their number and hospitals known by common words ("Good Sam")
after a preposition stand on their own (`facility_spans`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from umcl.ingest.deid.lexicon import (
    _DWELLING,
    _EPONYMS,
    _GRAMMAR,
    _INSTITUTION_GENERIC,
    _INSTITUTION_HEADS,
    _NAMED_SCALES,
    _bare,
    _is_abbreviation,
    _wordset,
    is_ordinary,
)
from umcl.ingest.deid.lists import MAX_PLACE_WORDS, census_key, is_common_english, is_place, ranks
from umcl.ingest.deid.names import _UP
from umcl.ingest.deid.rules import _GENERIC_FACILITIES, _HOME_UNIT, _PLACE, _STREET, _UNIT
from umcl.ingest.deid.spans import Span

# Street addresses, PO boxes and units, extended over the ", City" and ", Apt 4B" after them.
_ADDRESS_START = re.compile(
    rf"\b\d{{1,6}}[A-Za-z]?(?:-\d+)?[ \t]+(?:(?:[NSEW]|North|South|East|West|NE|NW|SE|SW)\.?[ \t]+)?"
    rf"(?:(?:{_UP}[\w'’-]*|\d+(?:st|nd|rd|th))\.?[ \t]+){{1,4}}?{_STREET}\b\.?"
    rf"|\b(?:P\.?[ \t]?O\.?[ \t]*Box|Post[ \t]+Office[ \t]+Box)[ \t]*\d+|\b{_HOME_UNIT}"
    # the street type first (French, Spanish, Italian, Portuguese): "1 Rue de la Paix"
    rf"|\b\d{{1,5}}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?i:rue|avenue|av\.|boulevard|bd|place|chemin|allée"
    rf"|impasse|quai|calle|avenida|avda\.?|paseo|plaza|via|viale|piazza|corso|rua|praça|travessa)"
    rf"[ \t]+(?:(?i:de|du|des|la|le|les|del|della|delle|dei|di|da|do|dos|das)[ \t]+|(?i:d|l)['’])*"
    rf"{_UP}[\w'’-]*(?:[ \t]+{_UP}[\w'’-]*)*"
    # the number after the street (German, Dutch, Nordic): "Hauptstraße 12"
    rf"|\b{_UP}[\w'’-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|laan|gracht|straat|vej|gatan|gata)"
    rf"[ \t]+\d{{1,5}}[a-z]?\b"
)
_ADDRESS_TAIL = re.compile(rf"(?:,[ \t]*|[ \t]+in[ \t]+)(?:{_UNIT}|(?P<place>{_PLACE}))")

# Institutions: a capitalised sequence ("Mercy Regional Hospital", "Guy's and St Thomas' NHS
# Foundation Trust", "University of Michigan Health System") with a head word and a proper name.
_NAME_CONNECTORS = ("of", "and", "&", "the", "for", "de", "la", "du", "del")
_CAP_SEQUENCE = re.compile(
    rf"{_UP}[\w'’.-]*(?:[ \t]+(?:(?:{'|'.join(_NAME_CONNECTORS)})[ \t]+)*{_UP}[\w'’.-]*)*"
)
_HEAD_FIRST = re.compile(
    rf"\b(?:Hôpital|Hopital|Hospital|Clinique|Clinica|Klinikum|Ospedale|Centre[ \t]+Hospitalier)"
    rf"[ \t]+(?:(?:de|du|des|del|della|la|le)[ \t]+)*{_UP}[\w'’-]*(?:[ \t]+{_UP}[\w'’-]*)*"
)


# A town written in lower case after a residence or transfer cue, found in the GeoNames list:
# "lives in owings mills", "pt from catonsville", "moved here from eastbourne".
_LOWER_CASE_TOWN = re.compile(
    r"\b(?i:lives|living|resides|residing|home|moved|relocated|originally|transferred|transfer"
    r"|from|picked[ \t]+(?:pt[ \t]+)?up|in|at|near)(?:[ \t]+(?:here|pt|up))?(?:[ \t]+(?i:in|at|of|to|from|near))?[ \t]+"
    r"(?P<v>[a-z][a-z'-]+(?:[ \t][a-z][a-z'-]+){0,2})"
)
# A facility written in lower case: "TURP at reisterstown hospital", "bed on mackerer campus".
_LOWER_CASE_FACILITY = re.compile(
    r"\b(?P<v>[a-z][a-z'-]+(?:[ \t][a-z][a-z'-]+)?)[ \t]+(?:hospital|hosp|campus|medical[ \t]+center|rehab|memorial|clinic)\b"
)
# A facility named before its head word after a preposition of place, whatever its words and
# case: "to sacred heart hospital", "FROM UNION HOSP.", "taken to Memorial Hospital", "in General
# Hospital Medical Center", "via sinai hospital". The name is what follows the last grammar word,
# kind of facility or clinical abbreviation ("to the floor from X hospital", "at another
# hospital", "to ICU hospital day 5": none); a word ends at a full stop unless it is a saint's or a
# mount's ("to MICU. Hospital course" names nothing), and a head that a noun follows is the
# hospital's course, day, bed or stay, no facility's name.
_NAMED_BEFORE_HEAD = re.compile(
    r"\b(?i:to|from|at|in|into|by|via|near|@)[ \t]+"
    r"(?P<v>(?:(?i:st|ste|mt)\.|[A-Za-z][\w'’-]*)(?:[ \t]+(?:(?i:st|ste|mt)\.|[A-Za-z][\w'’-]*)){0,3}?)"
    r"[ \t]+(?:(?P<memorial>(?i:memorial))|(?i:hospital|hosp\b|medical[ \t]+(?:cent(?:er|re)|ctr)|campus))\b"
    r"(?![ \t]*(?i:course|day|days|bed|beds|gown|gowns|setting|stay|stays|service|services|admission"
    r"|admissions|acquired|record|records|policy|policies|staff|discharge|visit|visits|food|system|unit"
    r"|units|ward|wards|floor|room|rooms|pharmacy|lab|laboratory|transport)\b)"
)  # "Memorial" is a word of the name ("Sacred Heart memorial"); the others say what it is
# On a campus: "surgical bed on mackerer campus" ("on" before any other head word is a hospital
# day, bed or diet more often than a name).
_ON_CAMPUS = re.compile(
    r"\b(?i:on|onto)[ \t]+(?P<v>[A-Za-z][\w'’-]*(?:[ \t]+[A-Za-z][\w'’-]*)?)[ \t]+(?i:campus)\b"
)
_FACILITY_KINDS = _wordset(
    """outside other another same local community psychiatric psych mental state private public
    referring sending receiving previous prior nearest nearby closest new old their his her our
    your this that which rehab rehabilitation nursing teaching veterans va university leave go
    come return back get stay remain tertiary secondary primary care district county city
    regional academic general trauma cancer burn children childrens women womens specialist acute
    military army federal field day main east west north south outpatient inpatient ambulatory
    satellite affiliated partner sister step-down"""
)
# A town in capitals or title case, from the list, after a preposition of place: "job in Bel
# Air", "shelter in Edgemere area".
_LISTED_TOWN = re.compile(
    rf"\b(?i:in|from|to|near|at)[ \t]+(?P<v>{_UP}[\w'’-]+(?:[ \t]{_UP}[\w'’-]+){{0,2}})"
)


def _lower_case_towns(text: str) -> Iterator[Span]:
    """The longest run of the words after the cue that is a listed place and, alone, no frequent
    English word ("owings mills", not "home" or "the floor")."""
    for match in _LOWER_CASE_TOWN.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        for n in range(min(len(words), MAX_PLACE_WORDS), 0, -1):
            phrase = " ".join(w.group() for w in words[:n])
            if is_place(phrase) and not (
                n == 1 and (is_common_english(phrase) or is_ordinary(phrase))
            ):
                yield Span(match.start("v"), match.start("v") + words[n - 1].end(), "ADDRESS")
                break


def _listed_places(text: str) -> Iterator[Span]:
    for match in _LOWER_CASE_FACILITY.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        for first in range(len(words)):  # "on mackerer campus": the name is the last word
            kept = [w.group() for w in words[first:]]
            if is_place(" ".join(kept)) or all(
                not is_ordinary(w) and not is_common_english(w) and w not in _GRAMMAR for w in kept
            ):
                yield Span(match.start("v") + words[first].start(), match.end("v"), "INSTITUTION")
                break
    for match in _LISTED_TOWN.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        for n in range(min(len(words), MAX_PLACE_WORDS), 0, -1):
            phrase = " ".join(w.group() for w in words[:n])
            if is_place(phrase) and not (
                n == 1
                and (is_common_english(phrase) or is_ordinary(phrase) or _is_abbreviation(phrase))
            ):
                yield Span(match.start("v"), match.start("v") + words[n - 1].end(), "ADDRESS")
                break


def _unknown_word(word: str) -> bool:
    """No clinical, grammar, frequent English word or kind of facility: a name's word."""
    bare = _bare(word)
    return not (
        is_ordinary(word) or is_common_english(bare) or bare in _GRAMMAR or bare in _FACILITY_KINDS
    )


def _name_after_kind_words(match: re.Match[str]) -> list[re.Match[str]]:
    """The words of the name in `match`'s group `v`: those after its last grammar word, kind of
    facility, number or clinical abbreviation."""
    words = list(re.finditer(r"\S+", match.group("v")))
    for k in range(len(words) - 1, -1, -1):
        word = words[k].group()
        bare = _bare(word)
        if (
            bare in _GRAMMAR
            or bare in _FACILITY_KINDS
            or any(c.isdigit() for c in bare)
            or (word.isupper() and _is_abbreviation(word))
        ):
            return words[k + 1 :]
    return words


def _named_before_head(text: str) -> Iterator[Span]:
    for match in _NAMED_BEFORE_HEAD.finditer(text):
        words = _name_after_kind_words(match)
        memorial = match.group("memorial")
        if words and memorial and re.search(r"['’]s?$", words[-1].group()):
            continue  # "going to son's memorial": a memorial of someone, no place's name
        if words:
            end = match.end() if memorial else match.start("v") + words[-1].end()
            yield Span(match.start("v") + words[0].start(), end, "INSTITUTION")


def _campus_names(text: str) -> Iterator[Span]:
    for match in _ON_CAMPUS.finditer(text):
        words = _name_after_kind_words(match)
        # "on college campus", "on the hospital campus", "on icy campus walkway": no name
        if words and all(_unknown_word(w.group()) for w in words):
            start = match.start("v")
            yield Span(start + words[0].start(), start + words[-1].end(), "INSTITUTION")


# A ward or building by its name and number after a move, written in capitals or lower case where
# no NER sees a name: "TO QUARTERMAIN 3", "back to reisterstown 2". The name is no English,
# clinical, drug or scale word ("to levophed 2", "on vent 2", "PROGRESSED TO KILLIP 3"), and no
# unit or count follows the number ("to peptamen 1 can", "nimbex 2 mcg/kg").
_WARD_AND_NUMBER = re.compile(
    r"\b(?i:to|on|from|onto|into)[ \t]+(?P<v>[a-z]{5,}|[A-Z]{5,})[ \t]*\d\b(?![.:/]\d|['’])"
    r"(?![ \t]*(?i:%|mg|mcg|g\b|gm|units?|u\b|ml|l\b|cc|cans?|cartons?|bottles?|packs?|tabs?|caps?"
    r"|puffs?|drops?|degrees?|deg|cm|mm|kg|lpm|l/min|hrs?|hours?|min|mins|days?|times|x\b))"
)


def _ward_names(text: str) -> Iterator[Span]:
    for match in _WARD_AND_NUMBER.finditer(text):
        word = match.group("v")
        lower = word.lower()
        if not (
            is_ordinary(word)
            or is_common_english(word)
            or lower in ranks("drugs")
            or lower in _NAMED_SCALES
            or lower in _EPONYMS
        ):
            yield Span(match.start("v"), match.end("v"), "INSTITUTION")


# Where a patient lives, in any case: "LIVES IN HAMPTON", "resides in owings mills", "lives
# alone in Rockville". Only a residence says so: "in", "from" or "at" alone precede wards,
# drugs and times as often.
_HOME_TOWN = re.compile(
    r"\b(?i:lives?|lived|living|resides|residing|resident|moved|relocated)(?:[ \t]+[A-Za-z]+){0,5}?"
    r"[ \t]+(?i:in|at|near|outside)[ \t]+(?P<v>[A-Za-z][\w'’-]*(?:[ \t]+[A-Za-z][\w'’-]*){0,2})"
)  # "LIVES WITH SON AND FAMILY IN ROCKVILLE", "both live in hampton, ma"


def _home_towns(text: str) -> Iterator[Span]:
    """The longest run of words after a residence that the place list knows and that is, alone,
    no frequent English or clinical word ("lives in HAMPTON"; not "lives in a house")."""
    for match in _HOME_TOWN.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        for n in range(min(len(words), MAX_PLACE_WORDS), 0, -1):
            phrase = " ".join(_bare(w.group()) for w in words[:n])
            after = text[match.start("v") + words[n - 1].end() :]
            if (
                is_place(phrase)
                and not (n == 1 and (is_common_english(phrase, top=5_000) or is_ordinary(phrase)))
                and not _DWELLING.match(after)
            ):
                yield Span(match.start("v"), match.start("v") + words[n - 1].end(), "ADDRESS")
                break


# Hospitals whose names are common words, written without a head word, in any case: "transferred
# from Good Sam", "screened by HOLY CROSS REHAB", "go to Sacred Heart", "rehab(sacred heart
# Memorial)". Names many US and UK hospitals share (religious foundations and the best known),
# taken only after a move and its preposition or before a head word: none of them is clinical
# wording, and the cue keeps "a holy cross on the wall" a cross.
_HOSPITAL_NAME = (
    r"(?:sacred[ \t]+heart|holy[ \t]+(?:cross|family|name|redeemer|spirit|trinity)"
    r"|good[ \t]+(?:sam|samaritan|shepherd)|our[ \t]+lady[ \t]+of[ \t]+[a-z]+|mount[ \t]+sinai"
    r"|mt\.?[ \t]+sinai|cedars[ \t-]+sinai|beth[ \t]+israel|johns[ \t]+hopkins|mass[ \t]+general)"
)
_HOSPITAL_HEAD = (
    r"(?:memorial|hospital|hosp|rehab|medical[ \t]+cent(?:er|re)|campus|clinic|nursing[ \t]+home)"
)
# Without a head word, only after a move or a stay and its preposition: "transferred from",
# "go to", "seen at" ("brought in by good samaritan" is a passer-by, "faith in the Holy Spirit"
# and "artifact from holy cross pendant" are no places).
_MOVED = (
    r"(?:transfer(?:red|ring)?|xfer(?:red)?|sent|admitted|discharged|d/c(?:'?d)?|going|go|goes|went"
    r"|return(?:ed|ing|s)?|came|come|arrived|moved|taken|brought|seen|followed|accepted|referred"
    r"|records|films|imaging|stay(?:ed)?|was|is|been|prior|previously|slated)"
)
_NAMED_HOSPITAL = re.compile(
    rf"\b(?i:{_MOVED})(?:[ \t]+[A-Za-z]+)?[ \t]+(?i:to|from|at|in|into|via)[ \t]+(?:(?i:the)[ \t]+)?"
    rf"(?P<v>(?i:{_HOSPITAL_NAME})(?:[ \t]+(?i:{_HOSPITAL_HEAD}))?)\b"
    rf"|\b(?P<w>(?i:{_HOSPITAL_NAME})[ \t]+(?i:{_HOSPITAL_HEAD}))\b"
)


def _named_hospitals(text: str) -> Iterator[Span]:
    for match in _NAMED_HOSPITAL.finditer(text):
        group = "v" if match.group("v") else "w"
        yield Span(match.start(group), match.end(group), "INSTITUTION")


# Where someone works, after what they do there: "HUSBAND CEO OF IBM", "works at Home Depot",
# "retired from Bethlehem Steel". The employer is a capitalised name that opens with no clinical,
# generic or frequent word ("director of ICU", "works for the County", "RETIRED FROM NAVY" stay;
# "working with" is a therapy's: "WORKING WITH SPEECH").
_EMPLOYER = re.compile(
    r"\b(?i:works?|worked|working|employed|retired|ceo|cfo|coo|president|owner|founder|manager"
    r"|director|engineer|executive|chairman|employee)[ \t]+(?i:at|for|by|from|of)[ \t]+"
    rf"(?:(?i:the)[ \t]+)?(?P<v>{_UP}[\w&'’.-]*(?:[ \t]+{_UP}[\w&'’.-]*){{0,3}})"
)


def _employers(text: str) -> Iterator[Span]:
    for match in _EMPLOYER.finditer(text):
        first = match.group("v").split()[0]
        bare = _bare(first)
        if (
            is_ordinary(first)
            or bare in _INSTITUTION_GENERIC
            or bare in _GRAMMAR
            or is_common_english(bare, top=5_000)
        ):  # "RETIRED FROM ARMY", "WORKS AT RESTAURANT", "works for himself"
            continue
        end = match.start("v") + len(match.group("v").rstrip(".,"))  # "OF IBM." ends the sentence
        yield _trim_trailing(text, match.start("v"), end, "INSTITUTION")


# A hospital by its initials, which end in its H ("RPAH", "TTSH", "QMH"): after a study, a
# letter or a move and its preposition ("Previous MRI at RPAH", "referral letter from TTSH"), or
# before a department ("QMH A&E"); `rules.py`'s guesses take the same initials after more cues,
# for the tagger to confirm. Kinds of hospital, hormones and findings are none, here even where
# some hospital is known by them (RAH, PAH): these initials stand whatever the tagger says.
_STUDY_OR_MOVE = (
    rf"{_MOVED}|previous|outside|letter|report|reported|scan|scanned|study|studies|mri|ct|cxr|pet"
    r"|us|x-?ray|done|performed|obtained|treated|operated|delivered|admission|follow-?up|f/u"
)
_HOSPITAL_INITIALS = re.compile(
    rf"\b(?i:{_STUDY_OR_MOVE})(?:[ \t]+[A-Za-z]+)?[ \t]+(?i:to|from|at|in|by)[ \t]+"
    r"(?P<v>[A-Z]{2,5}H)\b(?![&'’-])(?![ \t]+(?i:clinic|service|team|protocol|pathway|crisis"
    r"|work-?up|eia|features|appearances|criteria|score|level|mutant|wild-?type)\b)"
    r"|\b(?P<w>[A-Z]{2,5}H)[ \t]+(?=(?:A&E|ED|ICU|ITU|(?i:emergency|casualty))\b)"
)
# A saint's hospital in lower case: "prior study from st. vincent's", "at st marys" (a census
# given name or no English word after "st", with its possessive; "st elevation" has none).
_SAINTS = re.compile(
    r"\b(?i:from|at|to|in|via)[ \t]+(?P<v>(?:st|saint)\.?[ \t]+(?P<saint>[a-z]{3,})(?:['’]s|s)\b)"
    r"(?![ \t]+(?:wort|fire|dance|valve))"
)
# A hospital head word of another language first, in any case: "klinik kesihatan ampang",
# "krankenhaus nord", "ziekenhuis gelderse vallei" (capitalised ones are `_HEAD_FIRST`'s).
_FOREIGN_HEAD_FIRST = re.compile(
    r"\b(?i:klinik|klinikum|krankenhaus|ziekenhuis|umc|chu|h[ôo]pital|ospedale|cl[íi]nica|sjukhus"
    r"|sykehus|sygehus|szpital|nemocnice|rumah[ \t]+sakit|puskesmas|hastanesi|spital|sairaala)"
    r"(?P<v>(?:[ \t]+[A-Za-zÀ-ÿ'’-]{2,}){1,3})"
)


# Words of a kind of hospital, not its name: "klinik kesihatan" (a health clinic), "rumah sakit
# umum" (a general hospital), "klinik pakar perubatan" (a specialist clinic).
_FOREIGN_KINDS = _wordset(
    """kesihatan pakar perubatan umum jiwa daerah besar universiti desa swasta bersalin gigi
    pembantu privada privado civile powiatowy wojewódzki psychiatrique jour für"""
)


_NOT_HOSPITAL_INITIALS = _GENERIC_FACILITIES | _wordset(
    """tsh acth pth fsh lh adh bnp bph lvh rvh lah rah sah ivh ich pph nph sdh edh dvh iph ddh hh
    hch mch dh pnh aih ash rh fh sh bmh sth crh trh gnrh ghrh ugh iih pah cteph fnh asdh cdh gdh amh
    cah siadh pih udh alh nash mash idh moh pmh psh cvvh cvvhd cvvhdf"""
)


def _hospital_initials(text: str) -> Iterator[Span]:
    for match in _HOSPITAL_INITIALS.finditer(text):
        group = "v" if match.group("v") else "w"
        word = match.group(group)
        if not is_ordinary(word) and word.lower() not in _NOT_HOSPITAL_INITIALS:
            yield Span(match.start(group), match.end(group), "INSTITUTION")
    for match in _SAINTS.finditer(text):
        saint = match.group("saint")
        if not is_ordinary(saint) and (
            census_key(saint) in ranks("given_names") or not is_common_english(saint)
        ):
            yield Span(match.start("v"), match.end("v"), "INSTITUTION")
    for match in _FOREIGN_HEAD_FIRST.finditer(text):
        end, named = match.start("v"), False
        for word in re.finditer(r"\S+", match.group("v")):
            token = _bare(word.group())
            if (
                is_ordinary(token)
                or token in _GRAMMAR
                or (is_common_english(token) and not is_place(token))
            ):
                break  # "krankenhaus nord", "UMC Utrecht"; "klinik kesihatan for BP" stops
            named = named or token not in _FOREIGN_KINDS
            end = match.start("v") + word.end()
        if named:  # "klinik kesihatan ampang"; "klinik kesihatan" alone is a kind of clinic
            yield Span(match.start(), end, "INSTITUTION")


def facility_spans(text: str) -> Iterator[Span]:
    """Facilities and wards by their head word or their number after a move, and their other
    mentions in the text ("TO QUARTERMAIN 3 … QUARTERMAIN3 DEVELOPED"): no clinical wording has
    these shapes, so they stand whatever the tagger says."""
    found = [
        *_named_before_head(text),
        *_campus_names(text),
        *_ward_names(text),
        *_home_towns(text),
        *_hospital_initials(text),
    ]
    yield from found
    yield from _named_hospitals(text)
    yield from _employers(text)
    # Other mentions, written as found (a lower-case name in lower case, capitals in capitals):
    # each word of the text looked up once, so many names cost no more than one.
    words = {
        w
        for s in found
        for w in re.findall(r"[^\W\d_]{4,}", text[s.start : s.end])
        if not (is_ordinary(w) or is_common_english(w) or _bare(w) in _INSTITUTION_GENERIC)
    }
    if words:
        for match in re.finditer(r"[^\W\d_]{4,}", text):
            if match.group() in words:
                yield Span(match.start(), match.end(), "INSTITUTION")


def _place_guesses(text: str) -> Iterator[Span]:
    """Places found by a word list after a cue, which the tagger must confirm."""
    yield from _lower_case_towns(text)
    yield from _listed_places(text)


# A town before its state's or province's code: "(Perth, WA)", "Towson, MD 21204", "Kingston,
# ON" (US, Canadian and Australian codes, in capitals; the town must be on the place list and,
# alone, none of the 1,000 most frequent English words or a clinical word: "Chest, PA" stays).
# Codes that are also clinical abbreviations ("Foley, DC", "Mobile, OK", "Chest, PA", "SC",
# "NT", "CA 19-9", "PE", "MS", "LA", "IN", "OR") are left out.
_REGION = (
    r"AL|AK|AZ|AR|CO|DE|FL|GA|IL|IA|KS|KY|MD|MA|MI|MN|MO|MT|NV|NH|NJ|NM|NY|NC|ND|OH|RI|SD|TN|TX"
    r"|UT|VT|VA|WA|WV|WI|WY|BC|QC|SK|YT|NU|NSW|VIC|QLD|TAS"
)
_TOWN_AND_REGION = re.compile(
    rf"(?<![\w'’-])(?P<v>{_UP}[\w'’-]+(?:[ \t]+{_UP}[\w'’-]+){{0,2}}),[ \t]*(?:{_REGION})\b(?![.'’-]?\w)"
)


def _towns_before_regions(text: str) -> Iterator[Span]:
    for match in _TOWN_AND_REGION.finditer(text):
        words = match.group("v").split()
        for first in range(len(words)):  # "Seen in Ellicott City, MD": the longest listed tail
            phrase = " ".join(words[first:])
            if is_place(phrase) and not (
                first == len(words) - 1
                and (
                    is_common_english(phrase, top=1_000)
                    or is_ordinary(phrase)
                    or _bare(phrase) in _EPONYMS
                )
            ):
                start = match.end("v") - len(phrase)
                yield Span(start, match.end("v"), "ADDRESS")
                break


def _address_spans(text: str) -> Iterator[Span]:
    yield from _towns_before_regions(text)
    for match in _ADDRESS_START.finditer(text):
        end = match.end()
        while tail := _ADDRESS_TAIL.match(text, end):
            place = tail.group("place")
            if place and all(is_ordinary(w) for w in place.split()):
                break
            end = tail.end()
        yield Span(match.start(), end, "ADDRESS")


def _institution_spans(text: str) -> Iterator[Span]:
    for match in _CAP_SEQUENCE.finditer(text):
        words = match.group().split()
        bare = [_bare(w) for w in words]
        if not any(b in _INSTITUTION_HEADS for b in bare):
            continue
        proper = [
            w
            for w, b in zip(words, bare, strict=True)
            if b not in _INSTITUTION_GENERIC and not is_ordinary(w) and not _is_abbreviation(w)
        ]
        if proper:
            start = match.start()
            for word, b in zip(words, bare, strict=True):
                if b in _INSTITUTION_GENERIC or not (is_ordinary(word) or _is_abbreviation(word)):
                    break  # "Royal Prince Alfred Hospital" keeps "Royal"
                start = text.index(word, start) + len(word)  # "… MALE ADMITTED FROM UNION HOSP"
            start = max(start, _after_last_verb_or_preposition(match, bare))
            start = len(text) - len(text[start:].lstrip())
            yield _trim_trailing(text, start, match.end(), "INSTITUTION")
    for match in _HEAD_FIRST.finditer(text):
        yield Span(match.start(), match.end(), "INSTITUTION")


def _after_last_verb_or_preposition(match: re.Match[str], bare: list[str]) -> int:
    """Where the name starts in a run of capitals: after the last grammar word before its head
    word that joins no name ("SCREENED BY HOLY CROSS REHAB" → "HOLY CROSS REHAB"; "University
    of Michigan Hospital" keeps "of")."""
    head = next(i for i, b in enumerate(bare) if b in _INSTITUTION_HEADS)
    offsets = [m.start() for m in re.finditer(r"\S+", match.group())]
    cut = [i for i in range(head) if bare[i] in _GRAMMAR and bare[i] not in _NAME_CONNECTORS]
    return match.start() + offsets[cut[-1] + 1] if cut else match.start()


def _trim_trailing(text: str, start: int, end: int, label: str) -> Span:
    """Drop trailing connectors and clinical words ('… Medical Center for ECMO' → '… Center')."""
    words = list(re.finditer(r"\S+", text[start:end]))
    while len(words) > 1:
        bare = _bare(words[-1].group())
        if bare in _INSTITUTION_HEADS or not (
            is_ordinary(words[-1].group()) or _is_abbreviation(words[-1].group())
        ):
            break
        words.pop()
    return Span(start, start + words[-1].end(), label)
