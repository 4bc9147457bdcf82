"""Dates: the written and numeric forms a report or a note gives a date in, with their times, and
the words that tell a month/day from a score, a setting, a dose or a British duration.

`DATE_RULES` run among `rules.py`'s rules before anything numeric; `_month_day` also
validates the bare month/day that `rules.py` guesses and the tagger must confirm.
"""

from __future__ import annotations

import re
from datetime import date

from umcl.ingest.deid.lexicon import _wordset
from umcl.ingest.deid.pattern import _I, _Rule, _rule

_FULL_MONTH_NAMES = sorted(
    _wordset(
        "january february march april may june july august september october november december"
    )
)
_MONTH_NAMES = sorted(
    {*_FULL_MONTH_NAMES, *_wordset("jan feb mar apr jun jul aug sep sept oct nov dec")}
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
# A month's full name in any case after a day and a date's preposition: "on 5 august", "since 2
# may" (without one, "3 march" can be steps; an abbreviation, "dec", a decrease).
_FULL_MONTH = "(?:" + "|".join(_FULL_MONTH_NAMES) + ")"
_FULL_MONTH_CAP = "(?:" + "|".join(f"{m.title()}|{m.upper()}" for m in _FULL_MONTH_NAMES) + ")"
# Months of other languages after their day: "14. März 2023", "le 3 février", "op 2 mei 2022".
_FOREIGN_MONTH = (
    r"(?:januar|jänner|februar|märz|maerz|mai|juni|juli|oktober|dezember|janvier|février|fevrier"
    r"|mars|avril|juin|juillet|août|aout|septembre|octobre|novembre|décembre|januari|februari"
    r"|maart|mei|augustus|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre"
    r"|noviembre|diciembre|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre"
    r"|dicembre)"
)
_UNITS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]
# A day of the month in words: "the twenty-first of February", "March the third".
_DAY_WORD = "|".join(
    sorted(
        [*_UNITS, "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth"]
        + ["sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth", "thirtieth"]
        + [f"twenty[ -]{u}" for u in _UNITS]
        + ["thirty[ -]first"],
        key=len,
        reverse=True,
    )
)
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


# Under Safe Harbor a year of birth is an identifier when it implies an age over 89. Reports are
# read years after they were written, so the age is taken as of today: this can only redact
# more (a report of 2015 on a patient born in 1930, then 85), never less.
_OLDEST_HARMLESS_BIRTH_YEAR = date.today().year - 89


def _birth_year_over_89(match: re.Match[str], text: str) -> bool:
    return int(match.group("v")) < _OLDEST_HARMLESS_BIRTH_YEAR


_WEEKDAY = (
    r"mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday"
    r"|sunday"
)
# Words after which a bare month/day is a date ("comparison 8/25", "Mon 7/1", "TRANS: 03/16").
_DATE_CUE = (
    r"on|dated|from|since|until|till|through|thru|comparison|compared(?:[ \t]+(?:with|to))?|prior"
    r"|previous|last|seen|done|performed|obtained|admitted|admission|(?:re)?intub(?:ated)?|(?:re)?extub(?:ated)?"
    r"|intubation|extubation|discharged"
    r"|transferred|operated|surgery|trans|dict|dictated|typed|transcribed|verified|signed|date|dos"
    r"|(?:exam|study|film|films|scan|ct|cxr|mri|x-ray|radiograph|echo|pet|us)[ \t]+(?:of|on|dated)"
    rf"|{_WEEKDAY}"
)
# Date words after which day.month. is a date: the day something happened, not a measure's
# "on admission", "prior", "last" ("Lactate on admission 2.10, now 1.05").
_DOTTED_DATE_CUE = rf"on|dated|from|since|until|till|admitted|discharged|seen|operated|transferred|born|dob|{_WEEKDAY}"
# What a date is of: "the 3/15 MDT", "the 4/22 thoracic meeting".
_DATED_EVENT = (
    r"mdt|mdm|meeting|clinic|conference|tumou?r[ \t]+board|appointment|visit|scan|study|exam|film"
)
# Studies and samples a note dates by their day: "10/16 CXR", "cultures 10/1".
_IMAGING = (
    r"cxr|ct|cta|mri|mra|kub|echo|tte|tee|ekg|ecg|eeg|us|u/s|ultrasound|x-?ray|films?|scan|doppler"
    r"|cath|bronch|bronchoscopy|egd|colonoscopy|lp|labs"
)
# Cultures: a month/day only after the word ("cultures 10/1"); before it a fraction counts
# bottles ("2/4 cultures grew", "1/2 BCx positive").
_CULTURE = r"cultures?|cx|bcx|ucx|sputum[ \t]+cx"
# What follows a measure, a ratio or a dose, never a date.
_NOT_A_MEASURE = (
    r"(?![ \t]*(?i:%|strength|str\b|ns\b|normal|saline|dose|doses|of[ \t]|mg|mcg|ml|cc\b|l\b|mmhg|murmur|power"
    r"|units?|tabs?|tablets?|x\b|cm|mm|hrs?|hours?|days?|weeks?|wks?|months?|sec|split|ratio|rule|way"
    r"|pain|scale))"
)
# What a fraction counts: bottles, sets, a share ("2/4 cultures", "3/10 positive", "7/8 full").
_COUNTED_WORDS = r"bl|cx|bcx|ucx|cultures?|positive|negative|bottles?|sets?\b|full|empty|filled"
_COUNTED = re.compile(rf"[ \t]*(?i:{_COUNTED_WORDS})")
# What follows a fraction, never a date. After a date word ("from 8/29 cultures") only a count of
# a few (`_not_a_count`) is taken for one.
_NOT_A_FRACTION = rf"{_NOT_A_MEASURE}(?![ \t]*(?i:{_COUNTED_WORDS}))"
_MOST_COUNTED = 6  # a set of culture bottles, a share in sixths at most
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
        # bedside scores out of 10 or 30: "AMTS 9/10", "CTSI 8/10", "NRS 4/10"
        "amts",
        "ctsi",
        "nrs",
        "vas",
        "moca",
        "mmse",
        "nihss",
        "ecog",
        "sofa",
        "news",
        "news2",
        "phq",
        "gad",
        "epds",
    ]
)
# Words before a British duration ("in 3/12", "for 2/7"), which a month/day shape can also be.
_DURATION_BEFORE = frozenset(["in", "for", "after", "within", "over", "every", "each", "x"])
# Care done every so many hours, as British notes write it: "repositioned 2/24", "obs 4/24".
_HOURLY_CARE = _wordset("repositioned turned turns obs observations rolled")
# Symptoms a British duration follows: "cough 2/52, fever 3/7".
_SYMPTOMS = _wordset(
    "fever fevers febrile cough coughing pain sob dyspnoea dyspnea breathlessness wheeze wheezing"
    " vomiting nausea diarrhoea diarrhea headache headaches malaise symptoms symptomatic illness"
    " haemoptysis hemoptysis sputum rigors chills lethargy rash itch itching dysuria frequency"
    " confusion loss swelling bleeding discharge constipation anorexia fatigue tiredness"
    " palpitations dizziness syncope jaundice haematuria hematuria melaena melena reflux"
)
# Words after a British duration that opens what it measures: "3/7 history of fever", "2/12
# weight loss", "6/52 hx", "2/7 ago".
_DURATION_AFTER = _SYMPTOMS | _wordset(
    "history hx hist ago duration weight wt coryza coryzal increased increasing worsening worse"
    " progressive productive unintentional poor reduced feeling loose urti"
)
# A British duration counts days, months, hours or weeks: the number after the slash is 7, 12, 24 or 52.
_DURATION_DENOMINATORS = frozenset([7, 12, 24, 52])  # days, months, hours, weeks
# What an ordinal counts when it is no date: "the 5th rib", "14th percentile", "2nd cycle".
_ORDINAL_NOUNS = (
    r"rib|ribs|intercostal|ics|vertebra|vertebrae|vertebral|percentile|centile|cervical|thoracic|lumbar|sacral"
    r"|metacarpal|metatarsal|toe|finger|digit|compartment|cranial|nerve|day|week|month|year|cycle|dose"
    r"|line|generation|order|degree|time|attempt|trimester|decade|floor|ventricle|segment|branch"
)


def _word_before(match: re.Match[str], text: str, group: str = "v") -> str:
    start = match.start(group)
    before = re.search(r"([A-Za-z][\w/]*)[ \t:=]*$", text[max(0, start - 24) : start])
    return before.group(1).lower() if before else ""


# Hormone receptors scored out of 8 (Allred): "ER 8/8, PR 6/8"; "seen in ER 3/14" is a visit.
_RECEPTORS = frozenset(["er", "pr", "allred"])
_VISITED = re.compile(
    r"\b(?i:in|to|from|at|via|presented|attended|seen|discharged|visit(?:ed)?)[ \t]+(?:the[ \t]+)?"
    r"(?i:er|pr)[ \t:]*$"
)


def _not_after_a_measure(match: re.Match[str], text: str) -> bool:
    before = _word_before(match, text)
    if before in _RECEPTORS and re.search(r"/0?8$", match.group("v")):
        return _VISITED.search(text, max(0, match.start("v") - 40), match.start("v")) is not None
    return before not in _NOT_A_DATE_BEFORE


def _not_a_count(match: re.Match[str], text: str) -> bool:
    """Not a count of what follows: "2/4 cultures" and "1/2 full" are counts, "8/29 cultures"
    is the day they were drawn."""
    first, second = (int(x) for x in re.split(r"[/-]", match.group("v")))
    counted = _COUNTED.match(text, match.end("v")) is not None
    return not (counted and first <= second <= _MOST_COUNTED)


def _month_day(match: re.Match[str], text: str) -> bool:
    """A plausible month and day, either way round (US 8/25, European 25/8), not after a word
    that makes it a score or a setting, nor a count of what follows it."""
    first, second = (int(x) for x in re.split(r"[/-]", match.group("v")))
    if not _not_after_a_measure(match, text) or not _not_a_count(match, text):
        return False
    before = _word_before(match, text)
    if second == 24 and first <= 6 and before in _HOURLY_CARE and _hourly(match, text):
        return False
    if second in _DURATION_DENOMINATORS and (before in _DURATION_BEFORE or before in _SYMPTOMS):
        # "in 6/52", "for 2/7", "over 12/24", how long a symptom has lasted ("cough 2/52", "fever
        # 3/7", "rigors 10/7"); "plan for 10/3", "for 3/11" are dates
        return False
    after = re.match(r"[ \t]+([A-Za-z/]+)", text[match.end("v") : match.end("v") + 24])
    if (
        second in (7, 12, 52)
        and after
        and after.group(1).lower() in _DURATION_AFTER
        and not re.fullmatch(rf"{_DATE_CUE}|{_DATED_EVENT}", before)
    ):  # "3/7 history of fever"; "admitted 6/12 fever", "clinic 11/12 history" are dates
        return False
    return (1 <= first <= 12 and 1 <= second <= 31) or (1 <= first <= 31 and 1 <= second <= 12)


def _uncounted_month_day(match: re.Match[str], text: str) -> bool:
    """A month/day, unless it counts what it follows: "cx 2/4 pos" (2 of 4 positive) is none,
    "head ct 11/20 neg" is a date."""
    first, second = (int(x) for x in re.split(r"[/-]", match.group("v")))
    counted = re.match(r"[ \t]*(?i:pos|neg|\+|-)", text[match.end("v") :])
    return _month_day(match, text) and not (counted and first <= second <= 12)


def _not_bottles(match: re.Match[str], text: str) -> bool:
    """A month/day after a culture word, unless it counts bottles: at most four of a set of two
    or four ("cx 1/2 staph epi", "bcx 2/4"); "cultures 10/1", "ucx 4/5" are dates. (A date of
    the first days of January to April written this way is read as a count.)"""
    first, second = (int(x) for x in re.split(r"[/-]", match.group("v")))
    return _month_day(match, text) and not first <= second <= 4


def _consecutive_days(match: re.Match[str], text: str) -> bool:
    """A shift that spans two days names them one after the other ("1->2 nov"), and its month
    is capitalised unless it heads its line."""
    value = match.group("v")
    days = [int(d) for d in re.findall(r"\d+", value.split(",")[0])]
    start = match.start("v")
    begin = text.rfind("\n", max(0, start - 200), start) + 1  # bounded: no rescan of a long line
    line_start = (begin > 0 or start <= 200) and not text[begin:start].strip(" \t|")
    month = re.search(r"[A-Za-z]+(?=\.?,)", value)
    capitalised = month is not None and month.group()[:1].isupper()
    return (len(days) < 2 or days[1] == days[0] + 1) and (line_start or capitalised)


def _no_closing_quote(match: re.Match[str], text: str) -> bool:
    """No quote closes after a word later on the line: "'10 out of 10'" is quoted, "CABG '79,
    AVR '05" are years."""
    rest = text[match.end() : match.end() + 80].split("\n", 1)[0]
    return re.search(r"\w['’](?!\d)", rest) is None


# Words of those languages before a day: "le 3 février", "am 14. März", "op 2 mei".
_FOREIGN_DATE_WORDS = _wordset("le du au am vom bis zum op van tot el del al il dal à a em de den")


def _foreign_date(match: re.Match[str], text: str) -> bool:
    """With its year, or after a word of its language and not in capitals: "2 MAI" (M. avium
    complex), "treated with 2 Mars" and "2 Mayo" (scissors) are none."""
    if match.group("y"):
        return True
    before = re.search(r"(\w+)[ \t]+$", text[max(0, match.start() - 12) : match.start()])
    month = match.group("m")
    return (
        before is not None
        and before.group(1).lower() in _FOREIGN_DATE_WORDS
        and not month.isupper()
    )


def _hourly(match: re.Match[str], text: str) -> bool:
    """ "repositioned 2/24": not "admitted to obs 3/24", "checks 3/24 and 3/25", "obs 3/24 0600"."""
    before = text[max(0, match.start("v") - 16) : match.start("v")].lower()
    after = text[match.end("v") : match.end("v") + 16]
    return not re.search(r"\bto[ \t]+\w+[ \t]*$", before) and not re.match(
        r"[ \t]*(?:(?:and|-|to|,)[ \t]*)?\d", after
    )


def _month_not_before_a_verb(match: re.Match[str], text: str) -> bool:
    """'may' and 'march' before a lower-case word are verbs: "since 2 may be related"."""
    verb = match.group("m").lower() in ("may", "march")
    return not (verb and re.match(r"[ \t]+[a-z]", text[match.end() : match.end() + 2]))


def _month_not_a_verb(match: re.Match[str], text: str) -> bool:
    if match.group("m").lower() not in ("may", "march"):
        return True
    return _word_before(match, text, "m") in ("in", "since", "from", "until", "till", "of", "by")


# Words of intake, output and the measures a year-like number counts there ("I/O in 2000 out
# 1500", "s/p surgery EBL 1975 ml").
_VOLUME_WORDS = re.compile(
    r"\b(?i:out|i/o|i&o|intake|output|uop|uo|ebl|fluids?|total|po|ivf|cc|ml|mls|g|kg|grams?|infant"
    r"|weight|wt|net|balance)\b"
)


# An operation: its suffix, a procedure's abbreviation or what was done.
_OPERATION = (
    r"\w+(?:ectomy|ectomies|otomy|ostomy|plasty|pexy|scopy|rrhaphy|desis)|cabg|tkr|thr|tka|tha|avr|mvr"
    r"|tavi|tavr|pci|ptca|orif|turp|cea|evar|appy|chole|repair|replacement|transplant|bypass"
    r"|stent|stenting|resection|excision|fixation|fusion|amputation|ablation|surgery|operation"
)


def _not_a_volume(match: re.Match[str], text: str) -> bool:
    """A year, unless intake, output or a measure is counted around it."""
    around = text[max(0, match.start("v") - 30) : match.end("v") + 20]
    return _VOLUME_WORDS.search(around) is None


def _no_clock_time_after_since(match: re.Match[str], text: str) -> bool:
    """A year after a diagnosis; after "since" only 1960-1999, which no clock time can be."""
    since = match.group().lower().startswith("since")
    return _not_a_volume(match, text) and (not since or 1960 <= int(match.group("v")) <= 1999)


DATE_RULES: list[_Rule] = [
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
    _rule(
        "DATE",
        rf"\b{_DAY}(?:\.|er|º)?[ \t]+(?:de[ \t]+)?(?P<m>(?i:{_FOREIGN_MONTH}))(?![\w])"
        rf"(?P<y>[ \t]+(?:de[ \t]+)?{_YEAR}\b)?",
        valid=_foreign_date,
    ),
    _rule(
        "DATE",
        rf"\b(?:on|since|from|until|till|by|before|after|dated?)[ \t]+(?:the[ \t]+)?"
        rf"(?P<v>{_DAY}{_ORD}[ \t]+(?:of[ \t]+)?(?P<m>{_FULL_MONTH}))(?![a-z])",
        "v",
        _month_not_before_a_verb,
        flags=_I,
    ),
    _rule(
        "DATE",
        rf"\b(?i:the)[ \t]+(?i:{_DAY_WORD})[ \t]+of[ \t]+(?i:{_FULL_MONTH})(?![a-z])"
        rf"|\b{_FULL_MONTH_CAP}[ \t]+the[ \t]+(?i:{_DAY_WORD})\b(?![ \t]+[a-z])",
    ),
    _rule("DATE", rf"\b{_MONTH_CAP}[ \t]+{_DAY}{_ORD}\b(?![ \t]*(?:mm|cm|%|x\b))"),
    _rule("DATE", rf"\b{_MONTH},?[ \t]+(?:of[ \t]+)?{_YEAR}\b", flags=_I),
    # a day (or a night's two days) and a month with a two-digit year after a comma, as notes
    # head a shift: "28 Oct, 88", "1->2 nov, 96" — a capitalised month, or at the start of a
    # line ("PEEP weaned 8 -> 5 dec, 10 min later" is no date)
    _rule(
        "DATE",
        rf"\b(?P<v>{_DAY}{_ORD}"
        rf"(?:[ \t]*(?:-|->|–|to)[ \t]*{_DAY}{_ORD})?[ \t]+{_MONTH},[ \t]*['’]?\d{{2}}\b)"
        rf"(?![ \t]*(?:mm|cm|%|x\b))",
        "v",
        _consecutive_days,
        flags=_I,
    ),
    # a written month with a two-digit year: "5-Mar-19", "3rd Jan '19", "Mar-19", "Jan '19"
    _rule("DATE", rf"\b{_DAY}{_ORD}([/.-]){_MONTH}\1['’]?\d{{2}}(?!\d|\.\d)", flags=_I),
    _rule(
        "DATE",
        rf"\b{_DAY}{_ORD}[ \t]+{_MONTH_CAP}[ \t]+['’]?\d{{2}}\b(?![ \t]*(?:mm|cm|%|x\b))",
    ),
    _rule("DATE", rf"\b{_MONTH_CAP}(?:-['’]?|[ \t]+['’])\d{{2}}\b(?![ \t]*(?:mm|cm|%))"),
    # holidays name a day of the year: "Christmas Day 2019", "on Boxing Day", "Diwali 2021", a
    # saint's day ("St Stephen's Day")
    _rule(
        "DATE",
        r"\b(?:(?:Christmas(?![ \t-]+(?:tree|disease|factor))|New[ \t]+Year['’]?s)(?:[ \t]+(?:Day|Eve))?|Boxing[ \t]+Day"
        r"|Easter(?:[ \t]+(?:Sunday|Monday|Saturday))?|Good[ \t]+Friday|Thanksgiving(?:[ \t]+Day)?"
        r"|Diwali|Deepavali|Holi|Eid(?:[ \t-]+(?:al|ul)[ \t-]+(?:Fitr|Adha))?|Pongal|Onam|Hogmanay"
        r"|(?:Anzac|Australia|Canada|Independence|Republic|Memorial|Labou?r|Veterans['’]?|Remembrance"
        r"|Valentine['’]?s|Martin[ \t]+Luther[ \t]+King|Waitangi|Heritage|Victoria|Family|Bastille"
        r"|Freedom|Youth|Reconciliation|Emancipation|Presidents['’]?|Columbus|Mother['’]?s|Father['’]?s"
        r"|St\.?[ \t]+[A-Z][a-z]+['’]?s)[ \t]+Day|Juneteenth"
        r"|Halloween|Guy[ \t]+Fawkes(?:[ \t]+Night)?|Bonfire[ \t]+Night|(?:Chinese|Lunar)[ \t]+New[ \t]+Year"
        r")\b(?:,?[ \t]+(?:of[ \t]+)?(?:1[89]\d\d|20\d\d)\b)?|\bRamadan,?[ \t]+(?:1[89]\d\d|20\d\d)\b",
    ),
    # a two-digit year by its apostrophe: "CABG x4 '79", "last used in may 15'" (a month before
    # it: "in 15'" alone is fifteen minutes in European notes, "5'10" a height; a quote closed
    # later is no year, "'10 out of 10'"; "may" and "march" are verbs unless a preposition
    # leads: "ambulated may 50'" is a distance)
    _rule("DATE", r"(?<![\w'’])['’](?P<v>\d\d)(?![\w'’%+]|[.,]\d)", "v", _no_closing_quote),
    _rule(
        "DATE",
        rf"\b(?P<m>{_MONTH})[ \t]+\d\d['’](?![\w'’])",
        valid=_month_not_a_verb,
        flags=_I,
    ),
    # a year said with what happened in it, or the year a patient is asked for: "s/p resection
    # 1977", "in 2019", "it's 2019" (after "s/p" only years no clock time can be: "s/p lasix 1930"
    # is half past seven; "born in 1950" is left to the year-of-birth rule below)
    _rule(
        "DATE",
        rf"(?<![Bb]orn[ \t])(?<!BORN[ \t])\b(?i:in|it['’]?s|it[ \t]+(?:is|was)|(?:the[ \t]+)?year[ \t]+(?:is|was))[ \t]+(?P<v>{_YEAR})\b"
        rf"(?![/.:-]\d){_NOT_A_FRACTION}",
        "v",
        _not_a_volume,
    ),
    _rule(
        "DATE",
        rf"\b(?i:s/p)(?:[ \t]+[A-Za-z][\w/-]*){{1,2}}[ \t]+(?P<v>19[6-9]\d)\b(?![/.:-]\d){_NOT_A_FRACTION}",
        "v",
        _not_a_volume,
    ),
    # the year of a diagnosis, and a year after "since" before 2000: "breast ca dx 2004", "DM2
    # since 1998" ("since 2000" is eight in the evening as often; "since 1930" half past seven)
    _rule(
        "DATE",
        rf"\b(?i:dx|dx['’]?d|diagnosed|diagnosis|since)[ \t]+(?P<v>{_YEAR})\b(?![/.:-]\d){_NOT_A_FRACTION}",
        "v",
        _no_clock_time_after_since,
    ),
    # the year of an operation in a history list: "appendicectomy 1972, TKR (R) 2011", "CABG x3
    # 1998", "hysterectomy 2003 for fibroids" (its side or count between them, and an item's end
    # or its reason after; a sentence's stop only after a year no clock time can be; a clock time
    # has other words around it: "lap chole at 1945", "surgery done 1950", "ablation ended
    # 2010.", "PCR 1975 copies")
    _rule(
        "DATE",
        rf"\b(?i:{_OPERATION})(?:[ \t]+(?:\([A-Za-z]{{1,5}}\)|[LR]|x[ \t]?\d)){{0,2}}[ \t]+"
        r"(?P<v>19[6-9]\d(?=[ \t]*\.(?!\d))|(?:19[3-9]\d|20[0-3]\d)(?=[ \t]*(?:[,;)]|$|(?i:and|with|for|x[ \t]?\d)\b)))",
        "v",
        _not_a_volume,
        flags=re.MULTILINE,
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
        rf"\b(?:on|dated|from|since|until|through|thru)[ \t]+(?P<v>(?:0?[1-9]|1[0-2])/(?:3[01]|[12]\d|0?[1-9]))\b(?![/\d]){_NOT_A_MEASURE}",
        "v",
        _not_a_count,
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
        rf"\b(?i:{_DATE_CUE})(?:[ \t]*[:,-][ \t]*|[ \t]+)(?:(?i:the|on|of)[ \t]+)?(?P<v>\d{{1,2}}/\d{{1,2}})(?![/\d]|\.\d){_NOT_A_MEASURE}",
        "v",
        _month_day,
    ),
    _rule(
        "DATE",
        rf"\b(?i:the)[ \t]+(?P<v>\d{{1,2}}/\d{{1,2}})(?=[ \t]+(?:\w+[ \t]+)?(?i:{_DATED_EVENT})\b)",
        "v",
        _month_day,
    ),
    # a month/day right before or after the study or sample it dates: "10/16 CXR", "CXR 10/16
    # showed", "cultures 10/1", "sputum cx 9/30" (a count of cultures is followed by what it
    # counts: "cultures 2/4 positive" is none)
    _rule(
        "DATE",
        rf"(?<![\w/.])(?P<v>\d{{1,2}}/\d{{1,2}})(?![/\d]|\.\d)(?=[ \t]+(?i:{_IMAGING})\b)",
        "v",
        _uncounted_month_day,
    ),
    _rule(
        "DATE",
        rf"\b(?i:{_IMAGING})[ \t]+(?P<v>\d{{1,2}}/\d{{1,2}})(?![/\d]|\.\d){_NOT_A_FRACTION}",
        "v",
        _uncounted_month_day,
    ),
    _rule(
        "DATE",
        rf"\b(?i:{_CULTURE})[ \t]+(?P<v>\d{{1,2}}/\d{{1,2}})(?![/\d]|\.\d){_NOT_A_FRACTION}",
        "v",
        _not_bottles,
    ),
    # month and two-digit year, a year no day can be: "stent to RCA 12/82", "MI 3/99"
    # ("6/52" is six weeks in British notes, never a year)
    _rule(
        "DATE",
        rf"(?<![\w/.])(?P<v>(?:0?[1-9]|1[0-2])/(?!52\b)(?:3[2-9]|[4-9]\d|0\d))(?![/\d]|\.\d|[ \t]*%){_NOT_A_FRACTION}",
        "v",
        _not_after_a_measure,
    ),
    # day.month. without a year, as European notes write it: with its closing stop before the
    # next word after a date word ("admitted 22.11. with", "on 3.04. the"), or before punctuation
    # after what it dates ("MDT 17.05, please list"). Never after a value's words ("Lactate on
    # admission 2.10, now 1.05", "Creatinine previous 1.02.": lab values have the same shape).
    _rule(
        "DATE",
        rf"\b(?i:{_DOTTED_DATE_CUE})(?:[ \t]*[:,-][ \t]*|[ \t]+)"
        rf"(?P<v>{_DAY}\.(?:0[1-9]|1[0-2])\.)(?=[ \t]+[A-Za-z])",
        "v",
    ),
    _rule(
        "DATE",
        rf"\b(?i:{_DATED_EVENT})[ \t]+(?P<v>{_DAY}\.(?:0[1-9]|1[0-2])\.?)(?=[ \t]*(?:[,;)]|$))",
        "v",
        flags=re.MULTILINE,
    ),
    # booked for a day: "listed for the 19th for bronchoscopy", "for the 28th at 09:00" (what
    # follows closes it: "for the 2nd stage", "for the 3rd and 4th toes", "for the 2nd, 3rd and
    # 4th ribs" are none)
    _rule(
        "DATE",
        r"\b(?i:for[ \t]+the)[ \t]+(?P<v>(?:3[01]|[12]\d|0?[1-9])(?i:st|nd|rd|th))\b"
        r"(?=[ \t]*(?:[.;)]|,(?![ \t]*\d)|$|(?i:at|for|@)\b))",
        "v",
        flags=re.MULTILINE,
    ),
    # a day of the month by its ordinal after a date preposition: "on the 14th", "since the 2nd"
    _rule(
        "DATE",
        rf"\b(?i:on|since|from|until|till|by|before|after|dated)[ \t]+(?:(?i:the)[ \t]+)?(?P<v>(?:3[01]|[12]\d|0?[1-9])(?i:st|nd|rd|th))\b"
        rf"(?![ \t]+(?:of[ \t]+)?(?:[A-Za-z]+[ \t]+){{0,2}}(?i:{_ORDINAL_NOUNS})\b)",
        "v",
    ),
]
