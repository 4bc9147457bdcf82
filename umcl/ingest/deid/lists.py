"""The public word lists (`wordlists/`, built by `build_wordlists.py`) as look-ups.

The lists are evidence, never a verdict on their own: a census surname is also "Brown" and
"Hope", a GeoNames place is also "Reading" and "Bath". The tagger reads them as features, the
rules only after a cue ("lives in …"), and the drug list protects words that are no census name.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

FOLDER = Path(__file__).parent / "wordlists"
# Longest place name, in words, looked up after a residence cue ("north tonawanda").
MAX_PLACE_WORDS = 3


@cache
def ranks(name: str) -> dict[str, int]:
    """A list as entry → rank (1 = first line: the most frequent, where the source ranks)."""
    entries = (FOLDER / f"{name}.txt").read_text().split("\n")
    out: dict[str, int] = {}
    for rank, entry in enumerate(entries, 1):
        if entry:
            out.setdefault(entry, rank)
    return out


def is_place(phrase: str) -> bool:
    return phrase.lower() in ranks("places")


def is_common_english(word: str, top: int = 30_000) -> bool:
    rank = ranks("english").get(word.lower())
    return rank is not None and rank <= top


def census_key(word: str) -> str:
    """A word as the census lists write names: "O'Brien" as "obrien"."""
    return word.lower().replace("'", "").replace("’", "")


def is_person_name(word: str) -> bool:
    """A census surname or given name."""
    key = census_key(word)
    return key in ranks("surnames") or key in ranks("given_names")


@cache
def protected_drugs() -> frozenset[str]:
    """Drug names that are no census name: "lasix", "coumadin", "zosyn" (not "allen", "bill")."""
    names = {*ranks("surnames"), *ranks("given_names")}
    return frozenset(d for d in ranks("drugs") if d not in names)
