"""Radiology report structure: keep the findings and impression, drop headers and history."""

from __future__ import annotations

import re

_SECTION = re.compile(r"^\s*(?P<name>[A-Z][A-Z /&()-]{2,40}):", re.MULTILINE)
_KEEP = ("FINDINGS", "IMPRESSION", "CONCLUSION")


def findings_and_impression(report: str) -> str:
    """The diagnostic part of a report: its FINDINGS and IMPRESSION sections, in that order.

    Reports without recognisable section headers are returned whole (stripped): many
    exports carry only the narrative.
    """
    matches = list(_SECTION.finditer(report))
    if not matches:
        return report.strip()
    kept: list[str] = []
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        if match.group("name").strip().upper() in _KEEP:
            end = following.start() if following else len(report)
            body = " ".join(report[match.end() : end].split())
            if body:
                kept.append(body)
    return "\n".join(kept)


def join_sections(*parts: str | None) -> str:
    """Join report columns (e.g. Open-i findings + impression), skipping empty ones."""
    return "\n".join(p.strip() for p in parts if p and str(p).strip() and str(p).lower() != "nan")
