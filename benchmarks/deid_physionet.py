"""The shipped scrubber on real, hand-annotated notes: the PhysioNet de-identification corpus.

    python benchmarks/deid_physionet.py [--data ../shared/data/physionet-deid] [--folds 5]

`id.text` holds ICU nursing notes as `START_OF_RECORD=patient||||note||||` … `||||END_OF_RECORD`
blocks; `id-phi.phrase` one hand-typed PHI span a line, `patient note start end type text`, with
offsets into the note's text after its header line (every identifier is a realistic surrogate).
The scrubber is `umcl/data/deid: find_phi` on each whole note, as ingestion runs it on a report.

Reported per PHI kind and over the Safe Harbor kinds (a year alone, `DateYear`, may stand: it is
reported apart and left out of the total):
- **recall**: a span counts as caught only if every letter and digit of it lies inside a span the
  scrubber removes;
- **token precision**: of the word tokens the scrubber removes (a token counts as removed when
  any of its characters is), the share that overlap a PHI span;
- **non-PHI words removed**: the share of word tokens outside every PHI span that it removes,
  with the words removed most often (what a text tower would never see).
Patients are split into `--folds` folds (each patient scored in exactly one): nothing in the
scrubber is fitted on this corpus, so the folds show the spread between groups of patients, and
any fitted component must be scored the same way, on folds it did not see. Also notes/s on one
core. Writes `benchmarks/results/deid_physionet.json`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from umcl.data.deid import find_phi  # noqa: E402

RECORD = re.compile(r"START_OF_RECORD=(\d+)\|\|\|\|(\d+)\|\|\|\|\n(.*?)\|\|\|\|END_OF_RECORD", re.S)
WORD = re.compile(r"[^\W_]+")  # letters and digits: what a span's removal is judged on
YEAR_ONLY = {"DateYear"}  # Safe Harbor lets a year alone stand


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
        (m[1], m[2]): Note(m[1], m[2], m[3]) for m in RECORD.finditer((folder / "id.text").read_text())
    }  # fmt: skip
    for line in (folder / "id-phi.phrase").read_text().splitlines():
        if not line.strip():
            continue
        patient, note, start, end, kind, text = line.split(" ", 5)
        entry = notes[(patient, note)]
        start_i, end_i = int(start), int(end)
        if entry.text[start_i:end_i] != text:
            raise ValueError(f"patient {patient} note {note}: offsets {start}-{end} do not hold the span's text")  # fmt: skip
        entry.phi.append(Phi(start_i, end_i, kind, text))
    return list(notes.values())


def removed_mask(text: str) -> list[bool]:
    """Per character of `text`: inside a span the scrubber removes."""
    mask = [False] * len(text)
    for span in find_phi(text):
        mask[span.start : span.end] = [True] * (span.end - span.start)
    return mask


def score_note(note: Note, mask: list[bool]) -> dict:
    """Caught spans per kind, and the word tokens removed inside and outside PHI."""
    caught: dict[str, list[int]] = {}
    for phi in note.phi:
        alnum = [i for i in range(phi.start, phi.end) if note.text[i].isalnum()]
        hit = all(mask[i] for i in alnum)
        caught.setdefault(phi.kind, [0, 0])[0] += hit
        caught[phi.kind][1] += 1
    inside = [False] * len(note.text)
    for phi in note.phi:
        inside[phi.start : phi.end] = [True] * (phi.end - phi.start)
    removed_phi = removed_other = other = 0
    removed_words: Counter = Counter()
    for word in WORD.finditer(note.text):
        span = range(word.start(), word.end())
        gone, phi_word = any(mask[i] for i in span), any(inside[i] for i in span)
        if phi_word:
            removed_phi += gone
        else:
            other += 1
            removed_other += gone
            if gone:
                removed_words[word.group().lower()] += 1
    return {"caught": caught, "removed_phi": removed_phi, "removed_other": removed_other,
            "other": other, "removed_words": removed_words}  # fmt: skip


def fold_of(patient: str, folds: int) -> int:
    """Patient-wise folds, fixed by the patient number."""
    return int(patient) % folds


def summary(scores: list[dict]) -> dict:
    kinds: dict[str, list[int]] = {}
    words: Counter = Counter()
    for s in scores:
        for kind, (hit, total) in s["caught"].items():
            kinds.setdefault(kind, [0, 0])
            kinds[kind][0] += hit
            kinds[kind][1] += total
        words += s["removed_words"]
    safe = [v for k, v in kinds.items() if k not in YEAR_ONLY]
    hit, total = sum(v[0] for v in safe), sum(v[1] for v in safe)
    removed_phi = sum(s["removed_phi"] for s in scores)
    removed_other = sum(s["removed_other"] for s in scores)
    other = sum(s["other"] for s in scores)
    return {
        "notes": len(scores),
        "recall": {k: v for k, v in sorted(kinds.items())},
        "safe_harbor_recall": [hit, total],
        "token_precision": [removed_phi, removed_phi + removed_other],
        "non_phi_removed": [removed_other, other],
        "most_removed_non_phi": words.most_common(25),
    }


def ratio(pair: list[int]) -> str:
    return f"{pair[0]}/{pair[1]} = {pair[0] / pair[1]:.3f}" if pair[1] else "—"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/physionet-deid")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/deid_physionet.json")
    args = parser.parse_args()
    if not (args.data / "id.text").is_file():
        print(f"{args.data}: the PhysioNet deid corpus is not here (--data names its folder)")
        return 0
    notes = read_corpus(args.data)
    find_phi("Warm-up: the NER model loads once.")
    started = time.perf_counter()
    scored = [(note, score_note(note, removed_mask(note.text))) for note in notes]
    seconds = time.perf_counter() - started
    folds = {f: summary([s for n, s in scored if fold_of(n.patient, args.folds) == f]) for f in range(args.folds)}  # fmt: skip
    total = summary([s for _, s in scored])
    patients = len({n.patient for n in notes})
    print(f"## The shipped scrubber on the PhysioNet deid corpus ({args.data}): {len(notes)} notes, "
          f"{patients} patients, {sum(len(n.phi) for n in notes)} PHI spans\n")  # fmt: skip
    print("| kind | recall |")
    print("|---|---:|")
    for kind, pair in total["recall"].items():
        print(
            f"| {kind}{' (a year alone may stand)' if kind in YEAR_ONLY else ''} | {ratio(pair)} |"
        )
    print(f"| **Safe Harbor kinds, years aside** | **{ratio(total['safe_harbor_recall'])}** |\n")
    print(f"Token precision: {ratio(total['token_precision'])}; non-PHI words removed: "
          f"{ratio(total['non_phi_removed'])}; {len(notes) / seconds:.1f} notes/s on one core.\n")  # fmt: skip
    print(f"| fold (patients by number mod {args.folds}) | notes | Safe Harbor recall | non-PHI words removed |")  # fmt: skip
    print("|---:|---:|---:|---:|")
    for f, s in folds.items():
        print(f"| {f} | {s['notes']} | {ratio(s['safe_harbor_recall'])} | {ratio(s['non_phi_removed'])} |")  # fmt: skip
    print("\nNon-PHI words removed most often: " + ", ".join(f"{w} ({n})" for w, n in total["most_removed_non_phi"]))  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"total": total, "folds": folds, "notes_per_s": len(notes) / seconds}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
