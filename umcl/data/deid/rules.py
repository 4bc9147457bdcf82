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
    _INSTITUTION_GENERIC,
    _INSTITUTION_HEADS,
    _bare,
    _is_abbreviation,
    _wordset,
    is_ordinary,
    is_word_name,
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
    """'T10-T11', 'C5-C6-C7' are vertebral levels, not identifiers."""
    return not re.fullmatch(r"[CTLS]\d{1,2}(?:-[CTLS]?\d{1,2})*", match.group())


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
    return not all(is_ordinary(w) or _is_abbreviation(w) for w in last.split()) and not (
        is_ordinary(first) or _is_abbreviation(first)
    )


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
    _rule("DATE", rf"\b{_MONTH},?[ \t]+{_YEAR}\b", flags=_I),
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
        r"\b(?:on|dated|from|since|until|through|thru)[ \t]+(?P<v>(?:0?[1-9]|1[0-2])/(?:3[01]|[12]\d|0?[1-9]))\b(?![/\d])",
        "v",
        flags=_I,
    ),
    _rule(
        "DATE",
        r"\b(?:dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*date)\s*[:#]?\s*(?P<v>\d[\d/.-]{5,9}\d)",
        "v",
        flags=_I,
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
    # DICOM UIDs ("1.2.826.0.1.3680043…"): five or more dotted parts, never a date or an address
    _rule("ID", r"(?<![\w.])\d+(?:\.\d+){4,}(?![\w.])"),
    # national and insurance numbers in groups: Medicare "2123 45670 1", IHI, Aadhaar
    _rule("ID", r"\b\d{4}[ \t]\d{5}[ \t]\d(?:[ \t]?\d|/\d)?\b(?![ \t]*(?:mm|cm|x\b|%))"),
    _rule("ID", r"\b\d{3,5}(?:[ \t]\d{3,5}){2,3}\b", valid=lambda m, t: _digits(m.group()) >= 10),
    _rule("ID", r"\b\d{6,}\b"),
    _rule("ID", r"\b\d+(?:[-/]\d+)+\b", valid=_long_digits),
    _rule(
        "ID",
        r"\b(?=[A-Za-z0-9-]*[A-Za-z])(?=(?:[A-Za-z-]*\d){4})[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b",
        valid=_not_spine_levels,
    ),
    _rule("NAME", r"\b[a-z]{3,}\d{1,4}\b", valid=_username),
    _rule("NAME", r"(?<![\w.@])[a-z]\.[a-z]{3,}\d*\b(?![.@]\w)"),
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


def _rule_spans(text: str) -> Iterator[Span]:
    for rule in _RULES:
        for match in rule.pattern.finditer(text):
            if rule.valid(match, text):
                yield Span(match.start(rule.group), match.end(rule.group), rule.label)


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
            yield _trim_trailing(text, match.start(), match.end(), "INSTITUTION")
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
