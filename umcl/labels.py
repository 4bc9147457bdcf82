"""The label space: names, synonyms across datasets, and the uncertainty policy.

Datasets name the same finding differently (ChestX-ray14 `Effusion`, CheXpert `Pleural Effusion`,
Open-i `normal`, a folder called `PNEUMONIA`), and CheXpert's own CSV orders its columns
differently from its paper. So labels are always mapped by name, never by column position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from umcl.errors import InputError

if TYPE_CHECKING:  # types only: `umcl/config/settings.py` checks label names with this module
    from umcl.config import LabelSettings, UncertaintyPolicy

CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

# Other datasets' names for CheXpert observations (keys are normalised: see `normalise`).
DEFAULT_SYNONYMS: dict[str, str] = {
    "effusion": "Pleural Effusion",  # ChestX-ray14, NegBio
    "nodule": "Lung Lesion",
    "mass": "Lung Lesion",
    "infiltration": "Lung Opacity",
    "infiltrate": "Lung Opacity",
    "pleural thickening": "Pleural Other",
    "normal": "No Finding",  # NegBio / Open-i, Kermany's NORMAL folder
}

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
# When two source columns land on one label (Nodule and Mass → Lung Lesion), the stronger
# statement wins: a positive beats an uncertain mention, which beats a negative one.
_PRECEDENCE = {POSITIVE: 3, UNCERTAIN: 2, NEGATIVE: 1}


def normalise(name: str) -> str:
    """`Pleural_Thickening`, `pleural-thickening` and ` Pleural  thickening` are one name."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def strongest(values: Iterable[int | None]) -> int | None:
    """Combine several statements about one finding (None = not mentioned)."""
    present = [v for v in values if v is not None]
    return max(present, key=lambda v: _PRECEDENCE.get(v, 0)) if present else None


@dataclass(frozen=True)
class LabelSpace:
    names: tuple[str, ...] = CHEXPERT_LABELS
    synonyms: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SYNONYMS))
    # The report phrases of the site's own findings (`labels.custom`), for the labeler.
    phrases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted({t for t in self.synonyms.values() if t not in self.names})
        if unknown:
            raise InputError(f"synonyms point at labels outside the label space: {unknown}")

    @classmethod
    def from_settings(cls, settings: LabelSettings) -> LabelSpace:
        names = tuple(settings.names) if settings.names else CHEXPERT_LABELS
        names += tuple(c.name for c in settings.custom if c.name not in names)
        synonyms = {k: v for k, v in DEFAULT_SYNONYMS.items() if v in names}
        synonyms.update({normalise(k): v for k, v in settings.synonyms.items()})
        phrases = {c.name: tuple(c.phrases) for c in settings.custom}
        return cls(names=names, synonyms=synonyms, phrases=phrases)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def resolve(self, source_name: str) -> str | None:
        """The label a dataset's column or class name stands for, or None if it has none."""
        key = normalise(source_name)
        for name in self.names:
            if normalise(name) == key:
                return name
        return self.synonyms.get(key)

    def map_columns(self, columns: Sequence[str]) -> dict[str, list[str]]:
        """Label name → the source columns that speak about it (by name, in any order)."""
        mapping: dict[str, list[str]] = {}
        for column in columns:
            label = self.resolve(column)
            if label is not None:
                mapping.setdefault(label, []).append(column)
        return mapping


def apply_uncertainty(labels: np.ndarray, policy: UncertaintyPolicy) -> np.ndarray:
    """Raw labels (1/0/-1, NaN = not mentioned) → training targets (NaN = not known).

    `zeros` and `ones` read an uncertain mention as negative or positive (CheXpert's U-Zeros and
    U-Ones); `ignore` treats it like no mention at all.
    """
    out = np.asarray(labels, dtype=np.float32).copy()
    uncertain = out == UNCERTAIN
    out[uncertain] = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}[policy]
    return out
