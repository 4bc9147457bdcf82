"""A rule of the scrubber: a label, a compiled pattern, the group it removes and a validator
that rejects the pattern's clinical look-alikes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_Validator = Callable[[re.Match[str], str], bool]


def _always(match: re.Match[str], text: str) -> bool:
    return True


@dataclass(frozen=True)
class _Rule:
    label: str
    pattern: re.Pattern[str]
    group: str | int = 0
    valid: _Validator = _always


def _rule(
    label: str, pattern: str, group: str | int = 0, valid: _Validator = _always, flags: int = 0
) -> _Rule:
    return _Rule(label, re.compile(pattern, flags), group, valid)


_I = re.IGNORECASE
