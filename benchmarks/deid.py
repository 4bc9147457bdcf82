"""De-identifiers side by side on a PHI corpus: recall per identifier kind, clinical text kept, speed.

    python benchmarks/deid.py [--corpus benchmarks/phi_corpus.jsonl]
                              [--heldout benchmarks/phi_heldout.jsonl … phi_heldout6.jsonl]
                              [--only NAME ...] [--operating-points]

Every text goes through the ingestion path of `umcl/ingest/sources.py: to_rows`:
`scrub(findings_and_impression(text), known_identifiers)`.

**Corpus format** (JSON Lines, one object a line; `benchmarks/make_phi_corpus.py` writes ours):

    {"id": "phi-000", "text": "Findings were discussed with Dr. Hernandez at 4:15 pm.",
     "identifiers": [{"kind": "name", "text": "Dr. Hernandez"}],
     "keep": ["clinical text that must survive"],           # optional
     "known_identifiers": ["HERNANDEZ^ANA", "1234567"]}      # optional, the record's RIS fields

- `identifiers`: each identifier that must not survive, as its kind and exact surface string.
  It counts as caught only if the output no longer contains its surface string (case-
  insensitive), no longer contains, as a token, any of its alphabetic tokens of >= 3
  characters that is not an ordinary word, and holds no more of its tokens with a digit (of any
  length: an age, a part of a date, a house number) and, for a name, of its 1-2 letter tokens
  ("Wu", an initial) than the rest of the input text holds: "A 93 [AGE] man", "seen 10/02
  [DATE]" and "Prof. Wu [NAME]" are leaks. Ordinary words are the `GENERIC` list below plus every
  token of the corpus's clinical entries and `keep` strings, so "Hospital" may stay, "Mercy" may not.
- An entry with no identifiers is a clinical sentence: it must come out unchanged (compared
  with runs of whitespace collapsed, since `findings_and_impression` joins lines).
- `keep`: substrings of an identifier entry that must survive verbatim (the clinical text after
  "MRN: 1234567.").

Reported per candidate: recall per kind, identifiers caught overall, clinical sentences changed,
`keep` strings lost (and, for our corpus, the same for its original and its reviewer-style
tuning section, ids `tuning-…`, and the section of issue 24's new forms, ids `forms-…`), the
same on each held-out set (`--heldout`: each written before the changes it first measured;
`make_phi_corpus.py` writes the first two, `phi_heldout3.jsonl` to `phi_heldout6.jsonl` are their
own sources, each written as it stands by a reviewer who had read neither the scrubber nor the
other corpora: the fourth before the code that followed 29aa86d, the fifth before the code that
followed 4da672c, for which the fourth's misses were read, the sixth before the code that
followed fd95d57, for which the fifth's were, so that the first two, the fourth and the fifth
are development sets now; the tagger of `umcl/ingest/deid/tagger.py` is trained on the corpus's
sections, never on these), model load seconds and reports/s on demo reports (`umcl demo`'s generator:
header, FINDINGS, IMPRESSION, planted PHI in one report in ten; known identifiers passed as the
RIS columns are). With `../shared/data/iu-xray/indiana_reports.csv` present, also the share of
real Open-i report sentences (de-identified ones with "XXXX" left out) that each candidate changes.
Writes `benchmarks/results/deid.json`. The presidio candidates need `pip install -e '.[deid-bench]'`
and are skipped without it.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from umcl.ingest import deid  # noqa: E402
from umcl.ingest.reports import findings_and_impression  # noqa: E402

Scrub = Callable[[str, Iterable[str]], str]

# Words an identifier may leave behind: what kind it was, not whose ("Hospital", "Street", "MD").
GENERIC = set(
    str.split(
        """hospital hospitals medical center centre clinic health healthcare system university college
    institute community regional general memorial foundation trust nhs county city state
    national family practice urgent care nursing home department radiology of and the for at
    street avenue ave road lane drive boulevard suite apt box city north south east west
    dr mr mrs ms md rn np phd year years old yrs age aged pager ext fax tel phone mobile
    number id acc accession mrn ssn serial license licence account member plan code on by"""
    )
)
TOKEN = re.compile(r"[^\W_]+")


# --- candidates --------------------------------------------------------------------------------
def legacy_rules() -> Scrub:
    """The rules before this benchmark (git 0f5bf77), with that commit's section splitter, which
    read 'MRN:' as a header."""
    months = (
        r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?"
        r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
    )
    field = re.compile(
        r"\b(?P<key>patient(?:'s)?\s*name|name|patient|mrn|medical\s+record(?:\s+(?:number|no\.?))?"
        r"|dob|date\s+of\s+birth|birth\s*date|accession(?:\s+(?:number|no\.?|#))?|acc(?:\s*#|\.)?"
        r"|phone|tel(?:ephone)?|ssn)\s*[:#]\s*(?P<value>[^\n]*?)"
        r"(?=\s{2,}|\s*\n|\s*$|\s+(?:mrn|dob|date|accession|acc|name|patient|phone)\b)",
        re.IGNORECASE,
    )
    patterns = [
        (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"), "[DATE]"),
        (re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"), "[DATE]"),
        (re.compile(rf"\b\d{{1,2}}\s+{months}\.?,?\s+\d{{4}}\b", re.IGNORECASE), "[DATE]"),
        (
            re.compile(rf"\b{months}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b", re.IGNORECASE),
            "[DATE]",
        ),
        (re.compile(r"(?:\+?1[\s.-]?)?\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b"), "[PHONE]"),
        (
            re.compile(
                r"\b(?i:dr|mr|mrs|ms|miss|prof)\.?\s+(?:[A-Z][a-z'-]+\s+){0,2}[A-Z][a-z'-]+\b"
            ),
            "[NAME]",
        ),
        (re.compile(r"\b[A-Za-z]{0,4}\d{6,}\b"), "[ID]"),
    ]
    section = re.compile(r"^\s*(?P<name>[A-Z][A-Z /&()-]{2,40}):", re.MULTILINE)

    def sections(report: str) -> str:
        matches = list(section.finditer(report))
        if not matches:
            return report.strip()
        kept = []
        for match, following in zip(matches, [*matches[1:], None], strict=True):
            if match.group("name").strip().upper() in ("FINDINGS", "IMPRESSION", "CONCLUSION"):
                end = following.start() if following else len(report)
                if body := " ".join(report[match.end() : end].split()):
                    kept.append(body)
        return "\n".join(kept)

    def scrub(text: str, known: Iterable[str]) -> str:
        text = sections(text)
        for identifier in sorted(
            {i.strip() for i in known if i and i.strip()}, key=len, reverse=True
        ):
            for part in {identifier, *re.split(r"[\^,\s]+", identifier)}:
                if len(part) >= 3:
                    text = re.sub(rf"\b{re.escape(part)}\b", "[NAME]", text, flags=re.IGNORECASE)
        text = field.sub(lambda m: f"{m.group('key')}: [REDACTED]", text)
        for pattern, replacement in patterns:
            text = pattern.sub(replacement, text)
        return text

    return scrub


def presidio(with_rules: bool = False, tuned: bool = False) -> Scrub:
    """presidio-analyzer with all its predefined recognizers and spaCy's small English NER,
    offline: the model by path, e-mail validation against tldextract's bundled suffix list.
    `with_rules`: its spans and the shipped scrubber's rule spans together (no second NER).
    `tuned`: only results scoring >= 0.5, and none made only of the shipped lexicon's clinical
    words, abbreviations and eponyms (the filter the shipped NER layer uses)."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    offline_tlds = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_tlds(pattern_text.rsplit("@", 1)[-1]).fqdn != ""

    config = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": str(deid._model_path())}],
    }
    engine = AnalyzerEngine(
        nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine(),
        supported_languages=["en"],
    )
    engine.registry.remove_recognizer("EmailRecognizer")
    engine.registry.add_recognizer(OfflineEmailRecognizer())

    def scrub(text: str, known: Iterable[str]) -> str:
        text = findings_and_impression(text)
        results = engine.analyze(text, language="en", score_threshold=0.5 if tuned else None)
        spans = [deid.Span(r.start, r.end, r.entity_type) for r in results]
        if tuned:
            spans = [s for s in spans if not _clinical_only(text[s.start : s.end])]
        if with_rules:
            spans += deid.find_phi(text, known, ner=False)
        return deid.redact(text, deid._merge(spans))

    return scrub


def _clinical_only(value: str) -> bool:
    words = re.findall(r"[^\s,;:()]+", value)
    return all(
        deid.is_ordinary(w) or deid._is_abbreviation(w) or deid._bare(w) in deid._EPONYMS
        for w in words
    )


def shipped(ner: bool = True, tagger: bool = True) -> Scrub:
    def scrub(text: str, known: Iterable[str]) -> str:
        text = findings_and_impression(text)
        return deid.redact(text, deid.find_phi(text, known, ner=ner, tagger=tagger))

    return scrub


SHIPPED = "shipped (rules + NER + tagger)"
CANDIDATES: dict[str, Callable[[], Scrub]] = {
    "rules before (0f5bf77)": legacy_rules,
    "presidio 2.2 (defaults)": presidio,
    "presidio + shipped rules": lambda: presidio(with_rules=True),
    "presidio tuned + shipped rules": lambda: presidio(with_rules=True, tuned=True),
    "shipped rules, no NER": lambda: shipped(ner=False, tagger=False),
    "rules + NER, no tagger": lambda: shipped(tagger=False),
    SHIPPED: shipped,
}


# --- scoring -----------------------------------------------------------------------------------
def load_corpus(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ordinary_words(corpus: list[dict]) -> set[str]:
    words = set(GENERIC)
    for entry in corpus:
        texts = entry.get("keep", []) + ([] if entry["identifiers"] else [entry["text"]])
        words |= {t.lower() for text in texts for t in TOKEN.findall(text)}
    return words


LABEL = re.compile(r"\[[A-Z_]+\]")


def caught(
    identifier: str, output: str, ordinary: set[str], source: str = "", kind: str = ""
) -> bool:
    """Is `identifier` (of `kind`, in the input text `source`) gone from `output`?

    Not if its surface string survives, nor any of its tokens of 3+ letters that is not an
    ordinary word. Short tokens are counted against the rest of the input: a token with a digit
    (an age, a part of a date, a house number), of any length, and a 1-2 letter token of a name
    ("Wu", an initial) are leaks when the output holds more of them than the input holds outside
    the identifier ("A 93 [AGE] man", "seen 10/02 [DATE]", "Prof. Wu [NAME]"). The scrubber's
    labels ("[AGE]") are not text of the output."""
    if identifier.lower() in output.lower():
        return False
    left = [t.lower() for t in TOKEN.findall(LABEL.sub(" ", output))]
    present = set(left)
    rest = [t.lower() for t in TOKEN.findall(source.replace(identifier, " "))]
    for token in TOKEN.findall(identifier):
        low = token.lower()
        numeric = any(c.isdigit() for c in token)
        if numeric or (kind == "name" and len(token) <= 2 and low not in ordinary):
            if left.count(low) > rest.count(low):
                return False
        elif len(token) >= 3 and low not in ordinary and low in present:
            return False
    return True


SECTIONS = ("main", "tuning", "forms")


def section_of(entry: dict) -> str:
    """'tuning' for the reviewer-style section of our corpus (ids 'tuning-…'), 'forms' for the
    section of issue 24's new forms (ids 'forms-…'), else 'main'."""
    section = str(entry.get("id", "")).split("-", 1)[0]
    return section if section in SECTIONS else "main"


def _squash(text: str) -> str:
    return " ".join(text.split())


def score(scrub: Scrub, corpus: list[dict], ordinary: set[str]) -> dict:
    per_kind: dict[str, list[int]] = {}
    sections: dict[str, dict[str, list[int]]] = {}
    changed, clinical, lost, keeps, misses = 0, 0, 0, 0, []
    started = time.perf_counter()
    for entry in corpus:
        out = scrub(entry["text"], entry.get("known_identifiers", []))
        section = sections.setdefault(section_of(entry), {"caught": [0, 0], "changed": [0, 0]})
        if not entry["identifiers"]:
            clinical += 1
            section["changed"][1] += 1
            if _squash(out) != _squash(entry["text"]):
                changed += 1
                section["changed"][0] += 1
                misses.append({"id": entry["id"], "changed": out})
        for identifier in entry["identifiers"]:
            ok = caught(identifier["text"], out, ordinary, entry["text"], identifier["kind"])
            per_kind.setdefault(identifier["kind"], [0, 0])[0] += ok
            per_kind[identifier["kind"]][1] += 1
            section["caught"][0] += ok
            section["caught"][1] += 1
            if not ok:
                misses.append(
                    {
                        "id": entry["id"],
                        "kind": identifier["kind"],
                        "leaked": identifier["text"],
                        "output": out,
                    }
                )
        for keep in entry.get("keep", []):
            keeps += 1
            if _squash(keep) not in _squash(out):
                lost += 1
                misses.append({"id": entry["id"], "lost": keep, "output": out})
    seconds = time.perf_counter() - started
    found = sum(v[0] for v in per_kind.values())
    total = sum(v[1] for v in per_kind.values())
    return {
        "recall": {k: round(v[0] / v[1], 4) for k, v in sorted(per_kind.items())},
        "counts": {k: v for k, v in sorted(per_kind.items())},
        "recall_overall": round(found / total, 4),
        "clinical_changed": round(changed / clinical, 4) if clinical else None,
        "clinical_changed_n": [changed, clinical],
        "keep_lost_n": [lost, keeps],
        "sections": sections,
        "corpus_texts_per_s": round(len(corpus) / seconds, 1),
        "misses": misses,
    }


def demo_reports(n: int, seed: int = 7) -> list[tuple[str, list[str]]]:
    """Reports as `umcl demo` writes them, with the RIS columns the demo reader passes along."""
    from umcl.demo.reports import describe, sample_findings
    from umcl.demo.studies import draw_patients, draw_studies, report_text

    rng = np.random.default_rng(seed)
    patients = draw_patients(rng, n, 3)
    out = []
    for patient, (accession, when) in zip(patients, draw_studies(rng, patients), strict=True):
        text = report_text(describe(sample_findings(rng, 0.35), rng), patient, accession, when, rng)
        known = [
            patient.mrn,
            f"{patient.name[1].upper()}^{patient.name[0].upper()}",
            f"{when:%Y-%m-%d}",
        ]
        out.append((text, known))
    return out


def iu_sentences(path: Path, limit: int) -> list[str]:
    """Sentences of real Open-i findings and impressions, without the de-identified ones."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    sentences = []
    for row in rows:
        for column in ("findings", "impression"):
            for sentence in re.split(r"(?<=\.)\s+", row.get(column) or ""):
                if sentence.strip() and "XXXX" not in sentence:
                    sentences.append(sentence.strip())
    return sentences


def cold_start() -> float:
    """Seconds for a fresh process to import the scrubber and scrub its first text with the NER."""
    code = (
        "import time; t = time.perf_counter(); from umcl.ingest.deid import scrub_text; "
        "scrub_text('Gunnar Lindqvist came from Mount Sinai Queens.'); print(time.perf_counter() - t)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(run.stdout.strip())


def throughput(scrub: Scrub, reports: list[tuple[str, list[str]]]) -> float:
    started = time.perf_counter()
    for text, known in reports:
        scrub(text, known)
    return len(reports) / (time.perf_counter() - started)


def iu_changed(scrub: Scrub, sentences: list[str]) -> dict:
    changed = [s for s in sentences if _squash(scrub(s, [])) != _squash(s)]
    return {
        "changed": round(len(changed) / len(sentences), 4),
        "n": len(sentences),
        "examples": changed[:15],
    }


# --- report ------------------------------------------------------------------------------------
def _fraction(pair: list[int], percent: bool = False) -> str:
    if not pair[1]:
        return "–"
    return f"{pair[0] / pair[1]:.1%}" if percent else f"{pair[0] / pair[1]:.3f}"


def _row(label: str, cells: Iterable[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def _head(corner: str, names: list[str]) -> str:
    return (
        f"| {corner}".rstrip()
        + " | "
        + " | ".join(names)
        + " |\n|---|"
        + "---:|" * len(names)
        + "\n"
    )


def _score_rows(scores: list[dict], kinds: list[tuple[str, int]]) -> list[str]:
    """Recall per kind, overall recall and clinical sentences changed: the rows both tables share."""
    rows = [
        _row(f"{kind} (n={n})", (f"{s['recall'].get(kind, float('nan')):.2f}" for s in scores))
        for kind, n in kinds
    ]
    rows.append(_row("**all identifiers**", (f"**{s['recall_overall']:.3f}**" for s in scores)))
    rows.append(
        _row(
            "clinical sentences changed",
            (
                f"{s['clinical_changed']:.1%} ({s['clinical_changed_n'][0]}/{s['clinical_changed_n'][1]})"
                for s in scores
            ),
        )
    )
    return rows


def heldout_table(results: dict[str, dict], name: str) -> str:
    """Recall per kind and clinical sentences changed on the held-out set `name`."""
    names = [n for n, r in results.items() if name in r.get("heldout", {})]
    if not names:
        return ""
    scores = [results[n]["heldout"][name] for n in names]
    kinds = [(kind, n) for kind, (_, n) in scores[0]["counts"].items()]
    return _head(name, names) + "\n".join(_score_rows(scores, kinds))


def table(results: dict[str, dict], kinds: list[str]) -> str:
    scores = list(results.values())
    first = scores[0]
    counted = [(kind, first["counts"].get(kind, [0, 0])[1]) for kind in kinds]
    rows = _score_rows(scores, counted)
    rows.append(
        _row(
            "clinical text lost in identifier sentences",
            (f"{s['keep_lost_n'][0]}/{s['keep_lost_n'][1]}" for s in scores),
        )
    )
    if len(first["sections"]) > 1:
        for section in (s for s in SECTIONS if s in first["sections"]):
            counts = first["sections"][section]
            rows.append(
                _row(
                    f"{section} section: identifiers caught (n={counts['caught'][1]})",
                    (_fraction(s["sections"][section]["caught"]) for s in scores),
                )
            )
            rows.append(
                _row(
                    f"{section} section: clinical changed (n={counts['changed'][1]})",
                    (_fraction(s["sections"][section]["changed"], percent=True) for s in scores),
                )
            )
    if all("iu" in s for s in scores):
        rows.append(
            _row(
                f"real Open-i sentences changed (n={first['iu']['n']})",
                (f"{s['iu']['changed']:.1%}" for s in scores),
            )
        )
    rows.append(
        _row(
            "corpus texts/s (most need the NER)", (f"{s['corpus_texts_per_s']:.0f}" for s in scores)
        )
    )
    rows.append(_row("demo reports/s", (f"{s['reports_per_s']:.0f}" for s in scores)))
    return _head("", list(results)) + "\n".join(rows)


def operating_points_table(corpora: dict[str, list[dict]]) -> str:
    """Recall and clinical sentences changed on each corpus at each operating point of the
    tagger that `deid_physionet.py --operating-points` scores on the PhysioNet notes."""
    from deid_physionet import OPERATING_POINTS

    from umcl.ingest.deid import tagger

    point = (tagger.THRESHOLD, tagger.CONFIRM)
    head = " | ".join(f"{name}: recall | {name}: clinical changed" for name in corpora)
    lines = [
        f"| tagger threshold | confirm | {head} |",
        "|---:|---:|" + "---:|---:|" * len(corpora),
    ]
    for threshold, confirm in OPERATING_POINTS:
        tagger.THRESHOLD, tagger.CONFIRM = threshold, confirm
        cells = []
        for entries in corpora.values():
            result = score(shipped(), entries, ordinary_words(entries))
            changed, clinical = result["clinical_changed_n"]
            cells += [
                f"{result['recall_overall']:.3f}",
                f"{changed}/{clinical} = {_fraction([changed, clinical], percent=True)}",
            ]
        mark = " (shipped)" if (threshold, confirm) == point else ""
        lines.append(f"| {threshold}{mark} | {confirm} | " + " | ".join(cells) + " |")
    tagger.THRESHOLD, tagger.CONFIRM = point
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "benchmarks/phi_corpus.jsonl")
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--reports", type=int, default=500, help="demo reports timed per candidate")
    parser.add_argument(
        "--iu", type=Path, default=ROOT.parent / "shared/data/iu-xray/indiana_reports.csv"
    )
    parser.add_argument("--iu-reports", type=int, default=1000)
    parser.add_argument(
        "--heldout",
        type=Path,
        nargs="*",
        default=[
            ROOT / "benchmarks/phi_heldout.jsonl",
            ROOT / "benchmarks/phi_heldout2.jsonl",
            ROOT / "benchmarks/phi_heldout3.jsonl",
            ROOT / "benchmarks/phi_heldout4.jsonl",
            ROOT / "benchmarks/phi_heldout5.jsonl",
            ROOT / "benchmarks/phi_heldout6.jsonl",
        ],
        help="corpora scored beside the first, never tuned on (none to skip)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/deid.json")
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument(
        "--operating-points",
        action="store_true",
        help="only the shipped scrubber at each tagger operating point of deid_physionet.py",
    )
    args = parser.parse_args()

    corpus = load_corpus(args.corpus)
    ordinary = ordinary_words(corpus)
    heldout = {p.stem: load_corpus(p) for p in args.heldout if p.is_file()}
    if args.operating_points:
        print(operating_points_table({args.corpus.stem: corpus, **heldout}))
        return 0
    reports = demo_reports(args.reports)
    sentences = iu_sentences(args.iu, args.iu_reports)
    results: dict[str, dict] = {}
    for name, build in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        try:
            scrub = build()
            scrub("Warm-up: discussed with Dr. Smith.", [])
        except ImportError as error:
            print(f"SKIP {name}: {error}")
            continue
        load_s = time.perf_counter() - started
        result = score(scrub, corpus, ordinary)
        result["load_s"] = round(load_s, 2)
        result["reports_per_s"] = round(throughput(scrub, reports), 1)
        if sentences:
            result["iu"] = iu_changed(scrub, sentences)
        result["heldout"] = {k: score(scrub, v, ordinary_words(v)) for k, v in heldout.items()}
        results[name] = result
        print(
            f"{name}: recall {result['recall_overall']:.3f}, clinical changed {result['clinical_changed']:.1%}, {result['reports_per_s']:.0f} reports/s",
            flush=True,
        )
        for set_name, held in result["heldout"].items():
            print(
                f"    {set_name}: recall {held['recall_overall']:.3f}, clinical changed {held['clinical_changed']:.1%}",
                flush=True,
            )
        if args.show_misses:
            for miss in result["misses"] + [
                m for h in result["heldout"].values() for m in h["misses"]
            ]:
                print("   ", miss)
    if SHIPPED in results:
        results[SHIPPED]["cold_start_s"] = round(cold_start(), 2)
        print(
            f"shipped: a fresh process imports and scrubs its first text in {results[SHIPPED]['cold_start_s']:.1f} s"
        )
    kinds = sorted({i["kind"] for e in corpus for i in e["identifiers"]})
    print()
    print(table(results, kinds))
    for set_name in heldout:
        print()
        print(heldout_table(results, set_name))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "date": date.today().isoformat(),
        "corpus": str(
            args.corpus.relative_to(ROOT) if args.corpus.is_relative_to(ROOT) else args.corpus
        ),
        "entries": len(corpus),
        "heldout_entries": {k: len(v) for k, v in heldout.items()},
        "demo_reports_timed": len(reports),
        "candidates": results,
    }
    args.out.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
