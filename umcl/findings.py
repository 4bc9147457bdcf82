"""The findings a caller may ask a model about, and how each is answered: one rule and one shape
for the Python API (`umcl/inference.py`) and the service (`umcl/service.py`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from umcl.errors import InputError
from umcl.log_privacy import clip
from umcl.model.prompts import unpromptable

if TYPE_CHECKING:
    from umcl.calibration import Calibration
    from umcl.config import PromptSettings

# Stripped, at most this long, with a letter or digit: a blank name would score the bare
# context, and a very long one would overrun the text tower's positions.
MAX_FINDING_CHARS = 80
SHOWN_PROBLEMS = 8  # a refusal names at most this many of the names it refuses


def is_text(value: str) -> bool:
    """Encodable as UTF-8 (the tokenizer cannot take a lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def listed(values: Iterable, what: str, items: str) -> list:
    """`values` as a list; a non-iterable (None, a number) is named rather than failing in list()."""
    try:
        return list(values)
    except TypeError:
        raise TypeError(f"{what} must be a list of {items}; got {type(values).__name__}") from None


def is_finding_name(name: str) -> bool:
    stripped = name.strip()
    return (
        bool(re.search(r"[A-Za-z0-9]", stripped))
        and len(stripped) <= MAX_FINDING_CHARS
        and is_text(stripped)
    )


def checked_findings(
    findings: Iterable[str] | None,
    labels: list[str],
    prompt: PromptSettings,
    limit: int | None = None,
) -> list[str]:
    """The names to score: the model's `labels` when `findings` is None, else `findings`
    stripped and checked (names, no duplicates, at most `limit`, each expressible by the model's
    prompts). A caller's mistake raises TypeError or InputError saying which names and why."""
    if findings is None:
        return labels
    if isinstance(findings, str):
        raise TypeError("findings is one string; pass a list of finding names")
    given = listed(findings, "findings", "names")
    for index, name in enumerate(given):
        if not isinstance(name, str):
            raise TypeError(f"finding {index} is {type(name).__name__}, not str")
    if not given:
        raise InputError("findings is empty: leave it out to score the model's own labels")
    if limit is not None and len(given) > limit:
        raise InputError(f"{len(given)} findings; at most {limit}")
    problems = [f"{i} ({clip(n.strip())!r})" for i, n in enumerate(given) if not is_finding_name(n)]
    if problems:
        shown = ", ".join(problems[:SHOWN_PROBLEMS])
        rule = f"(1–{MAX_FINDING_CHARS} characters, with letters)"
        raise InputError(
            f"finding {shown} is not a finding name {rule}"
            if len(problems) == 1
            else f"findings {shown} are not finding names {rule}"
        )
    names = [n.strip() for n in given]
    if len(set(names)) != len(names):
        raise InputError("findings has duplicates")
    unknown = unpromptable(names, labels, prompt)
    if unknown:
        raise InputError(
            f"{[clip(u) for u in unknown[:SHOWN_PROBLEMS]]} are outside this model's label "
            f"space, and its class-specific prompts cannot express new names; known: {labels}"
        )
    return names


def calibrated_flags(calibration: Calibration | None, names: Sequence[str]) -> list[bool]:
    """Per finding, whether its probability went through a fitted calibration (else it is the
    raw zero-shot score, decided at 0.5)."""
    return [calibration is not None and calibration.calibrated(n) for n in names]


def scored_findings(
    names: Sequence[str],
    probabilities: Sequence[float],
    positives: Sequence[bool],
    calibrated: Sequence[bool],
) -> dict[str, dict[str, float | bool]]:
    """One image's answer: per finding, its probability, its decision and whether it is
    calibrated."""
    return {
        name: {"probability": float(p), "positive": bool(d), "calibrated": c}
        for name, p, d, c in zip(names, probabilities, positives, calibrated, strict=True)
    }
