"""The scrubber on real, hand-annotated notes: the PhysioNet de-identification corpus.

    python benchmarks/deid_physionet.py [--data ../shared/data/physionet-deid] [--folds 5]
                                        [--operating-points] [--show-misses]

The corpus and its reader: `umcl/ingest/deid/physionet.py`. The scrubber is `umcl/ingest/deid:
find_phi` on each whole note, as ingestion runs it on a report, in two configurations side by
side: the rules and the NER alone, and with the learned tagger (`umcl/ingest/deid/tagger.py`)
trained by patient-wise cross-validation: for each fold, the recipe of
`umcl/ingest/deid/train_tagger.py` is fitted on the other folds' patients and the project's PHI
corpus, and scores only the fold's notes, so every patient is scored once, by a model that
never saw them.

Reported per PHI kind and over the Safe Harbor kinds (a year alone, `DateYear`, may stand: it is
reported apart and left out of the total):
- **recall**: a span counts as caught only if every letter and digit of it lies inside a span the
  scrubber removes;
- **token precision**: of the word tokens the scrubber removes (a token counts as removed when
  any of its characters is), the share that overlap a PHI span;
- **non-PHI words removed**: the share of word tokens outside every PHI span that it removes,
  with the words removed most often (what a text tower would never see).
Also notes/s on one core (the tagger's training not counted). Writes
`benchmarks/results/deid_physionet.json`, whose `card` entry `train_tagger.py` quotes in the
tagger's model card.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from umcl.config import CsvColumns, SourceSettings  # noqa: E402
from umcl.ingest.deid import find_phi, tagger  # noqa: E402
from umcl.ingest.deid.physionet import Note, fold_of, read_corpus  # noqa: E402
from umcl.ingest.deid.tagger import use_model  # noqa: E402
from umcl.ingest.deid.train_tagger import corpus_examples, fit, physionet_examples  # noqa: E402
from umcl.ingest.pseudonyms import Pseudonymizer  # noqa: E402
from umcl.ingest.sources import read_source  # noqa: E402
from umcl.ingest.validate import validate_rows  # noqa: E402
from umcl.labels import LabelSpace  # noqa: E402

WORD = re.compile(r"[^\W_]+")  # letters and digits: what a span's removal is judged on
YEAR_ONLY = {"DateYear"}  # Safe Harbor lets a year alone stand


def removed_mask(text: str, tagger: bool) -> list[bool]:
    """Per character of `text`: inside a span the scrubber removes."""
    mask = [False] * len(text)
    for span in find_phi(text, tagger=tagger):
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
    return {
        "caught": caught,
        "removed_phi": removed_phi,
        "removed_other": removed_other,
        "other": other,
        "removed_words": removed_words,
    }


def misses(note: Note, mask: list[bool]) -> list[str]:
    """Each Safe Harbor span of `note` that `mask` leaves a letter or digit of, in its context
    (what is kept shown, what is removed as `_`)."""
    out = []
    for phi in note.phi:
        if phi.kind in YEAR_ONLY:
            continue
        if all(mask[i] for i in range(phi.start, phi.end) if note.text[i].isalnum()):
            continue
        kept = "".join("_" if mask[i] else note.text[i] for i in range(phi.start, phi.end))
        context = note.text[max(0, phi.start - 40) : phi.end + 30].replace("\n", " | ")
        out.append(f"{phi.kind:18} {phi.text!r:26} kept {kept!r:26} in: {context}")
    return out


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


def percent(pair: list[int]) -> str:
    return f"{pair[0]}/{pair[1]} = {pair[0] / pair[1]:.2%}" if pair[1] else "—"


def ratio(pair: list[int]) -> str:
    return f"{pair[0]}/{pair[1]} = {pair[0] / pair[1]:.3f}" if pair[1] else "—"


def ingested(notes: list[Note], folder: Path) -> dict:
    """The notes as a `format: csv` text source through `umcl validate`'s reader and row checks
    (`read_source`, `validate_rows`): how many are quarantined, and how many typed PHI spans
    survive in the text it keeps. A span survives when its text, or one of its words of 3+
    characters that the note holds nowhere outside PHI, is still in the kept text."""
    path = folder / "notes.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "patient", "report"])
        writer.writerows([f"{n.patient}-{n.note}", n.patient, n.text] for n in notes)
    columns = CsvColumns(id="id", patient="patient", text=["report"])
    source = SourceSettings(
        name="physionet", kind="text_label", format="csv", path=path, columns=columns
    )
    rows = read_source(source, LabelSpace(), Pseudonymizer("a-benchmark-key-of-some-length")).rows
    valid, quarantined = validate_rows(rows, "text_label", list(LabelSpace().names))
    kept = valid["text"].to_list()
    survived: Counter = Counter()
    total: Counter = Counter()
    for note, text in zip(notes, kept, strict=True):  # no note is quarantined: checked below
        outside = note.text
        for phi in note.phi:
            outside = outside.replace(phi.text, " ")
        other = {w.lower() for w in WORD.findall(outside)}
        for phi in note.phi:
            total[phi.kind] += 1
            words = [w for w in WORD.findall(phi.text) if len(w) >= 3 and w.lower() not in other]
            pattern = rf"(?<![^\W_]){re.escape(phi.text)}(?![^\W_])"
            if re.search(pattern, text or "", re.I) or any(
                re.search(rf"\b{re.escape(w)}\b", text or "", re.I) for w in words
            ):
                survived[phi.kind] += 1
    safe = [k for k in total if k not in YEAR_ONLY]
    return {
        "notes": len(notes),
        "quarantined": quarantined.height,
        "survived": {k: [survived[k], total[k]] for k in sorted(total)},
        "safe_harbor_survived": [sum(survived[k] for k in safe), sum(total[k] for k in safe)],
    }


def cross_validated(
    notes: list[Note], folds: int, corpus: Path, models: Path
) -> tuple[list[tuple[Note, dict]], float, dict]:
    """Each fold scored by a tagger fitted on the other folds and the project's corpus (written
    to `models`), on the scrubber alone and through the ingestion path."""
    examples = physionet_examples(notes)
    shared = corpus_examples(corpus)
    scored, seconds, through = [], 0.0, []
    for fold in range(folds):
        train = [e for e in examples if fold_of(e.group, folds) != fold] + shared
        print(f"fold {fold}: fitting on {len(train)} texts", file=sys.stderr, flush=True)
        use_model(fit(train, models / f"fold{fold}.crfsuite"))
        held = [n for n in notes if fold_of(n.patient, folds) == fold]
        started = time.perf_counter()
        for note in held:
            mask = removed_mask(note.text, True)
            scored.append((note, score_note(note, mask) | {"misses": misses(note, mask)}))
        seconds += time.perf_counter() - started
        through.append(ingested(held, models))
    use_model(None)
    merged = {
        "notes": sum(t["notes"] for t in through),
        "quarantined": sum(t["quarantined"] for t in through),
        "safe_harbor_survived": [
            sum(t["safe_harbor_survived"][i] for t in through) for i in (0, 1)
        ],
    }
    return scored, seconds, merged


# Operating points (tagger.THRESHOLD, tagger.CONFIRM) beside the shipped one: what lowering them
# buys in recall and costs in words removed.
OPERATING_POINTS = ((0.2, 0.05), (0.1, 0.02), (0.05, 0.01), (0.05, 0.005), (0.05, 0.0))


def operating_points(notes: list[Note], folds: int, models: Path) -> list[dict]:
    """The cross-validated folds' models scored again at each of `OPERATING_POINTS`."""
    shipped = (tagger.THRESHOLD, tagger.CONFIRM)
    rows = []
    for threshold, confirm in OPERATING_POINTS:
        tagger.THRESHOLD, tagger.CONFIRM = threshold, confirm
        scores = []
        for fold in range(folds):
            use_model(models / f"fold{fold}.crfsuite")
            held = [n for n in notes if fold_of(n.patient, folds) == fold]
            scores += [score_note(n, removed_mask(n.text, True)) for n in held]
        rows.append({"threshold": threshold, "confirm": confirm} | summary(scores))
    tagger.THRESHOLD, tagger.CONFIRM = shipped
    use_model(None)
    return rows


def print_operating_points(rows: list[dict]) -> None:
    print(
        "| tagger threshold | confirm | Safe Harbor recall, years aside | non-PHI words removed |"
    )
    print("|---:|---:|---:|---:|")
    for r in rows:
        shipped = (
            " (shipped)"
            if (r["threshold"], r["confirm"]) == (tagger.THRESHOLD, tagger.CONFIRM)
            else ""
        )
        print(
            f"| {r['threshold']}{shipped} | {r['confirm']} | {ratio(r['safe_harbor_recall'])} | {percent(r['non_phi_removed'])} |"
        )
    print()


def print_kinds(columns: dict[str, dict]) -> None:
    names = list(columns)
    print("| kind | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    kinds = sorted({k for c in columns.values() for k in c["recall"]})
    for kind in kinds:
        label = f"{kind} (a year alone may stand)" if kind in YEAR_ONLY else kind
        print(
            f"| {label} | "
            + " | ".join(ratio(c["recall"].get(kind, [0, 0])) for c in columns.values())
            + " |"
        )
    print(
        "| **Safe Harbor kinds, years aside** | "
        + " | ".join(f"**{ratio(c['safe_harbor_recall'])}**" for c in columns.values())
        + " |"
    )
    print(
        "| token precision | "
        + " | ".join(ratio(c["token_precision"]) for c in columns.values())
        + " |"
    )
    print(
        "| **non-PHI words removed** | "
        + " | ".join(f"**{ratio(c['non_phi_removed'])}**" for c in columns.values())
        + " |"
    )
    print(
        "| notes/s, one core | "
        + " | ".join(f"{c['notes_per_s']:.1f}" for c in columns.values())
        + " |\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/physionet-deid")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=ROOT / "benchmarks/phi_corpus.jsonl",
        help="the project's PHI corpus, in every fold's training data",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--show-misses",
        action="store_true",
        help="list every span the cross-validated scrubber leaves, in its context",
    )
    parser.add_argument(
        "--operating-points",
        action="store_true",
        help="also score the folds at other tagger thresholds (OPERATING_POINTS)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/deid_physionet.json")
    args = parser.parse_args()
    if not (args.data / "id.text").is_file():
        print(f"{args.data}: the PhysioNet deid corpus is not here (--data names its folder)")
        return 0
    notes = read_corpus(args.data)
    find_phi("Warm-up: the NER model loads once.", tagger=False)
    started = time.perf_counter()
    before = [(note, score_note(note, removed_mask(note.text, False))) for note in notes]
    before_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as models:
        tagged, tagged_s, through = cross_validated(notes, args.folds, args.corpus, Path(models))
        points = operating_points(notes, args.folds, Path(models)) if args.operating_points else []
    columns = {
        "rules + NER": summary([s for _, s in before]) | {"notes_per_s": len(notes) / before_s},
        f"rules + NER + tagger ({args.folds}-fold, patient-wise)": summary([s for _, s in tagged])
        | {"notes_per_s": len(notes) / tagged_s},
    }
    patients = len({n.patient for n in notes})
    print(
        f"## The scrubber on the PhysioNet deid corpus ({args.data}): {len(notes)} notes, "
        f"{patients} patients, {sum(len(n.phi) for n in notes)} PHI spans\n"
    )
    print_kinds(columns)
    folds = {
        f: summary([s for n, s in tagged if fold_of(n.patient, args.folds) == f])
        for f in range(args.folds)
    }
    print(
        f"| fold (patients by number mod {args.folds}), with the tagger | notes | Safe Harbor recall | non-PHI words removed |"
    )
    print("|---:|---:|---:|---:|")
    for f, s in folds.items():
        print(
            f"| {f} | {s['notes']} | {ratio(s['safe_harbor_recall'])} | {ratio(s['non_phi_removed'])} |"
        )
    if points:
        print(
            "\nThe same folds at other operating points of the tagger (`umcl/ingest/deid/tagger.py`):\n"
        )
        print_operating_points(points)
    print(
        f"\nThrough `umcl validate`'s reader and row checks (a csv text source, each fold with its own tagger): "
        f"{through['quarantined']} of {through['notes']} notes quarantined; typed Safe Harbor PHI spans surviving in the kept text "
        f"(years aside): {ratio(through['safe_harbor_survived'])}."
    )
    if args.show_misses:
        print(
            "\nSpans the cross-validated scrubber leaves (kept letters shown, removed ones as _):\n"
        )
        print("\n".join(line for _, s in tagged for line in s["misses"]))
    for name, column in columns.items():
        print(
            f"\n{name}: non-PHI words removed most often: "
            + ", ".join(f"{w} ({n})" for w, n in column["most_removed_non_phi"])
        )
    shipped = columns[next(reversed(columns))]
    card = (
        f"Patient-wise {args.folds}-fold cross-validation on the PhysioNet shared part ({len(notes)} notes, {patients} patients; "
        f"`python benchmarks/deid_physionet.py`), the whole scrubber with the tagger: Safe Harbor recall (years aside) "
        f"{ratio(shipped['safe_harbor_recall'])}; non-PHI words removed {ratio(shipped['non_phi_removed'])}; per kind: "
        + ", ".join(f"{k} {ratio(v)}" for k, v in shipped["recall"].items())
        + "."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "columns": columns,
                "folds": folds,
                "through_ingestion": through,
                "card": card,
                "operating_points": points,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
