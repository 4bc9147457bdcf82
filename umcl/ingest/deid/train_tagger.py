"""Train the de-identification tagger (`tagger.py`) and write its model card.

    python -m umcl.ingest.deid.train_tagger [--physionet ../shared/data/physionet-deid]
                                          [--corpus benchmarks/phi_corpus.jsonl]

Training data: the PhysioNet gold standard's notes (`physionet.py`) and the project's own PHI
corpus (its identifier sentences and its clinical sentences; never `phi_heldout*.jsonl`, which
are held out). Each text is labelled per token from its gold spans; a year alone (`DateYear`)
is left unlabelled, since Safe Harbor lets it stand. The weights (`tagger/model.crfsuite`) and
`tagger/MODEL_CARD.md` are written beside `tagger.py`; `benchmarks/deid_physionet.py` scores the
same recipe by patient-wise cross-validation (`fit` below), which the card quotes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from umcl.ingest.deid.lists import FOLDER as WORDLISTS
from umcl.ingest.deid.physionet import Note, corpus_sha256, read_corpus
from umcl.ingest.deid.spans import Span
from umcl.ingest.deid.tagger import (
    MODEL_DIR,
    MODEL_FILE,
    OUTSIDE,
    _token_labels,
    layer_labels,
    token_features,
    tokens_of,
)

# The gold kinds as the tagger's labels. A year alone is not an identifier under Safe Harbor.
PHYSIONET_LABELS = {
    "HCPName": "NAME",
    "PTName": "NAME",
    "RelativeProxyName": "NAME",
    "PTNameInitial": "NAME",
    "Date": "DATE",
    "Location": "LOCATION",
    "Phone": "ID",
    "Age": "AGE",
    "Other": "ID",
}
CORPUS_LABELS = {
    "name": "NAME",
    "date": "DATE",
    "age": "AGE",
    "address": "LOCATION",
    "zip": "LOCATION",
    "institution": "LOCATION",
    "vehicle": "ID",
}
# L-BFGS with elastic-net: L1 keeps the model small and drops features that do not help.
CRF_PARAMS = {"c1": 0.05, "c2": 0.01, "max_iterations": 150, "feature.possible_transitions": True}


@dataclass(frozen=True)
class Example:
    """A text, its features and its token labels, computed once and reused across folds."""

    group: str  # the patient (PhysioNet) or "corpus": folds split on it
    features: list[list[str]]
    labels: list[str]


def gold_spans_of_note(note: Note) -> list[Span]:
    return [
        Span(p.start, p.end, PHYSIONET_LABELS[p.kind])
        for p in note.phi
        if p.kind in PHYSIONET_LABELS
    ]


def gold_spans_of_entry(entry: dict) -> list[Span]:
    """Every occurrence of each identifier's surface string in a corpus entry."""
    text, spans = entry["text"], []
    for identifier in entry.get("identifiers", []):
        label = CORPUS_LABELS.get(identifier["kind"], "ID")
        for match in re.finditer(re.escape(identifier["text"]), text):
            spans.append(Span(match.start(), match.end(), label))
    return spans


def example(text: str, gold: list[Span], group: str) -> Example:
    from umcl.ingest.deid import phi_layers

    tokens = tokens_of(text)
    labels = [label or OUTSIDE for label in _token_labels(tokens, gold)]
    return Example(
        group, token_features(text, tokens, layer_labels(tokens, phi_layers(text))), labels
    )


def physionet_examples(notes: Iterable[Note]) -> list[Example]:
    return [example(n.text, gold_spans_of_note(n), n.patient) for n in notes]


def corpus_examples(path: Path) -> list[Example]:
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [example(e["text"], gold_spans_of_entry(e), "corpus") for e in entries]


def fit(examples: Sequence[Example], out: Path) -> Path:
    """Train a CRF on `examples` and write it to `out`."""
    import pycrfsuite

    trainer = pycrfsuite.Trainer(verbose=False)
    for ex in examples:
        trainer.append(ex.features, ex.labels)
    trainer.set_params(CRF_PARAMS)
    out.parent.mkdir(parents=True, exist_ok=True)
    trainer.train(str(out))
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_card(physionet: Path, corpus: Path, counts: dict[str, int], scores: str) -> str:
    lists = ", ".join(f"`{p.name}` {_sha256(p)[:12]}" for p in sorted(WORDLISTS.glob("*.txt")))
    return f"""# De-identification tagger (CRF)

A conditional random field over word tokens (python-crfsuite, L-BFGS, {CRF_PARAMS}) that labels
names, dates, locations, ages and other identifiers in clinical text, for `umcl/ingest/deid/`.
It runs offline on CPU; built by `python -m umcl.ingest.deid.train_tagger`.

## Training data
- The PhysioNet de-identification gold standard, shared part: {counts["notes"]} ICU nursing notes of
  {counts["patients"]} patients, hand-typed PHI spans (every identifier a surrogate). Distributed by
  PhysioNet with the deid software package 1.1 under the GNU GPL v2; Neamatullah et al. (2008),
  BMC Med Inform Decis Mak 8:32. sha256 of `id.text` + `id-phi.phrase`: {corpus_sha256(physionet)}.
- The project's PHI corpus `{corpus.name}` ({counts["corpus"]} sentences), sha256 {_sha256(corpus)}.
- Features read the word lists in `umcl/ingest/deid/wordlists/` ({lists}).

## Licence
The weights are derived from data distributed under the GNU GPL v2 and are offered under the same
terms; the rest of UMCL is Apache-2.0.

## What it holds
Feature weights over case, shape, word-list membership and the words of frequent English, drug
and radiology vocabularies; no word outside those vocabularies enters as itself, so the training
notes' surrogate names are not in the model.

## Held-out scores
{scores}

## Limits
Trained on US ICU nursing notes and hand-written report sentences; other note types, languages
and sites can differ. It adds to the rules and the NER of `umcl/ingest/deid/`; it does not replace
the record's known identifiers.
"""


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[3]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--physionet", type=Path, default=root.parent / "shared/data/physionet-deid"
    )
    parser.add_argument("--corpus", type=Path, default=root / "benchmarks/phi_corpus.jsonl")
    parser.add_argument(
        "--scores",
        type=Path,
        default=root / "benchmarks/results/deid_physionet.json",
        help="the cross-validated figures the card quotes (deid_physionet.py)",
    )
    args = parser.parse_args(argv)
    if not (args.physionet / "id.text").is_file():
        print(
            f"{args.physionet}: the PhysioNet deid corpus is not here (--physionet names its folder)"
        )
        return 1
    notes = read_corpus(args.physionet)
    examples = physionet_examples(notes) + corpus_examples(args.corpus)
    fit(examples, MODEL_FILE)
    scores = "Not measured yet: run `python benchmarks/deid_physionet.py`."
    if args.scores.is_file():
        scores = json.loads(args.scores.read_text()).get("card", scores)
    counts = {
        "notes": len(notes),
        "patients": len({n.patient for n in notes}),
        "corpus": sum(e.group == "corpus" for e in examples),
    }
    (MODEL_DIR / "MODEL_CARD.md").write_text(
        model_card(args.physionet, args.corpus, counts, scores)
    )
    print(f"{MODEL_FILE}: {MODEL_FILE.stat().st_size / 1e6:.2f} MB from {len(examples)} texts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
