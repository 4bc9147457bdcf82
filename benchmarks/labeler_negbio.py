"""Labeler vs. the NegBio gold standard on the 3,851 real Open-i (IU X-ray) reports.

    python benchmarks/labeler_negbio.py [--shared ../shared/data]

Input: findings + impression of each report. Gold: NegBio's 14 ChestX-ray14 findings + normal,
mapped to our label space by name (Effusion → Pleural Effusion, Nodule/Mass → Lung Lesion,
normal → No Finding). Infiltration (→ Lung Opacity) and Pleural_Thickening (→ Pleural Other) are
left out: CheXpert's Lung Opacity and Pleural Other are much broader observations, so agreement
with them would measure the definitions, not the labeler. A label counts as found when the
labeler says 1 ("strict") or 1 or -1 ("mention": an uncertain mention is still a mention).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import polars as pl

from umcl.ingest.labeler import label_report
from umcl.ingest.reports import join_sections
from umcl.labels import LabelSpace

NOT_COMPARABLE = {"Lung Opacity", "Pleural Other"}


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return (
        precision,
        recall,
        (2 * precision * recall / (precision + recall) if precision + recall else 0.0),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/labeler_negbio.json"))
    args = parser.parse_args()
    reports_csv, gold_csv = (
        args.shared / "iu-xray/indiana_reports.csv",
        args.shared / "negbio/openi_gld_std14.csv",
    )
    if not (reports_csv.is_file() and gold_csv.is_file()):
        print(f"SKIP: real Open-i reports / NegBio gold labels not found under {args.shared}")
        return 0

    reports = pl.read_csv(reports_csv, infer_schema=False)
    gold = pl.read_csv(gold_csv).with_columns(
        pl.col("filename").str.strip_prefix("CXR").alias("uid")
    )
    space = LabelSpace()
    mapping = {
        label: cols
        for label, cols in space.map_columns(gold.columns).items()
        if label not in NOT_COMPARABLE
    }
    texts = {
        r["uid"]: join_sections(r["findings"], r["impression"])
        for r in reports.iter_rows(named=True)
    }

    started = time.perf_counter()
    predicted = {uid: label_report(text) for uid, text in texts.items()}
    seconds = time.perf_counter() - started

    results: dict[str, dict] = {}
    for mode, positive in (("mention", {1, -1}), ("strict", {1})):
        counts = {label: [0, 0, 0] for label in mapping}
        for row in gold.iter_rows(named=True):
            guess = predicted.get(row["uid"])
            if guess is None:
                continue
            for label, columns in mapping.items():
                truth = any(row[c] == 1 for c in columns)
                said = guess[label] in positive
                counts[label][0] += truth and said
                counts[label][1] += said and not truth
                counts[label][2] += truth and not said
        per_label = {
            label: dict(zip(("precision", "recall", "f1"), f1(*c), strict=True))
            | {"support": c[0] + c[2]}
            for label, c in counts.items()
        }
        total = [sum(c[i] for c in counts.values()) for i in range(3)]
        results[mode] = {
            "per_label": per_label,
            "micro_f1": f1(*total)[2],
            "macro_f1": sum(v["f1"] for v in per_label.values()) / len(per_label),
        }

    print(
        f"Labeler vs NegBio gold, {len(predicted)} Open-i reports (findings + impression), {len(predicted) / seconds:.0f} reports/s\n"
    )
    print(
        "| label | gold columns | support | P (mention) | R (mention) | F1 (mention) | F1 (strict) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, columns in mapping.items():
        m, s = results["mention"]["per_label"][label], results["strict"]["per_label"][label]
        print(
            f"| {label} | {' / '.join(columns)} | {m['support']} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {s['f1']:.3f} |"
        )
    for mode in ("mention", "strict"):
        print(
            f"| **{mode}: micro-F1 {results[mode]['micro_f1']:.3f}, macro-F1 {results[mode]['macro_f1']:.3f}** | | | | | | |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"reports": len(predicted), "reports_per_s": len(predicted) / seconds, **results},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
