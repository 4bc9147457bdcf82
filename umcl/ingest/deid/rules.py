"""The regular-expression rules: identifiers that have a shape of their own.

Dates (`dates.py`, run first), ages over 89, labelled RIS/insurance/device identifiers, phone
numbers, SSNs, e-mail, URLs, IP addresses, ZIP and postal codes, institution fields, user names
and "LAST, FIRST" names, each pattern with a validator that rejects its clinical look-alikes
("9-10-11 ribs", "T10-T11", "PA, LATERAL"); and the guesses by shape the tagger must confirm.
Street addresses and institutions by their head word are in `places.py`, the record's known
identifiers in `known.py`, names found by their context in `names.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from umcl.ingest.deid.dates import _NOT_A_FRACTION, DATE_RULES, _uncounted_month_day
from umcl.ingest.deid.lexicon import (
    _CLINICAL_ALNUM,
    _EPONYMS,
    _GRAMMAR,
    _bare,
    _is_abbreviation,
    _wordset,
    is_ordinary,
)
from umcl.ingest.deid.lists import (
    is_common_english,
    is_person_name,
    is_place,
)
from umcl.ingest.deid.names import _CAPS_WORD, _UP
from umcl.ingest.deid.pattern import _I, _Rule, _rule
from umcl.ingest.deid.spans import Span

# --- the rules: (label, pattern, group to redact, validator) ---------------------------------
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
# Digits in short groups first ("28 441 907", "943 476 5919"), else one token with a digit.
_ID_VALUE = r"(?P<v>\d{2,4}(?:[ \t]\d{3,4}){1,3}\b(?![ \t]*(?:/|(?i:cfu|copies|cells|units?|iu|mg|mcg|ml|hrs?|hours)\b))|[A-Za-z0-9(][A-Za-z0-9()/-]*\d[A-Za-z0-9()/-]*|\d{2,}(?:[ \t]\d{2,}){1,3}\b|[xX*]{3}-[xX*]{2}-\d{4})"
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
    r"|(?:coroner|police|court|claim|file|booking|case|incident|safeguarding)(?:['’]s)?\s*(?:ref(?:erence)?\.?|#|no\.?|number|id)"
    r"|ref(?:erence)?\.?\s*(?:#|no\.?|number)"
)
_WEAK_ID_LABEL = (
    r"order|record|requisition|exam|study|visit|group|member|subscriber|insurance|id|no\.|number|#"
)
_PHONE_LABEL = (
    r"(?:phone|ph|tel(?:ephone)?|cell|mobile|mob|pager|pgr|beeper|bleep|ext(?:ension)?|fax"
    r"|facsimile|callback|call\s*back|contact)"
)
_SEP = r"[ \t]*(?:[:#=]|\bis\b|\bof\b)?[ \t]*(?:#[ \t]*)?"


def _digits(value: str) -> int:
    return sum(c.isdigit() for c in value)


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


# What a number followed by one of these is not: an age ("Pt is 93% on air", "is 95 kg").
_NOT_AGE_UNIT = (
    r"(?![ \t]*(?:%|percent|per[ \t]*cent|mm|cm|kg|kgs|lbs?|g\b|mg|mcg|ml|l\b|mmhg|mmol|bpm"
    r"|beats|breaths|degrees|°|units|min|mins|minutes|hours|hrs|h\b|days|weeks|wks|months|x\b"
    r"|[/.]\d))"
)


# A vital sign, a lab value or a bed before a number: "HR 95 male nurse at bedside", "Hb 90
# male", "Bed 101 female" read no age.
_READING_BEFORE = re.compile(
    r"\b(?i:hr|bp|sats?|spo2|sao2|o2|rr|temp|pulse|map|cvp|gcs|fio2|wt|weight|ht|height|glucose|bs"
    r"|hb|hgb|hct|plt|bed|room|rm|bay)[ \t:=#]*$"
)


def _not_a_reading(match: re.Match[str], text: str) -> bool:
    return _READING_BEFORE.search(text, max(0, match.start("v") - 12), match.start("v")) is None


def _after_break(match: re.Match[str], text: str) -> bool:
    """'M 95 SOB' opens a line or a field; 'level M 95' does not."""
    before = text[: match.start()].rstrip(" \t")
    return (not before or before[-1] in "\n:;(,-") and _not_temperature(match, text)


# What a history opens with after "s/p": a side, an injury, an operation or an event.
_HISTORY_AFTER_SP = (
    r"(?:left|right|lt|rt|l|r|b/l|bilat|bilateral|fall|mvc|mva|fx|fracture|trauma|cabg|avr|mvr|tavr"
    r"|tavi|pci|ptca|stent|surgery|repair|resection|transplant|arrest|cardiac|cva|stroke|mi|stemi"
    r"|amputation|tkr|thr|tka|tha|orif|hip|knee|[a-z]*(?:ectomy|otomy|ostomy|plasty|pexy))\b"
)


def _not_a_field_value(match: re.Match[str], text: str) -> bool:
    """The line before does not end with a field's colon ("Sats:" then "98 s/p neb")."""
    before = text[max(0, match.start() - 200) : match.start()].rstrip(" \t|\n")
    return not before.endswith(":")


def _placeholder_free(match: re.Match[str], text: str) -> bool:
    return not all(
        is_ordinary(w) or _is_abbreviation(w) for w in re.findall(r"[\w'’]+", match.group("v"))
    )


def _town_follows(match: re.Match[str], text: str) -> bool:
    """A postcode needs its town after it: "69003 Lyon", not "10000 Units" or "1500 CC Lasix"."""
    town = re.match(rf"[ \t]+({_UP}[\w'’-]+)", text[match.end("v") :])
    return (
        town is not None and not is_ordinary(town.group(1)) and not _is_abbreviation(town.group(1))
    )


_POSTCODE_BEFORE = re.compile(
    r"(?<![\w.,/-])(?:\d{4}[ \t]?[A-Z]{2}|\d{5}|\d{2}-\d{3}|\d{3}[ \t]\d{2})[ \t]*$"
)


def _town_after_postcode(match: re.Match[str], text: str) -> bool:
    # Searched in the few characters before the town only: the whole text before it made a run
    # of capitals and tabs quadratic ("MD\t\t\t" * 7,000: 3 s).
    code = _POSTCODE_BEFORE.search(text, max(0, match.start() - 24), match.start())
    word = match.group("v").split()[0]
    return code is not None and not is_ordinary(word) and not _is_abbreviation(word)


# Initials of kinds of home and of an outside hospital, not of one: "tx from NH", "from OSH",
# "to DGH" (a district general hospital).
_GENERIC_FACILITIES = _wordset("nh bh mh ph ltch snh alf osh ch dgh")


_SOCIAL = re.compile(
    r"(?i:instagram|insta|tiktok|snapchat|twitter|facebook|social[ \t]+media|handle|posts?|posting"
    r"|posted|online|messaged|followers?)"
)


def _social_handle(match: re.Match[str], text: str) -> bool:
    around = text[max(0, match.start() - 80) : match.end() + 80]
    return _SOCIAL.search(around) is not None


def _facility_name(match: re.Match[str], text: str) -> bool:
    """An abbreviation of a hospital, or a capitalised name whose first word is no clinical or
    frequent English word ("Kingsmead Royal", not "Emergency" or "Radiology")."""
    value = match.group("v")
    if value.isupper():
        # "from OSH", "tx from NH", "from BH unit": an outside, nursing or behavioural health home
        return (
            len(value) >= 2 and not is_ordinary(value) and value.lower() not in _GENERIC_FACILITIES
        )
    first = value.split()[0]
    return not is_ordinary(first) and not is_common_english(_bare(first), top=10_000)


_RULES: list[_Rule] = [
    # --- contact and network identifiers
    _rule("EMAIL", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    # a social-media handle where the sentence says so: "posting as @lucy_recovers on Instagram"
    # (in notes "@" is "at": "@L5S1", "@nocte", "@Optiflow")
    _rule("ID", r"(?<![\w.@])@[A-Za-z][\w.]{2,29}[A-Za-z0-9_]", valid=_social_handle),
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
    *DATE_RULES,
    # --- ages over 89
    _rule(
        "AGE",
        r"\b(?:9\d|1[01]\d)[ \t]*-?[ \t]*(?:years?|yrs?|yo|y/o|y\.o\.?|y)\b\.?(?:[ \t]*-?[ \t]*old)?",
        flags=_I,
    ),
    # years and months, as a paediatric or geriatric header writes them: "92y9m", "101 y 2 mo"
    _rule(
        "AGE",
        r"\b(?:9\d|1[01]\d)[ \t]*(?:y|yrs?)[ \t]*\d{1,2}[ \t]*(?:m|mo|mos|months?)\b",
        flags=_I,
    ),
    # the sex in brackets before the age where a line or a field opens: "(M) 96 with
    # haemoptysis", "(M), 97, fall" ("Pulse (M) 98 irregular" is a monitor's reading)
    _rule(
        "AGE",
        rf"\((?:[MF]|male|female)\)[ \t]*,?[ \t]*(?P<v>9\d|1[01]\d)\b{_NOT_AGE_UNIT}",
        "v",
        _after_break,
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
    # an age opening a line before the history it introduces: "98 s/p left hip fx", "92 w/ h/o
    # CHF" (a line, not a field's value: "Sat: 98 s/p suction", "Sats:" and "98 s/p neb" on the
    # next line, "100 w/ NRB" are readings; "102 s/p tylenol", "115 s/p fluid bolus" too: after
    # "s/p" only an operation, an injury or an event)
    _rule(
        "AGE",
        rf"(?m:^)[ \t]*(?P<v>9\d|1[01]\d)(?=[ \t]+(?i:s/p[ \t]+(?:{_HISTORY_AFTER_SP})|h/o|hx[ \t]+of|p/w"
        r"|(?:w/|with)[ \t]*(?:a[ \t]+)?(?:h/o|hx|history|pmh)|presents|presented|presenting|admitted"
        r"|transferred)(?![\w/]))",
        "v",
        _not_a_field_value,
    ),
    # before a word for the patient: "- 92 female with fall", "96 widow from home"
    _rule(
        "AGE",
        r"(?<![\w.,/])(?P<v>9\d|1[01]\d)(?=[ \t]+(?i:female|male|woman|man|lady|gentleman|gent|widow|widower)\b)",
        "v",
        _not_a_reading,
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
    # the number of a note or a document, by its sign: "Report #48213", "letter no. 5521" (a
    # bare number after a note's title is its time: "nursing note 0700", "note 1500 cc out")
    _rule(
        "ID",
        r"\b(?:note|report|document|letter)[ \t]*(?:#|no\.|number)(?:[ \t]*:)?[ \t]*(?P<v>\d{4,})\b",
        "v",
        flags=_I,
    ),
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
        "PHONE",
        r"(?<![\w+])(?:\+?1[ \t.-]?)?(?:\(\d{3}\)[ \t]?|\d{3}[ \t.-])\d{3}[ \t.-]\d{4}"
        r"(?:,?[ \t]*\(?(?i:x|ext|extn|extension|\#)\.?[ \t]*:?[ \t]*\d{1,6}\b|\b)",  # "0780 x45", "0780x45"
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
    # institution fields of RIS and DICOM headers: "Institution: ST MARY'S GENERAL",
    # "InstitutionName: …" (a DICOM dump's keyword)
    _rule(
        "INSTITUTION",
        r"\b(?i:institution(?:[ \t]*name)?|hospital(?:[ \t]*name)?|facility(?:[ \t]*name)?"
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
# Identifiers guessed by shape or a cue alone: grouped numbers, user names, bare month/day,
# facilities by where a patient came from, a saint's name. Ward shorthand has the same shapes
# ("1900-0700", "mso4", "peep5", "cpap 5/5", "OSH"), so the tagger must confirm them
# (`umcl/ingest/deid/__init__.py: find_phi`).
_GUESS_RULES: list[_Rule] = [
    # a facility named by where a patient or an image came from or went: "came into GH",
    # "Outside CT from NWMC", "Followed by SJRH", "Prior CT at Kingsmead Royal", "transferred
    # from Szeged", "records requested from SVMC and CRH"; abbreviations only as hospitals and
    # medical centres write them (…H, …MC, …HC)
    _rule(
        "INSTITUTION",
        r"\b(?i:tr?ans?ferr?e?d|transfer|tx|xfer(?:r?ed)?|admitted|seen|prior|previous|outside|old|external|films?|ct|cxr|mri"
        r"|images?|imaging|studies|study|came|come|brought|arrived|discharged|followed|treated|presented"
        r"|referred|sent|returned|requested|received|faxed|records|reports?)\b[^.\n;]{0,25}?"
        r"\b(?i:at|from|to|into|by)[ \t]+(?:(?i:the)[ \t]+)?"
        rf"(?P<v>[A-Z]{{0,4}}(?:H|MC|HC)\b(?:[ \t]+(?:and|or|&)[ \t]+[A-Z]{{0,4}}(?:H|MC|HC)\b)?"
        rf"|{_UP}[a-z][\w'’-]+(?:[ \t]+{_UP}[\w'’-]+){{0,3}})",
        "v",
        _facility_name,
    ),
    # a saint's name is a hospital's more often than anything else in a note: "transfer to St.
    # Mary's", "accepted by St. Agnes" (not "5 Main St"; the tagger decides)
    _rule(
        "INSTITUTION",
        rf"(?<!\d[ \t])\b(?:St|ST|Saint)\.?[ \t]+(?P<saint>{_UP}[\w'’]*)(?:[ \t]+{_UP}\b\.?)?",
        valid=lambda m, t: _bare(m.group("saint")) not in _EPONYMS,  # "St. Jude" valves
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
        _uncounted_month_day,
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
