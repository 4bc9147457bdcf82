"""The report labeler on 1 and on all cores: reports per second, and the same labels.

    python benchmarks/labeler_parallel.py [--shared ../shared/data] [--copies 10]

Input: the findings + impression of the 3,851 real Open-i reports, repeated `--copies` times (a
site's unlabelled RIS export is hundreds of thousands of reports). `label_reports` on 1 process
and on every core; the outputs must be equal, label for label, in order.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import polars as pl

from umcl.ingest.labeler import label_reports
from umcl.ingest.reports import join_sections
from umcl.labels import LabelSpace


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    path = args.shared / "iu-xray/indiana_reports.csv"
    if not path.is_file():
        print(f"skipped: {path} not found (see ../shared/data/README.md)")
        return 0
    table = pl.read_csv(path, infer_schema=False)
    texts = [join_sections(r["findings"], r["impression"]) for r in table.iter_rows(named=True)]
    texts *= args.copies
    space = LabelSpace()
    rows, results = [], {}
    for workers in sorted({1, os.cpu_count() or 1}):
        start = time.perf_counter()
        results[workers] = label_reports(texts, space.names, space.phrases, workers)
        seconds = time.perf_counter() - start
        rows.append((workers, len(texts), seconds, len(texts) / seconds))
    same = all(result == results[1] for result in results.values())
    print("| processes | reports | seconds | reports/s | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    for workers, n, seconds, rate in rows:
        print(f"| {workers} | {n} | {seconds:.1f} | {rate:,.0f} | {rate / rows[0][3]:.2f}× |")
    print(f"identical labels on every process count: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
