"""Every change the scrubber makes to the real Open-i (IU) chest X-ray reports, for review.

    python benchmarks/deid_iu_review.py [--reports ../shared/data/iu-xray/indiana_reports.csv]

The IU reports were de-identified by their publisher (identifiers became "XXXX"), so what the
scrubber still removes from them is, nearly always, clinical wording taken for an identifier.
Each report (indication, comparison, findings and impression, one field a line, as a RIS export
holds them) goes through `umcl/ingest/deid: find_phi`; every removed span is listed with its
context in `benchmarks/results/deid_iu_changes.md`, so each one can be reviewed by eye, with the
count of reports changed printed as a table.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from umcl.ingest.deid import find_phi  # noqa: E402

FIELDS = ("indication", "comparison", "findings", "impression")


def report_text(row: dict[str, str]) -> str:
    return "\n".join(f"{f.upper()}: {row.get(f) or ''}" for f in FIELDS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--reports", type=Path, default=ROOT.parent / "shared/data/iu-xray/indiana_reports.csv"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/deid_iu_changes.md")
    args = parser.parse_args()
    if not args.reports.is_file():
        print(f"{args.reports}: the IU reports are not here (--reports names the CSV)")
        return 0
    with args.reports.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    started = time.perf_counter()
    changes: list[tuple[str, str, str, str]] = []
    for row in rows:
        text = report_text(row)
        for span in find_phi(text):
            removed = text[span.start : span.end]
            context = text[max(0, span.start - 60) : span.end + 40].replace("\n", " | ")
            changes.append((row["uid"], span.label, removed, context))
    seconds = time.perf_counter() - started
    reports_changed = len({uid for uid, *_ in changes})
    words = Counter(removed.lower() for _, _, removed, _ in changes)
    print("| IU reports | reports changed | spans removed | reports/s |")
    print("|---:|---:|---:|---:|")
    print(f"| {len(rows)} | {reports_changed} | {len(changes)} | {len(rows) / seconds:.0f} |")
    print("\nRemoved: " + ", ".join(f"{w} ({n})" for w, n in words.most_common()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# What the scrubber removes from the {len(rows)} IU reports",
        "",
        "`python benchmarks/deid_iu_review.py`: one line per removed span (report uid, label, the span, its context).",
        "",
    ]
    lines += [
        f"- {uid} `{label}` **{removed}**: …{context}…" for uid, label, removed, context in changes
    ]
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
