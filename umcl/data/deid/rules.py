"""The regular-expression rules: identifiers that have a shape of their own.

Dates (with their times), ages over 89, labelled RIS/insurance/device identifiers, phone numbers,
SSNs, e-mail, URLs, IP addresses, ZIP and postal codes, street addresses, institution names,
user names and "LAST, FIRST" names, each pattern with a validator that rejects its clinical
look-alikes ("9-10-11 ribs", "T10-T11", "PA, LATERAL"); and the record's own known identifiers.
Names found by their context are in `names.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from umcl.data.deid.lexicon import (
    _CLINICAL_ALNUM,
    _GRAMMAR,
    _INSTITUTION_GENERIC,
    _INSTITUTION_HEADS,
    _bare,
    _is_abbreviation,
    _wordset,
    is_ordinary,
    is_word_name,
)
from umcl.data.deid.lists import (
    MAX_PLACE_WORDS,
    is_common_english,
    is_person_name,
    is_place,
    protected_drugs,
)
from umcl.data.deid.names import _CAPS_WORD, _CUE, _ROLE, _TITLE, _UP
from umcl.data.deid.spans import Span

# --- the rules: (label, pattern, group to redact, validator) ---------------------------------
_MONTH_NAMES = sorted(
    _wordset(
        "january february march april may june july august september october november december "
        "jan feb mar apr jun jul aug sep sept oct nov dec"
    )
)
_MONTH = r"(?:" + "|".join(sorted(_MONTH_NAMES, key=len, reverse=True)) + r")\.?"
# Without a year, only a capitalised month is a date ("January 3", not "may 3").
_MONTH_CAP = (
    r"(?:"
    + "|".join(
        sorted(
            {m.title() for m in _MONTH_NAMES} | {m.upper() for m in _MONTH_NAMES},
            key=len,
            reverse=True,
        )
    )
    + r")\.?"
)
_DAY = r"(?:3[01]|[12]\d|0?[1-9])"
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
_TIME = (
    r"(?:(?:,?[ \t]+|T)(?:at[ \t]+)?(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
    r"(?:[ \t]*[AaPp]\.?[Mm]\b\.?)?|[ \t]+(?:at[ \t]+)?(?:[01]\d|2[0-3])[0-5]\d[ \t]*(?:hours|hrs|h)\b)?"
)
_RIB_CONTEXT = re.compile(
    r"^\s*(?:st|nd|rd|th)?\s*(?:(?:anterior|posterior|lateral|left|right|bilateral)\s+)*"
    r"(?:ribs?|vertebra\w*|levels?)\b",
    re.IGNORECASE,
)
_STATES = sorted(
    _wordset(
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
        "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR"
    )
)
_STATE = r"(?:" + "|".join(_STATES) + r")"
_PROVINCE = r"(?:AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT)"
_AU_STATE = r"(?:NSW|VIC|QLD|SA|WA|TAS|NT|ACT)"
_POSTCODE_LABEL = (
    r"(?i:zip(?:[ \t]*code)?|postal[ \t]*code|post[ \t]*code|postcode|pin[ \t]*code|pincode)"
)
_CA_POSTCODE = r"[A-Z]\d[A-Z][ \t]?\d[A-Z]\d"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}"
_PLACE = r"[A-Z][a-z'’]+(?:[ \t-][A-Z][a-z'’]+){0,2}"
_STREET = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Drive|Dr|Lane|Ln|Boulevard|Blvd|Way|Court|Ct|Place|Pl"
    r"|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Crescent|Cres|Close|Grove|Row"
    r"|Trail|Trl|Walk|Gardens|Path|Pike|Plaza|Alley|Mews|Rue|STREET|AVENUE|ROAD|DRIVE|LANE"
    r"|Marg|Salai|Nagar|Colony|Layout|Chowk|Bazaar|Bazar|Peth|Enclave|Vihar)"
)
_UNIT_NUMBER = r"\.?[ \t]*#?[ \t]*[A-Za-z]?\d+[A-Za-z]?\b"
# A home on its own ("Flat 3, …", "Plot 23"); "Room 5", "Unit 4" and "Floor 2" are parts of a
# hospital as often as of an address, so they count only after a street address.
_HOME_UNIT = rf"(?:Apt|Apartment|Suite|Ste|Flat|Plot|House|H\.?[ \t]?No|Door[ \t]+No){_UNIT_NUMBER}"
_UNIT = rf"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|Bldg|Building|Plot|House|H\.?[ \t]?No|Door[ \t]+No){_UNIT_NUMBER}"
_ID_VALUE = r"(?P<v>[A-Za-z0-9(][A-Za-z0-9()/-]*\d[A-Za-z0-9()/-]*|\d{2,}(?:[ \t]\d{2,}){1,3}\b|[xX*]{3}-[xX*]{2}-\d{4})"
# Field labels whose value is an identifier. Strong ones need one digit, weak ones (ordinary
# words like "order", "group", "visit") four.
_STRONG_ID_LABEL = (
    r"mrn|mr\s?#|mr\s?no\.?|med(?:ical)?\.?\s*rec(?:ord)?s?\.?(?:\s*(?:number|num|no\.?|#))?"
    r"|medical\s+record(?:\s+(?:number|no\.?|#))?|unit\s*(?:no\.?|number|#)|hosp(?:ital)?\.?\s*(?:#|no\.?|number|id)"
    r"|chart\s*(?:no\.?|number|#)?|patient\s*id|pt\.?\s*id|pid|uhid|cr\s*no\.?|nhs\s*(?:no\.?|number)"
    r"|health\s*card|acc(?:ession)?\.?(?:\s*(?:number|num|no\.?|#))*|accn|exam\s*(?:#|no\.?|number)"
    r"|study\s*(?:id|no\.?|number)|case\s*(?:#|no\.?|number)|req(?:uisition)?\.?\s*(?:#|no\.?|number)?"
    r"|ssn|ss\s?#|social\s+security(?:\s+(?:number|no\.?|#))?|soc\.?\s*sec\.?(?:\s*(?:number|no\.?|#))?"
    r"|member(?:ship)?\s*(?:id|no\.?|number|#)|subscriber\s*(?:id|no\.?|number|#)|policy\s*(?:id|no\.?|number|#)?"
    r"|group\s*(?:id|no\.?|number|#)|medicare(?:\s*(?:id|no\.?|number|#))?|medicaid(?:\s*(?:id|no\.?|number|#))?"
    r"|beneficiary\s*(?:id|no\.?|number|#)|insurance\s*(?:id|no\.?|number|#)|plan\s*(?:id|no\.?|number|#)"
    r"|acct\.?(?:\s*(?:#|no\.?|number))?|account(?:\s*(?:#|no\.?|number))?|encounter\s*(?:#|no\.?|number|id)?"
    r"|fin|csn|visit\s*(?:#|no\.?|number|id)|serial(?:\s*(?:#|no\.?|number))?|s/n|sn|lot(?:\s*(?:#|no\.?|number))?"
    r"|udi|device\s*id|licen[cs]e(?:\s*(?:#|no\.?|number|plate))?|lic\.?(?:\s*(?:#|no\.?))?|dea(?:\s*#)?|npi"
    r"|gmc|nmc|ahpra|plate|certificate\s*(?:#|no\.?|number)?|order\s*(?:#|no\.?|number)|order/accession"
)
_WEAK_ID_LABEL = (
    r"order|record|requisition|exam|study|visit|group|member|subscriber|insurance|id|no\.|number|#"
)
_PHONE_LABEL = (
    r"(?:phone|ph|tel(?:ephone)?|cell|mobile|mob|pager|pgr|beeper|bleep|ext(?:ension)?|fax"
    r"|facsimile|callback|call\s*back|contact)"
)
_SEP = r"[ \t]*(?:[:#=]|\bis\b|\bof\b)?[ \t]*(?:#[ \t]*)?"

_Validator = Callable[[re.Match[str], str], bool]


def _always(match: re.Match[str], text: str) -> bool:
    return True


def _digits(value: str) -> int:
    return sum(c.isdigit() for c in value)


def _plausible_numeric_date(match: re.Match[str], text: str) -> bool:
    """03/14/2021 or 14.03.2021, but not '9-10-11 ribs' or a version number."""
    a, b = int(match.group("a")), int(match.group("b"))
    if not ((a <= 12 and b <= 31) or (b <= 12 and a <= 31)) or a == 0 or b == 0:
        return False
    before = text[max(0, match.start() - 12) : match.start()].lower()
    word = re.search(r"([a-z][\w/]*)[ \t:=]*$", before)
    if word and word.group(1) in _NOT_A_DATE_BEFORE:
        return False  # ventilator settings: "AC 12/10/40" (rate, PEEP, FiO2)
    return not _RIB_CONTEXT.match(text[match.end() :]) and not re.search(
        r"ribs?\s*$|levels?\s*$", before
    )


def _long_digits(match: re.Match[str], text: str) -> bool:
    return _digits(match.group()) >= 7


def _international_phone(match: re.Match[str], text: str) -> bool:
    return _digits(match.group()) >= 8


def _weak_label_value(match: re.Match[str], text: str) -> bool:
    return _digits(match.group("v")) >= 4


def _not_temperature(match: re.Match[str], text: str) -> bool:
    """'91F with cough' is an age; 'fever to 102F' is a temperature."""
    return not re.search(
        r"(?:fever|febrile|temp\w*|T)\W*(?:to|of|max)?\W*$",
        text[max(0, match.start() - 24) : match.start()],
        re.IGNORECASE,
    )


def _not_spine_levels(match: re.Match[str], text: str) -> bool:
    """'T10-T11', 'C5-C6-C7' are vertebral levels, and '700x10', '20-30cc', '1000u' volumes,
    rates and doses: not identifiers."""
    value = match.group()
    return not re.fullmatch(r"[CTLS]\d{1,2}(?:-[CTLS]?\d{1,2})*", value) and not re.fullmatch(
        r"\d+(?:-\d+)?(?:x\d+|cc|ml|mls|mg|mcg|u|units|hr|kg|mm|cm|l|meq|mmhg|s|am|pm|h)",
        value,
        re.I,
    )


def _username(match: re.Match[str], text: str) -> bool:
    return match.group().lower() not in _CLINICAL_ALNUM


def _url_domain(match: re.Match[str], text: str) -> bool:
    """A bare domain needs a path, two dots or a common top-level domain ('clear.In' is a typo)."""
    value = match.group()
    return (
        "/" in value
        or value.count(".") >= 2
        or value.lower().rsplit(".", 1)[-1] in {"com", "org", "net", "edu", "gov"}
    )


def _ipv6(match: re.Match[str], text: str) -> bool:
    return "::" in match.group() or bool(re.search(r"[a-f]", match.group(), re.IGNORECASE))


def _non_ordinary_value(match: re.Match[str], text: str) -> bool:
    return not all(is_ordinary(w) for w in match.group("v").split())


def _caps_last_first(match: re.Match[str], text: str) -> bool:
    """'KOWALSKI, ANNA' is a name, 'PA, LATERAL' is not."""
    last, first = match.group("last"), match.group("first")
    words = [*last.split(), first]  # "PER-OLOF" is a name, "PER" alone a word
    if any(is_common_english(w) and not is_person_name(w) for w in words):
        return False  # a note in capitals: "DENIES PAIN, MEDICATED", "GRAVITY, DRAINING"
    return not all(
        is_ordinary(w) or (_is_abbreviation(w) and not is_person_name(w)) for w in last.split()
    ) and not (
        is_ordinary(first)
        or (
            _is_abbreviation(first)
            and not all(is_person_name(p) for p in first.split("-"))
            and not ("-" in first and all(p.isalpha() and len(p) >= 3 for p in first.split("-")))
        )
    )  # "ABERG, LARS-ERIK": short given names in capitals are names, not abbreviations


# Under Safe Harbor a year of birth is an identifier when it implies an age over 89. Reports are
# read years after they were written, so the age is taken as of today: this can only redact
# more (a report of 2015 on a patient born in 1930, then 85), never less.
_OLDEST_HARMLESS_BIRTH_YEAR = date.today().year - 89


def _birth_year_over_89(match: re.Match[str], text: str) -> bool:
    return int(match.group("v")) < _OLDEST_HARMLESS_BIRTH_YEAR


# What a number followed by one of these is not: an age ("Pt is 93% on air", "is 95 kg").
_NOT_AGE_UNIT = (
    r"(?![ \t]*(?:%|percent|per[ \t]*cent|mm|cm|kg|kgs|lbs?|g\b|mg|mcg|ml|l\b|mmhg|mmol|bpm"
    r"|beats|breaths|degrees|°|units|min|mins|minutes|hours|hrs|h\b|days|weeks|wks|months|x\b"
    r"|[/.]\d))"
)


def _after_break(match: re.Match[str], text: str) -> bool:
    """'M 95 SOB' opens a line or a field; 'level M 95' does not."""
    before = text[: match.start()].rstrip(" \t")
    return (not before or before[-1] in "\n:;(,-") and _not_temperature(match, text)


def _placeholder_free(match: re.Match[str], text: str) -> bool:
    return not all(
        is_ordinary(w) or _is_abbreviation(w) for w in re.findall(r"[\w'’]+", match.group("v"))
    )


# Words after which a bare month/day is a date ("comparison 8/25", "Mon 7/1", "TRANS: 03/16").
_DATE_CUE = (
    r"on|dated|from|since|until|till|through|thru|comparison|compared(?:[ \t]+(?:with|to))?|prior"
    r"|previous|last|seen|done|performed|obtained|admitted|admission|intubated|extubated|discharged"
    r"|transferred|operated|surgery|trans|dict|dictated|typed|transcribed|verified|signed|date|dos"
    r"|(?:exam|study|film|films|scan|ct|cxr|mri|x-ray|radiograph|echo|pet|us)[ \t]+(?:of|on|dated)"
    r"|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
)
# What a date is of: "the 3/15 MDT", "the 4/22 thoracic meeting".
_DATED_EVENT = (
    r"mdt|mdm|meeting|clinic|conference|tumou?r[ \t]+board|appointment|visit|scan|study|exam|film"
)
# What follows a fraction, a ratio or a dose, never a date.
_NOT_A_FRACTION = (
    r"(?![ \t]*(?i:%|strength|str\b|ns\b|normal|saline|dose|doses|of[ \t]|mg|mcg|ml|l\b|mmhg|murmur|power"
    r"|units?|tabs?|tablets?|x\b|cm|mm|hrs?|hours?|days?|weeks?|wks?|months?|sec|split|ratio|rule|way"
    r"|pain|scale|bl|cx|positive|negative))"
)
# Words before a month/day shape that make it a score, a setting or a fraction: "Grade 2/6",
# "Power 4/5", "PS 10/5", "D5 1/2", "in 6/52" (weeks, as British notes write them).
_NOT_A_DATE_BEFORE = frozenset(
    [
        "grade",
        "power",
        "strength",
        "score",
        "scale",
        "ps",
        "psv",
        "peep",
        "cpap",
        "bipap",
        "ipap",
        "epap",
        "simv",
        "ac",
        "d5",
        "d10",
        "pain",
        "gcs",
        "apgar",
        "motor",
        "mrc",
        "ratio",
        "murmur",
        "vent",
        "settings",
        "setting",
        "tone",
        "reflexes",
    ]
)
# Words before a British duration ("in 3/12", "for 2/7"), which a month/day shape can also be.
_DURATION_BEFORE = frozenset(["in", "for", "after", "within", "over", "every", "each", "x"])
# A British duration counts days, months or weeks: the number after the slash is 7, 12 or 52.
_DURATION_DENOMINATORS = frozenset([7, 12, 52])
# What an ordinal counts when it is no date: "the 5th rib", "14th percentile", "2nd cycle".
_ORDINAL_NOUNS = (
    r"rib|ribs|intercostal|ics|vertebra|vertebrae|vertebral|percentile|centile|cervical|thoracic|lumbar|sacral"
    r"|metacarpal|metatarsal|toe|finger|digit|compartment|cranial|nerve|day|week|month|year|cycle|dose"
    r"|line|generation|order|degree|time|attempt|trimester|decade|floor|ventricle|segment|branch"
)


def _word_before(match: re.Match[str], text: str) -> str:
    before = re.search(
        r"([A-Za-z][\w/]*)[ \t:=]*$", text[max(0, match.start("v") - 24) : match.start("v")]
    )
    return before.group(1).lower() if before else ""


def _not_after_a_measure(match: re.Match[str], text: str) -> bool:
    return _word_before(match, text) not in _NOT_A_DATE_BEFORE


def _month_day(match: re.Match[str], text: str) -> bool:
    """A plausible month and day, either way round (US 8/25, European 25/8), not after a word
    that makes it a score or a setting."""
    first, second = (int(x) for x in re.split(r"[/-]", match.group("v")))
    if not _not_after_a_measure(match, text):
        return False
    if second in _DURATION_DENOMINATORS and _word_before(match, text) in _DURATION_BEFORE:
        return False  # "in 6/52", "for 2/7"; "plan for 10/3" and "restent in 4/21" are dates
    return (1 <= first <= 12 and 1 <= second <= 31) or (1 <= first <= 31 and 1 <= second <= 12)


def _town_follows(match: re.Match[str], text: str) -> bool:
    """A postcode needs its town after it: "69003 Lyon", not "10000 Units" or "1500 CC Lasix"."""
    town = re.match(rf"[ \t]+({_UP}[\w'’-]+)", text[match.end("v") :])
    return (
        town is not None and not is_ordinary(town.group(1)) and not _is_abbreviation(town.group(1))
    )


def _town_after_postcode(match: re.Match[str], text: str) -> bool:
    before = text[: match.start()]
    code = re.search(
        r"(?<![\w.,/-])(?:\d{4}[ \t]?[A-Z]{2}|\d{5}|\d{2}-\d{3}|\d{3}[ \t]\d{2})[ \t]*$", before
    )
    word = match.group("v").split()[0]
    return code is not None and not is_ordinary(word) and not _is_abbreviation(word)


def _facility_name(match: re.Match[str], text: str) -> bool:
    """An abbreviation of a hospital, or a capitalised name whose first word is no clinical or
    frequent English word ("Kingsmead Royal", not "Emergency" or "Radiology")."""
    value = match.group("v")
    if value.isupper():
        return len(value) >= 2
    first = value.split()[0]
    return not is_ordinary(first) and not is_common_english(_bare(first), top=10_000)


@dataclass(frozen=True)
class _Rule:
    label: str
    pattern: re.Pattern[str]
    group: str | int = 0
    valid: _Validator = _always


def _rule(
    label: str, pattern: str, group: str | int = 0, valid: _Validator = _always, flags: int = 0
) -> _Rule:
    return _Rule(label, re.compile(pattern, flags), group, valid)


_I = re.IGNORECASE
_RULES: list[_Rule] = [
    # --- contact and network identifiers
    _rule("EMAIL", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    _rule("URL", r"\b(?:https?|s?ftp|ftps)://[^\s<>\"']+[^\s<>\"'.,;:)\]]", flags=_I),
    _rule("URL", r"\bwww\d?\.[^\s<>\"']+[^\s<>\"'.,;:)\]]", flags=_I),
    _rule(
        "URL",
        r"\b(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|mil|health|local|io|info|uk|ca|au|de|fr|nz|ie|us|in)"
        r"\b(?:/[^\s<>\"']*[^\s<>\"'.,;:)\]])?/?",
        valid=_url_domain,
        flags=_I,
    ),
    _rule(
        "IP", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?::\d{1,5})?\b"
    ),
    _rule("IP", r"(?<![\w:])(?:[0-9a-f]{1,4}:{1,2}){2,7}[0-9a-f]{1,4}\b", valid=_ipv6, flags=_I),
    # --- dates (with their times) before anything numeric
    _rule("DATE", rf"\b{_YEAR}([-/.])(?:0?[1-9]|1[0-2])\1{_DAY}(?!\d){_TIME}(?:Z|[+-]\d\d:?\d\d)?"),
    _rule(
        "DATE",
        rf"(?<![\d.])(?P<a>\d{{1,2}})(?P<s>[/.-])(?P<b>\d{{1,2}})(?P=s)(?:\d{{4}}|\d{{2}})(?![\d])(?!\.\d){_TIME}",
        valid=_plausible_numeric_date,
    ),
    _rule(
        "DATE",
        r"\b(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b(?:[ \t]?[T-]?[ \t]?\d{4,6}\b)?",
    ),
    _rule(
        "DATE", rf"\b{_DAY}{_ORD}(?:[ \t]+of)?[ \t-]+{_MONTH},?[ \t-]+{_YEAR}\b{_TIME}", flags=_I
    ),
    _rule("DATE", rf"\b{_MONTH}[ \t-]+{_DAY}{_ORD},?[ \t-]+{_YEAR}\b{_TIME}", flags=_I),
    _rule(
        "DATE",
        rf"\b(?:the[ \t]+)?{_DAY}(?:st|nd|rd|th)[ \t]+(?:of[ \t]+)?{_MONTH}(?![a-z])",
        flags=_I,
    ),
    _rule("DATE", rf"\b{_DAY}[ \t]+{_MONTH_CAP}(?![a-z])"),
    _rule("DATE", rf"\b{_MONTH_CAP}[ \t]+{_DAY}{_ORD}\b(?![ \t]*(?:mm|cm|%|x\b))"),
    _rule("DATE", rf"\b{_MONTH},?[ \t]+(?:of[ \t]+)?{_YEAR}\b", flags=_I),
    # a day (or a night's two days) and a month with a two-digit year after a comma, as notes
    # head a shift: "28 Oct, 88", "1->2 nov, 96"
    _rule(
        "DATE",
        rf"\b{_DAY}{_ORD}(?:[ \t]*(?:-|->|–|to)[ \t]*{_DAY}{_ORD})?[ \t]+{_MONTH},[ \t]*['’]?\d{{2}}\b"
        rf"(?![ \t]*(?:mm|cm|%|x\b))",
        flags=_I,
    ),
    # a written month with a two-digit year: "5-Mar-19", "3rd Jan '19", "Mar-19", "Jan '19"
    _rule("DATE", rf"\b{_DAY}{_ORD}([/.-]){_MONTH}\1['’]?\d{{2}}(?!\d|\.\d)", flags=_I),
    _rule(
        "DATE",
        rf"\b{_DAY}{_ORD}[ \t]+{_MONTH_CAP}[ \t]+['’]?\d{{2}}\b(?![ \t]*(?:mm|cm|%|x\b))",
    ),
    _rule("DATE", rf"\b{_MONTH_CAP}(?:-['’]?|[ \t]+['’])\d{{2}}\b(?![ \t]*(?:mm|cm|%))"),
    # holidays name a day of the year: "Christmas Day 2019", "on Boxing Day", "Diwali 2021"
    _rule(
        "DATE",
        r"\b(?:(?:Christmas(?![ \t-]+(?:tree|disease|factor))|New[ \t]+Year['’]?s)(?:[ \t]+(?:Day|Eve))?|Boxing[ \t]+Day"
        r"|Easter(?:[ \t]+(?:Sunday|Monday|Saturday))?|Good[ \t]+Friday|Thanksgiving(?:[ \t]+Day)?"
        r"|Diwali|Deepavali|Holi|Eid(?:[ \t-]+(?:al|ul)[ \t-]+(?:Fitr|Adha))?|Pongal|Onam|Hogmanay"
        r"|(?:Anzac|Australia|Canada|Independence|Republic|Memorial|Labou?r|Veterans['’]?|Remembrance"
        r"|Valentine['’]?s|St\.?[ \t]+Patrick['’]?s|Martin[ \t]+Luther[ \t]+King)[ \t]+Day"
        r"|Halloween|Guy[ \t]+Fawkes(?:[ \t]+Night)?|Bonfire[ \t]+Night|(?:Chinese|Lunar)[ \t]+New[ \t]+Year"
        r")\b(?:,?[ \t]+(?:of[ \t]+)?(?:1[89]\d\d|20\d\d)\b)?|\bRamadan,?[ \t]+(?:1[89]\d\d|20\d\d)\b",
    ),
    # a year of birth that implies an age over 89: "Born in 1928", "YOB: 1930", "b. 1927"
    _rule(
        "DATE",
        r"(?:\b(?i:born|yob|y\.o\.b\.?|year[ \t]+of[ \t]+birth|birth[ \t]*year|dob|d\.o\.b\.?"
        r"|date[ \t]+of[ \t]+birth)|(?<![\w.])b\.)[ \t]*[:#-]?[ \t]*(?:(?i:in)[ \t]+)?(?P<v>1[89]\d\d|20\d\d)\b(?![/.-]\d)",
        "v",
        _birth_year_over_89,
    ),
    _rule("DATE", rf"\b(?:0?[1-9]|1[0-2])/{_YEAR}\b"),
    _rule(
        "DATE",
        rf"\b(?:on|dated|from|since|until|through|thru)[ \t]+(?P<v>(?:0?[1-9]|1[0-2])/(?:3[01]|[12]\d|0?[1-9]))\b(?![/\d]){_NOT_A_FRACTION}",
        "v",
        flags=_I,
    ),
    _rule(
        "DATE",
        r"\b(?:dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*date)\s*[:#]?\s*(?P<v>\d[\d/.-]{5,9}\d)",
        "v",
        flags=_I,
    ),
    # month/day without a year where the words around it say it is a date: "comparison 8/25",
    # "Admitted 12/24", "Seen Thursday 6/12", "TRANS: 03/16", "the 4/22 thoracic MDT", "CT of
    # 29/11"; never a ratio, a dose or a fraction ("BP 120/80", "1/2 NS", "grade 2/6 murmur")
    _rule(
        "DATE",
        rf"\b(?i:{_DATE_CUE})(?:[ \t]*[:,-][ \t]*|[ \t]+)(?:(?i:the|on|of)[ \t]+)?(?P<v>\d{{1,2}}/\d{{1,2}})(?![/\d]|\.\d){_NOT_A_FRACTION}",
        "v",
        _month_day,
    ),
    _rule(
        "DATE",
        rf"\b(?i:the)[ \t]+(?P<v>\d{{1,2}}/\d{{1,2}})(?=[ \t]+(?:\w+[ \t]+)?(?i:{_DATED_EVENT})\b)",
        "v",
        _month_day,
    ),
    # month and two-digit year, a year no day can be: "stent to RCA 12/82", "MI 3/99"
    # ("6/52" is six weeks in British notes, never a year)
    _rule(
        "DATE",
        rf"(?<![\w/.])(?P<v>(?:0?[1-9]|1[0-2])/(?!52\b)(?:3[2-9]|[4-9]\d|0\d))(?![/\d]|\.\d|[ \t]*%){_NOT_A_FRACTION}",
        "v",
        _not_after_a_measure,
    ),
    # a day of the month by its ordinal after a date preposition: "on the 14th", "since the 2nd"
    _rule(
        "DATE",
        rf"\b(?i:on|since|from|until|till|by|before|after|dated)[ \t]+(?:(?i:the)[ \t]+)?(?P<v>(?:3[01]|[12]\d|0?[1-9])(?i:st|nd|rd|th))\b"
        rf"(?![ \t]+(?:of[ \t]+)?(?:[A-Za-z]+[ \t]+){{0,2}}(?i:{_ORDINAL_NOUNS})\b)",
        "v",
    ),
    # --- ages over 89
    _rule(
        "AGE",
        r"\b(?:9\d|1[01]\d)[ \t]*-?[ \t]*(?:years?|yrs?|yo|y/o|y\.o\.?|y)\b\.?(?:[ \t]*-?[ \t]*old)?",
        flags=_I,
    ),
    _rule("AGE", r"\bage[sd]?\b[ \t]*[:=]?[ \t]*(?:of[ \t]+)?(?:9\d|1[01]\d)\b", flags=_I),
    _rule("AGE", r"\b(?:9\d|1[01]\d)(?:[MF]|[ \t]?(?:yo|y/o)[ \t]?[MF])\b", valid=_not_temperature),
    _rule(
        "AGE",
        r"\b(?:ninety|(?:one[ \t-]+)?hundred)(?:[ \t-]+(?:and[ \t]+)?(?:one|two|three|four|five|six|seven|eight|nine|ten))?(?=[ \t-]+(?:years?|yrs?|yo)\b)",
        flags=_I,
    ),
    _rule(
        "AGE",
        r"\bage[sd]?[ \t]+(?:of[ \t]+)?(?:ninety|(?:one[ \t-]+)?hundred)(?:[ \t-]+(?:one|two|three|four|five|six|seven|eight|nine))?\b",
        flags=_I,
    ),
    # sex and age together: "F/93", "93/F", "96Y/M", "92 Yrs / F", "M 95" at the start of a field
    _rule(
        "AGE",
        rf"\b(?:[MF]|male|female)[ \t]*/[ \t]*0?(?:9\d|1[01]\d)(?:[ \t]*(?:y|yrs?|years?)\b)?(?![\d/]){_NOT_AGE_UNIT}",
        flags=_I,
    ),
    _rule(
        "AGE",
        r"\b0?(?:9\d|1[01]\d)[ \t]*(?:y|yrs?|years?)?[ \t]*/[ \t]*(?:[MF]|male|female)\b",
        flags=_I,
    ),
    _rule(
        "AGE", rf"(?<![\w/])[MF][ \t]*,?[ \t]+(?:9\d|1[01]\d)\b{_NOT_AGE_UNIT}", valid=_after_break
    ),
    # after a word for the patient: "Pt, 93, with cough", "Elderly (91) lady"
    _rule(
        "AGE",
        rf"\b(?:pt|patient|lady|man|woman|gentleman|gent|male|female|elderly|nonagenarian|resident)"
        rf"[ \t]*(?:,|\()[ \t]*(?:aged[ \t]+)?(?P<v>(?:9\d|1[01]\d)(?:[ \t]*(?:y|yo|yrs?|years?)\b)?)"
        rf"{_NOT_AGE_UNIT}(?=[ \t]*(?:[,);:.]|-|$))",
        "v",
        flags=_I,
    ),
    # DICOM's age string (PatientAge "091Y") and "Age: 091Y"
    _rule("AGE", r"\b0(?:9\d|1[01]\d)Y\b"),
    # "Pt is 93", "the patient is 97 and", "she was 94"
    _rule(
        "AGE",
        rf"\b(?:pt|patient|he|she|who|lady|man|woman|gentleman|gent)[ \t]+(?:is|was)[ \t]+"
        rf"(?:now[ \t]+)?(?P<v>9\d|1[01]\d)\b{_NOT_AGE_UNIT}",
        "v",
        flags=_I,
    ),
    # --- labelled identifiers: RIS fields, insurance, licences, devices, phones
    _rule(
        "ID",
        rf"\b(?:{_STRONG_ID_LABEL})(?:\s*(?:number|num|no\.?|id|code))?{_SEP}{_ID_VALUE}",
        "v",
        flags=_I,
    ),
    _rule("ID", rf"\b(?:{_WEAK_ID_LABEL}){_SEP}{_ID_VALUE}", "v", _weak_label_value, flags=_I),
    _rule(
        "PHONE",
        rf"\b{_PHONE_LABEL}\.?(?:\s*(?:no\.?|number|#))?{_SEP}(?P<v>\+?\(?\d[\d \t().-]{{2,}}\d)",
        "v",
        _weak_label_value,
        flags=_I,
    ),
    _rule("PHONE", r"\bx(?P<v>\d[\d-]{3,}\d)\b", "v"),
    _rule("PHONE", r"\b(?:ext(?:ension)?|x)\.?[ \t]*(?P<v>\d{3,6})\b", "v", flags=_I),
    # --- numbers with the shape of an identifier
    _rule(
        "PHONE", r"(?<![\w+])(?:\+?1[ \t.-]?)?(?:\(\d{3}\)[ \t]?|\d{3}[ \t.-])\d{3}[ \t.-]\d{4}\b"
    ),
    _rule(
        "PHONE", r"(?<![\w])\+\d{1,3}(?:[ \t.-]?\(?\d{1,5}\)?){2,5}\b", valid=_international_phone
    ),
    _rule("PHONE", r"(?<![\w.])\(?0\d{1,4}\)?[ \t-]\d{3,4}[ \t-]?\d{3,4}\b"),
    _rule("PHONE", r"\b\d{3}-\d{4}\b"),
    _rule(
        "SSN", r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3}[ \t]\d{2}[ \t]\d{4}\b|\b[xX*#]{3}-[xX*#]{2}-\d{4}\b"
    ),
    _rule("ID", r"\b\d{6,}\b"),  # a run of six digits is a number of a record, not a measure
    _rule(
        "ID",
        r"\b(?=[A-Za-z0-9-]*[A-Za-z])(?=(?:[A-Za-z-]*\d){4})[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b",
        valid=_not_spine_levels,
    ),
    # DICOM UIDs ("1.2.826.0.1.3680043…"): five or more dotted parts, never a date or an address
    _rule("ID", r"(?<![\w.])\d+(?:\.\d+){4,}(?![\w.])"),
    # national and insurance numbers in groups: Medicare "2123 45670 1", IHI, Aadhaar
    _rule("ID", r"\b\d{4}[ \t]\d{5}[ \t]\d(?:[ \t]?\d|/\d)?\b(?![ \t]*(?:mm|cm|x\b|%))"),
    _rule("ID", r"\b\d{3,5}(?:[ \t]\d{3,5}){2,3}\b", valid=lambda m, t: _digits(m.group()) >= 10),
    # --- places
    _rule("ZIP", rf"\b{_STATE}[ \t]+(?P<v>\d{{5}}(?:-\d{{4}})?)\b", "v"),
    _rule("ZIP", r"\b\d{5}-\d{4}\b"),
    _rule(
        "ZIP",
        rf"\b(?:zip(?:[ \t]*code)?|postal[ \t]*code|post[ \t]*code|postcode)[ \t]*[:#]?[ \t]*(?P<v>\d{{5}}(?:-\d{{4}})?|{_CA_POSTCODE}|{_UK_POSTCODE})",
        "v",
        flags=_I,
    ),
    _rule("ZIP", rf"\b{_CA_POSTCODE}\b|\b{_UK_POSTCODE}\b"),
    _rule("ZIP", rf"\b{_AU_STATE}[ \t]+(?P<v>\d{{4}})\b", "v"),
    # Australian, New Zealand and Indian postcodes after their label, and the place after them
    _rule(
        "ZIP",
        rf"\b{_POSTCODE_LABEL}[ \t]*[:#-]?[ \t]*(?P<v>\d{{4}}|[1-9]\d{{2}}[ \t]?\d{{3}})\b",
        "v",
    ),
    _rule(
        "ADDRESS",
        rf"\b{_POSTCODE_LABEL}[ \t]*[:#-]?[ \t]*(?:\d{{4,6}}|\d{{3}}[ \t]\d{{3}}|{_CA_POSTCODE}|{_UK_POSTCODE})[ \t]*[,;-]?[ \t]*(?P<v>{_PLACE})",
        "v",
        _non_ordinary_value,
    ),
    # "…, Bangalore 560011", "…, New Delhi 110001": a place before an Indian PIN code
    _rule(
        "ADDRESS",
        rf",[ \t]*(?P<v>{_PLACE})[ \t]*[-–]?[ \t]*[1-8]\d{{2}}[ \t]?\d{{3}}\b",
        "v",
        _non_ordinary_value,
    ),
    # institution fields of RIS and DICOM headers: "Institution: ST MARY'S GENERAL"
    _rule(
        "INSTITUTION",
        r"\b(?i:institution(?:[ \t]+name)?|hospital(?:[ \t]+name)?|facility(?:[ \t]+name)?"
        r"|(?:referring|sending|performing|treating|transferring)[ \t]+(?:hospital|facility|institution|centre|center|site))"
        r"[ \t]*:[ \t]*(?P<v>[^\s:;,.][^\n:;]*?)(?=[ \t]*(?:$|\n|;|[ \t]{2,}|\.(?:[ \t]|$)|,[ \t]*[A-Z][a-z]+[ \t]*:))",
        "v",
        _placeholder_free,
        flags=re.MULTILINE,
    ),
    _rule(
        "ADDRESS",
        rf"\b(?P<v>{_PLACE}),?[ \t]+(?:{_STATE}[ \t]+\d{{5}}|{_PROVINCE}[ \t]+{_CA_POSTCODE}|{_AU_STATE}[ \t]+\d{{4}})\b",
        "v",
    ),
    _rule("ADDRESS", rf"\b(?P<v>{_PLACE})[ \t]+{_UK_POSTCODE}\b", "v"),
    _rule(
        "ADDRESS",
        rf"\b(?i:lives|living|resides|residing|resident|residence|home|moved|relocated|originally)[ \t]+(?i:in|at|of|to|from)[ \t]+(?P<v>{_PLACE})",
        "v",
        _non_ordinary_value,
    ),
    # postcodes of other countries before their town: Dutch "1016 DX Amsterdam", French and German
    # "69003 Lyon", "50674 Köln", Polish "00-514 Warszawa", Swedish "114 28 Stockholm"
    _rule(
        "ZIP",
        rf"(?<![\w.,/-])(?P<v>\d{{4}}[ \t]?(?!CC|ML|MG|MM|CM|KG|IU|HR|PM|AM|BP|HG)[A-Z]{{2}}|\d{{5}}|\d{{2}}-\d{{3}}|\d{{3}}[ \t]\d{{2}})"
        rf"(?=[ \t]+{_UP}[\w'’-]+)",
        "v",
        _town_follows,
    ),
    _rule(
        "ADDRESS",
        rf"(?<=[\dA-Z])[ \t]+(?P<v>{_UP}[\w'’-]+(?:[ \t-]{_UP}[\w'’-]+)?)",
        "v",
        _town_after_postcode,
    ),
    # Irish Eircodes and lower-case UK postcodes ("le65 2pq")
    _rule("ZIP", r"\b[AC-FHKNPRTV-Y]\d[\dW][ \t]?(?=[A-Z\d]{4}\b)(?=[A-Z]*\d)[A-Z\d]{4}\b"),
    _rule("ZIP", r"\b[a-z]{1,2}\d[a-z\d]?[ \t]\d(?!cm|mm|ml|mg|kg|hr|st|nd|rd|th)[a-z]{2}\b"),
    # vehicle plates: after their label, and the UK's shape anywhere ("LK19 XTF")
    _rule(
        "ID",
        r"\b(?i:registration|reg\.?|number[ \t]+plate|licen[cs]e[ \t]+plate|plate|vehicle|rego|kenteken|kennzeichen)"
        r"(?:[ \t]+(?i:no\.?|number|mark))?(?:[ \t]*[:#][ \t]*|[ \t]+)(?P<v>[A-Z0-9]{1,4}(?:[ \t-]?[A-Z0-9]{1,4}){1,3})\b",
        "v",
        lambda m, t: bool(re.search(r"\d", m.group("v")) and re.search(r"[A-Z]", m.group("v"))),
    ),
    _rule("ID", r"\b[A-Z]{2}\d{2}[ \t]?[A-Z]{3}\b"),
    # street first, number after (Portuguese, Italian, Spanish, Polish, Korean, German, Japanese):
    # "Rua das Palmeiras 310", "Via Roma 27", "ul. Marszałkowska 84/92", "Teheran-ro 152",
    # "Sendlinger Str. 12", "Umeda 2-4-9"
    _rule(
        "ADDRESS",
        rf"\b(?:(?:Rua|Via|Viale|Av\.|Avenida|Avda\.?|Calle|Carrer|ul\.|Ul\.|ulica|Ulica|al\.|Al\.|Aleja|Strada|rue|Rue|Piazza|Praça|Plac)"
        rf"[ \t]+(?:(?i:de|da|das|do|dos|del|della|di|la|le|des)[ \t]+)*{_UP}[a-zà-ÿ'’-][\w'’-]*(?:[ \t]+{_UP}[\w'’-]*)*"
        rf"|{_UP}[\w'’]*-(?:ro|gil|dong|daero)|{_UP}[\w'’-]*[ \t]+(?:Str\.|Straße|Strasse|Weg|Platz|Allee|Gasse))"
        rf"[ \t]+\d{{1,5}}[a-z]?(?:/\d+)?(?:,?[ \t]+(?:m\.|apto|apt\.?|piso|int\.)[ \t]*\d+)?",
    ),
    _rule(
        "ADDRESS",
        rf"\b{_UP}[a-z]+[ \t]+\d{{1,2}}-\d{{1,2}}-\d{{1,3}}\b",
        valid=lambda m, t: not is_ordinary(m.group().split()[0]),
    ),
    _rule("ADDRESS", r"\b(?i:apto|apt\.?|piso)[ \t]*\d+\b"),
    # a street address written in lower case: "lives at 3 mill lane"
    _rule(
        "ADDRESS",
        r"\b\d{1,5}[ \t]+[a-z]+(?:[ \t]+[a-z]+)?[ \t]+(?:lane|street|st|road|rd|avenue|ave|drive|dr|close|crescent"
        r"|court|ct|way|place|terrace|boulevard|blvd|gardens|grove|mews|parade|square)\b",
        valid=lambda m, t: (
            not any(w in _GRAMMAR or is_ordinary(w) for w in m.group().split()[1:-1])
        ),
    ),  # not "2/3 of the way", "5 cm right lane"
    # phone numbers written with slashes or run together, and pagers by their label
    _rule("PHONE", r"(?<![\w/])\(?\d{3}\)?/\d{3}/\d{4}\b|(?<![\w/-])\d{6}-\d{4}\b"),
    _rule("PHONE", r"\b(?i:pg|pgr|pager|beeper|bleep)[ \t]*[#:]?[ \t]*(?P<v>\d{4,6})\b", "v"),
    # --- names with a shape of their own
    _rule("NAME", r"(?<![\w^])[^\W\d_][\w'’-]*(?:\^[\w'’-]*)+"),
    _rule(
        "NAME",
        rf"\b(?P<last>{_CAPS_WORD}(?:[ \t]{_CAPS_WORD})?),[ \t]*(?P<first>{_CAPS_WORD})(?:[ \t][A-Z]\b\.?)?",
        valid=_caps_last_first,
    ),
]
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
_CAP_SEQUENCE = re.compile(
    rf"{_UP}[\w'’.-]*(?:[ \t]+(?:(?:of|and|&|the|for|de|la|du|del)[ \t]+)*{_UP}[\w'’.-]*)*"
)
_HEAD_FIRST = re.compile(
    rf"\b(?:Hôpital|Hopital|Hospital|Clinique|Clinica|Klinikum|Ospedale|Centre[ \t]+Hospitalier)"
    rf"[ \t]+(?:(?:de|du|des|del|della|la|le)[ \t]+)*{_UP}[\w'’-]*(?:[ \t]+{_UP}[\w'’-]*)*"
)


# Identifiers guessed by shape or a cue alone: grouped numbers, user names, bare month/day,
# facilities by where a patient came from, a saint's name. Ward shorthand has the same shapes
# ("1900-0700", "mso4", "peep5", "cpap 5/5", "OSH"), so the tagger must confirm them
# (`umcl/data/deid/__init__.py: find_phi`).
_GUESS_RULES: list[_Rule] = [
    # a facility named by where a patient or an image came from or went: "came into GH",
    # "Outside CT from NWMC", "Followed by SJRH", "Prior CT at Kingsmead Royal", "transferred
    # from Szeged"; abbreviations only as hospitals and medical centres write them (…H, …MC, …HC)
    _rule(
        "INSTITUTION",
        r"\b(?i:transferred|transfer|admitted|seen|prior|previous|outside|old|external|films?|ct|cxr|mri"
        r"|images?|imaging|studies|study|came|come|brought|arrived|discharged|followed|treated|presented"
        r"|referred|sent|returned)\b[^.\n;]{0,25}?\b(?i:at|from|to|into|by)[ \t]+(?:(?i:the)[ \t]+)?"
        rf"(?P<v>[A-Z]{{0,4}}(?:H|MC|HC)\b|{_UP}[a-z][\w'’-]+(?:[ \t]+{_UP}[\w'’-]+){{0,3}})",
        "v",
        _facility_name,
    ),
    # a saint's name is a hospital's more often than anything else in a note: "transfer to St.
    # Mary's", "accepted by St. Agnes" (not "5 Main St" or "St. Jude" devices: the tagger decides)
    _rule(
        "INSTITUTION", rf"(?<!\d[ \t])\b(?:St|ST|Saint)\.?[ \t]+{_UP}[\w'’]*(?:[ \t]+{_UP}\b\.?)?"
    ),
    # "U Maryland", "Univ. of Iowa"
    _rule(
        "INSTITUTION",
        rf"\b(?:U|Univ)\.?[ \t]+(?:of[ \t]+)?(?P<v>{_UP}[a-z]+)",
        valid=lambda m, t: is_place(m.group("v")),
    ),
    _rule("ID", r"\b\d+(?:[-/]\d+)+\b", valid=_long_digits),
    _rule("NAME", r"\b[a-z]{3,}\d{1,4}\b", valid=_username),
    # a month/day with no word around it to say so: "cabg 2/7", "cultures 10/1"; ventilator
    # settings, scores and fractions have the same shape ("cpap 5/5", "pain 8/10", "D5 1/2 NS")
    _rule(
        "DATE",
        rf"(?<![\w/.])(?P<v>\d{{1,2}}/\d{{1,2}})(?![\w/]|\.\d){_NOT_A_FRACTION}",
        "v",
        _month_day,
    ),
    _rule("NAME", r"(?<![\w.@])[a-z]\.[a-z]{3,}\d*\b(?![.@]\w)"),
]


def _rule_spans(text: str, rules: list[_Rule] = _RULES) -> Iterator[Span]:
    for rule in rules:
        for match in rule.pattern.finditer(text):
            if rule.valid(match, text):
                yield Span(match.start(rule.group), match.end(rule.group), rule.label)


def _guessed_spans(text: str) -> Iterator[Span]:
    return _rule_spans(text, _GUESS_RULES)


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
# Hospital Medical Center", "on mackerer campus". The name is what follows the last grammar word
# or kind of facility ("to the floor from X hospital", "at another hospital": none).
_NAMED_BEFORE_HEAD = re.compile(
    r"\b(?i:to|from|at|in|into|on|by|@)[ \t]+(?P<v>[A-Za-z][\w'’.-]*(?:[ \t]+[A-Za-z][\w'’.-]*){0,3}?)"
    r"[ \t]+(?:(?P<memorial>(?i:memorial))|(?i:hospital|hosp\b|medical[ \t]+cent(?:er|re)|campus))\b"
)  # "Memorial" is a word of the name ("Sacred Heart memorial"); the others say what it is
_FACILITY_KINDS = _wordset(
    """outside other another same local community psychiatric psych mental state private public
    referring sending receiving previous prior nearest nearby closest new old their his her our
    your this that which rehab rehabilitation nursing teaching veterans va university leave go
    come return back get stay remain"""
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


def _named_before_head(text: str) -> Iterator[Span]:
    for match in _NAMED_BEFORE_HEAD.finditer(text):
        words = list(re.finditer(r"\S+", match.group("v")))
        for k in range(len(words) - 1, -1, -1):  # the name: the words after the last kind word
            bare = _bare(words[k].group())
            if bare in _GRAMMAR or bare in _FACILITY_KINDS or any(c.isdigit() for c in bare):
                words = words[k + 1 :]
                break
        if words:
            end = match.end() if match.group("memorial") else match.start("v") + words[-1].end()
            yield Span(match.start("v") + words[0].start(), end, "INSTITUTION")


# A ward or building by its name and number after a move: "TO QUARTERMAIN 3", "back to
# reisterstown 2"; the name is no English, clinical or drug word ("to levophed 2", "on vent 2").
_WARD_AND_NUMBER = re.compile(
    r"\b(?i:to|on|from|onto)[ \t]+(?P<v>[A-Za-z][a-z]{4,}|[A-Z]{5,})[ \t]*\d\b(?![.:/]\d|['’])"
)


def _ward_names(text: str) -> Iterator[Span]:
    for match in _WARD_AND_NUMBER.finditer(text):
        word = match.group("v")
        if not (is_ordinary(word) or is_common_english(word) or word.lower() in protected_drugs()):
            yield Span(match.start("v"), match.end("v"), "INSTITUTION")


def facility_spans(text: str) -> Iterator[Span]:
    """Facilities and wards by their head word or their number after a move, and their other
    mentions in the text ("TO QUARTERMAIN 3 … QUARTERMAIN3 DEVELOPED"): no clinical wording has
    these shapes, so they stand whatever the tagger says."""
    found = [*_named_before_head(text), *_ward_names(text)]
    yield from found
    words = {
        w.lower()
        for s in found
        for w in re.findall(r"[^\W\d_]{4,}", text[s.start : s.end])
        if not (is_ordinary(w) or is_common_english(w) or _bare(w) in _INSTITUTION_GENERIC)
    }
    if words:
        alternatives = "|".join(sorted(map(re.escape, words), key=len, reverse=True))
        for match in re.finditer(rf"(?<![^\W\d_])(?:{alternatives})(?![^\W\d_])", text, _I):
            yield Span(match.start(), match.end(), "INSTITUTION")


def _place_guesses(text: str) -> Iterator[Span]:
    """Places found by a word list after a cue, which the tagger must confirm."""
    yield from _lower_case_towns(text)
    yield from _listed_places(text)


def _address_spans(text: str) -> Iterator[Span]:
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
            start = len(text) - len(text[start:].lstrip())
            yield _trim_trailing(text, start, match.end(), "INSTITUTION")
    for match in _HEAD_FIRST.finditer(text):
        yield Span(match.start(), match.end(), "INSTITUTION")


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
