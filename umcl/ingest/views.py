"""Which projection an image shows, and whether its source keeps it (a source's `views`).

A chest X-ray model is trained and judged on frontal images: about half of MIMIC-CXR's images are
laterals, which look nothing like the frontal images a clinician sends. Every reader that knows an
image's projection says it here, in one vocabulary: DICOM's ViewPosition terms (PA, AP, LL, RL,
…), `FRONTAL` for a frontal image whose direction the source does not state (CheXpert without
AP/PA, Open-i), `LATERAL` for a lateral of unstated side, and None when nothing says.

Kept: a view listed in `views` (its vocabulary, `config.VIEW_NAMES`, is checked with the params);
FRONTAL in `views` keeps PA and AP too, LATERAL keeps LL and RL; an image of a side whose
direction is not stated is kept when `views` holds any view of that side; an unknown view only
when `views` lists UNKNOWN. Everything else is passed over and counted by view.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from umcl.config import VIEW_NAMES, normalise_view
from umcl.ingest.records import Skipped

__all__ = ["FRONTAL", "LATERAL", "UNKNOWN", "excluded_view", "normalise_view", "view_from_words"]

FRONTAL, LATERAL, UNKNOWN = "FRONTAL", "LATERAL", "UNKNOWN"
SIDES = {FRONTAL: {"PA", "AP"}, LATERAL: {"LL", "RL"}}  # what FRONTAL and LATERAL stand for
VIEW_EXCLUDED, VIEW_UNKNOWN = "view_excluded", "view_unknown"  # reason codes (validation sums them)

_FRONTAL_WORDS = {
    "PA": re.compile(r"\b(PA|P-A|POSTERO-?ANTERIOR)\b"),
    "AP": re.compile(r"\b(AP|A-P|ANTERO-?POSTERIOR)\b"),
    FRONTAL: re.compile(r"\bFRONTAL\b"),
}
_LATERAL_WORDS = re.compile(r"\b(LAT|LATERAL|LL|RL|LLAT|RLAT)\b")


def view_from_words(texts: Iterable[str | None]) -> str | None:
    """The view that free text names unambiguously ("CHEST PA", "Thorax lat."), else None: a
    description that names both a frontal and a lateral view ("PA AND LAT") says nothing."""
    found: set[str] = set()
    for text in texts:
        if not text:
            continue
        upper = str(text).upper()
        found |= {view for view, words in _FRONTAL_WORDS.items() if words.search(upper)}
        if _LATERAL_WORDS.search(upper):
            found.add(LATERAL)
    if len(found) == 2 and FRONTAL in found and LATERAL not in found:
        found.discard(FRONTAL)  # "frontal (PA)"
    return found.pop() if len(found) == 1 else None


def excluded_view(view: str | None, kept: Sequence[str]) -> Skipped | None:
    """None when a source keeping `kept` (normalised views) keeps an image of this view; else
    why not. FRONTAL and LATERAL in `kept` stand for their sides too, and an image of a side
    whose direction is not stated is kept with either of the side's views."""
    if view is None:
        if UNKNOWN in kept:
            return None
        return Skipped(
            f"{VIEW_UNKNOWN}: nothing in the source says which view the image shows "
            "(list UNKNOWN in the source's views to keep such images)"
        )
    wanted = set(kept).union(*(SIDES[v] for v in kept if v in SIDES))
    if view in wanted or (view in SIDES and wanted & SIDES[view]):
        return None
    return Skipped(f"{VIEW_EXCLUDED}: {view if view in VIEW_NAMES else 'another view'}")
