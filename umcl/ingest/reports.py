"""Radiology report structure: keep the findings and impression, drop headers and history."""

from __future__ import annotations

import re

# Section headers radiology reports use (MIMIC-CXR, Open-i, RIS exports). Only these split a
# report: any other "KEY:" ("MRN:", "ACCESSION:", "PATIENT:") is a field inside the text, left to
# the scrubber, never a header that would swallow the clinical text after it.
_SECTION_NAMES = (
    r"FINAL REPORT|REPORT|EXAM(?:INATION)?(?: TYPE)?|TYPE OF (?:EXAM(?:INATION)?|STUDY)|STUDY|PROCEDURE"
    r"|(?:CLINICAL )?(?:INDICATIONS?|HISTORY|INFORMATION|DETAILS|NOTES)|CLINICAL INDICATIONS?"
    r"|REASON FOR (?:EXAM(?:INATION)?|STUDY|REFERRAL)|TECHNIQUES?|COMPARISONS?|PRIOR STUDIES"
    r"|FINDINGS?|IMPRESSIONS?|CONCLUSIONS?|OPINION|SUMMARY|RECOMMENDATIONS?|NOTIFICATION"
    r"|COMMENTS?|WET READ|ADDENDUM|PROVISIONAL(?: REPORT)?"
)
_SECTION = re.compile(rf"^[ \t]*(?P<name>{_SECTION_NAMES})[ \t]*:", re.MULTILINE)
_KEEP = ("FINDING", "FINDINGS", "IMPRESSION", "IMPRESSIONS", "CONCLUSION", "CONCLUSIONS")


def findings_and_impression(report: str) -> str:
    """The diagnostic part of a report: its FINDINGS and IMPRESSION sections, in that order.

    Reports without those sections are returned whole (stripped): many exports carry only the
    narrative, and a report whose headers are all history or technique still holds its text.
    """
    matches = list(_SECTION.finditer(report))
    if not any(m.group("name").upper() in _KEEP for m in matches):
        return report.strip()
    kept: list[str] = []
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        if match.group("name").upper() in _KEEP:
            end = following.start() if following else len(report)
            body = " ".join(report[match.end() : end].split())
            if body:
                kept.append(body)
    return "\n".join(kept)


def join_sections(*parts: str | None) -> str:
    """Join report columns (e.g. Open-i findings + impression), skipping empty ones."""
    return "\n".join(p.strip() for p in parts if p and str(p).strip() and str(p).lower() != "nan")
