"""A found identifier (`Span`: offsets and label) and the merge of overlapping spans.

Every layer yields `Span`s; `_merge` turns them into the sorted, disjoint list that
`redact` (`__init__.py`) replaces with labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str


def _merge(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            if span.end > last.end:
                longer = span if span.end - span.start > last.end - last.start else last
                merged[-1] = Span(last.start, span.end, longer.label)
            continue
        merged.append(span)
    return merged
