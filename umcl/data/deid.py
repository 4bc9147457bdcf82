"""De-identification of report text: PHI scrubbed at ingestion (pseudonyms: `pseudonyms.py`).

Readers call this at ingestion, so nothing downstream (quarantine, triplets, cache, logs,
models) ever holds a name, MRN, birth date, phone or accession number. DICOM headers are never
read beyond pixels (see `dicom.py`), so their identifying attributes stay in the raw files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
# Header fields whose whole value is identifying ("MRN: 1234567", "Patient Name: DOE^JOHN").
_FIELD = re.compile(
    r"\b(?P<key>patient(?:'s)?\s*name|name|patient|mrn|medical\s+record(?:\s+(?:number|no\.?))?"
    r"|dob|date\s+of\s+birth|birth\s*date|accession(?:\s+(?:number|no\.?|#))?|acc(?:\s*#|\.)?"
    r"|phone|tel(?:ephone)?|ssn)\s*[:#]\s*(?P<value>[^\n]*?)"
    r"(?=\s{2,}|\s*\n|\s*$|\s+(?:mrn|dob|date|accession|acc|name|patient|phone)\b)",
    re.IGNORECASE,
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # dates: 03/04/2021, 2021-03-04, 4 March 2021, March 4, 2021
    (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"), "[DATE]"),
    (re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"), "[DATE]"),
    (re.compile(rf"\b\d{{1,2}}\s+{_MONTHS}\.?,?\s+\d{{4}}\b", re.IGNORECASE), "[DATE]"),
    (re.compile(rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b", re.IGNORECASE), "[DATE]"),
    # phone numbers: (617) 555-0134, 617-555-0134, 617.555.0134, +1 617 555 0134
    (re.compile(r"(?:\+?1[\s.-]?)?\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b"), "[PHONE]"),
    # titled names: Dr. Smith, Dr John Smith, Mrs. Jane Doe
    (re.compile(r"\b(?i:dr|mr|mrs|ms|miss|prof)\.?\s+(?:[A-Z][a-z'-]+\s+){0,2}[A-Z][a-z'-]+\b"), "[NAME]"),
    # long identifiers: MRNs, accession numbers (optionally with a letter prefix)
    (re.compile(r"\b[A-Za-z]{0,4}\d{6,}\b"), "[ID]"),
]


def scrub_text(text: str, known_identifiers: Iterable[str] = ()) -> str:
    """Remove PHI from free text. `known_identifiers` (the record's own name, MRN, …) are
    removed wherever they occur, whatever the pattern rules catch."""
    for identifier in sorted({i.strip() for i in known_identifiers if i and i.strip()}, key=len, reverse=True):
        for part in {identifier, *re.split(r"[\^,\s]+", identifier)}:
            if len(part) >= 3:  # a 1-2 letter fragment of a name would scrub ordinary words
                text = re.sub(rf"\b{re.escape(part)}\b", "[NAME]", text, flags=re.IGNORECASE)
    text = _FIELD.sub(lambda m: f"{m.group('key')}: [REDACTED]", text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
