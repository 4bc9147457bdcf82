"""The PhysioNet de-identification gold standard: ICU nursing notes with hand-typed PHI spans.

`id.text` holds notes as `START_OF_RECORD=patient||||note||||` … `||||END_OF_RECORD` blocks;
`id-phi.phrase` one PHI span a line, `patient note start end type text`, with offsets into the
note's text after its header line (every identifier is a realistic surrogate). The tagger is
trained on it (`train_tagger.py`) and `benchmarks/deid_physionet.py` scores on it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

_RECORD = re.compile(
    r"START_OF_RECORD=(\d+)\|\|\|\|(\d+)\|\|\|\|\n(.*?)\|\|\|\|END_OF_RECORD", re.S
)
FILES = ("id.text", "id-phi.phrase")


@dataclass(frozen=True)
class Phi:
    start: int
    end: int
    kind: str
    text: str


@dataclass
class Note:
    patient: str
    note: str
    text: str
    phi: list[Phi] = field(default_factory=list)


def read_corpus(folder: Path) -> list[Note]:
    """The notes of `id.text` with their PHI spans from `id-phi.phrase`; a span whose text is not
    what its offsets hold is an error (a misread format would score nonsense)."""
    notes = {
        (m[1], m[2]): Note(m[1], m[2], m[3])
        for m in _RECORD.finditer((folder / FILES[0]).read_text())
    }
    for line in (folder / FILES[1]).read_text().splitlines():
        if not line.strip():
            continue
        patient, note, start, end, kind, text = line.split(" ", 5)
        entry = notes[(patient, note)]
        start_i, end_i = int(start), int(end)
        if entry.text[start_i:end_i] != text:
            raise ValueError(
                f"patient {patient} note {note}: offsets {start}-{end} do not hold the span's text"
            )
        entry.phi.append(Phi(start_i, end_i, kind, text))
    return list(notes.values())


def fold_of(patient: str, folds: int) -> int:
    """Patient-wise folds, fixed by the patient number: every note of a patient in one fold."""
    return int(patient) % folds


def corpus_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in FILES:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()
