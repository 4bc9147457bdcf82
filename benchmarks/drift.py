"""Power and false alarms of drift detection (`umcl drift`) with the demo champion and the
reference packaged with it (drawn from the test split).

No-drift windows are drawn from the demo's validation split — patients the reference never
saw, of the same collection. Shifted windows:
- kermany: real paediatric chest X-rays (JPEG) from another collection (../shared/data),
- window: the validation images under a narrow display window and a steeper gamma (PNG),
- resolution: the validation images at a third of their size (PNG),
- scanner: the validation images re-encoded as a new detector writes them, MONOCHROME1 12-bit
  DX DICOM: decoded correctly, the pixels the model sees do not change, so only the input mix
  should move.
Every image goes through the service's decoding (`umcl.load`); its decode facts come from its
header (`inspect_image`). Each window is judged as `umcl drift` judges one (`detect`), with a
no-drift window of the same size as the window before it; the table gives, per window size, how
often the verdict is drift (any reason) and how often the input test alone fires, with the
reference sample (MMD) and with summary statistics only (`monitor.reference_size: 0`).

    python benchmarks/drift.py [--windows 40] [--sizes 25 50 100 200] [--model umcl:<version>]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from tqdm import tqdm

import umcl
from umcl import registry
from umcl.config import load_settings
from umcl.imaging.images import inspect_image, load_image
from umcl.ingest.locator import image_files
from umcl.monitor.drift import DRIFT, Window, detect, window_of
from umcl.monitor.reference import model_reference
from umcl.monitor.served import decode_facts
from umcl.monitor.store import classified_records, schema

REPO = Path(__file__).resolve().parents[1]
KERMANY = REPO.parent / "shared/data/kermany/train"
TAG = "umcl:benchmark"  # the records' model tag: they never reach a store


def split_files(split: str, limit: int, seed: int) -> list[Path]:
    triplets = pl.read_parquet(REPO / "data/unified/triplets.parquet")
    keys = sorted(
        set(triplets.filter(pl.col("image").is_not_null() & (pl.col("split") == split))["image"])
    )
    if not keys:
        sys.exit(f"no {split} images: run `dvc repro` first")
    files = [REPO / f for f in image_files(keys, REPO / "data/locator")]
    order = np.random.default_rng(seed).permutation(len(files))[:limit]
    return [files[i] for i in sorted(order)]


def narrow_window(pixels: np.ndarray) -> np.ndarray:
    return np.clip((pixels - 0.35) / 0.3, 0, 1) ** 0.6


def write_png(pixels: np.ndarray, path: Path, scale: float = 1.0) -> Path:
    image = Image.fromarray(np.rint(pixels * 255).astype(np.uint8))
    if scale != 1.0:
        image = image.resize(
            (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
        )
    image.save(path)
    return path


def write_monochrome1_dicom(pixels: np.ndarray, path: Path) -> Path:
    """As a new detector stores the same picture: inverted 12-bit values, DX, no patient data."""
    stored = np.rint((1.0 - pixels) * 4095).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray, For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.ViewPosition = "DX", "PA"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def scored(predictor, files: list[Path], what: str) -> list[dict]:
    """The records the service would write for `files` (`umcl/monitor/store.py`)."""
    records = []
    for start in tqdm(range(0, len(files), 64), desc=f"embed {what}", unit="batch", leave=False):
        batch = files[start : start + 64]
        embeddings = predictor.embed_images(batch)
        probabilities, _ = predictor.score(embeddings)
        facts = [decode_facts(inspect_image(f)) for f in batch]
        records += classified_records(TAG, facts, embeddings, probabilities.numpy())
    return records


def window_from(pool: list[dict], rows: np.ndarray, dim: int, thresholds: np.ndarray) -> Window:
    """A window of the pool's records, read as `umcl drift` reads the store."""
    table = pa.Table.from_pylist([pool[i] for i in rows], schema=schema())
    return window_of(lambda: [table], dim, thresholds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--windows", type=int, default=40, help="windows per cell (no drift: twice)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--pool", type=int, default=600, help="images per pool")
    parser.add_argument("--model", help="umcl:<version> (default: the store's champion)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/drift.json")
    args = parser.parse_args()
    entry = registry.get(args.model) if args.model else registry.champion()
    reference = model_reference(entry.path, entry.tag)
    settings = load_settings(REPO / "params.yaml").monitor
    summary_only = replace(reference, embeddings=reference.embeddings[:0])  # reference_size: 0
    predictor = umcl.load(entry.tag)
    dim_and_thresholds = (reference.mean.shape[0], reference.thresholds)

    own = split_files("val", args.pool, args.seed)
    work = Path(tempfile.mkdtemp(prefix="umcl-drift-"))
    pools = {"no drift": scored(predictor, own, "validation images")}
    decoded = [load_image(f) for f in own]
    shifted_files = {
        "window": [write_png(narrow_window(p), work / f"w{i}.png") for i, p in enumerate(decoded)],
        "resolution": [write_png(p, work / f"r{i}.png", 1 / 3) for i, p in enumerate(decoded)],
        "scanner": [write_monochrome1_dicom(p, work / f"s{i}.dcm") for i, p in enumerate(decoded)],
    }
    if KERMANY.is_dir():
        kermany = sorted(KERMANY.glob("*/*.jpeg"))
        picked = np.random.default_rng(args.seed).permutation(len(kermany))[: args.pool]
        shifted_files = {"kermany": [kermany[i] for i in sorted(picked)], **shifted_files}
    else:
        print(f"{KERMANY} is absent: the real-collection shift is skipped", file=sys.stderr)
    for name, files in shifted_files.items():
        pools[name] = scored(predictor, files, name)

    rng = np.random.default_rng(args.seed)
    started = datetime.now(UTC)  # the windows are drawn, not timed: one stamp for the reports
    rows = []
    for size in args.sizes:
        for name, pool in pools.items():
            count = 2 * args.windows if name == "no drift" else args.windows
            hits = {
                "any": 0,
                "input": 0,
                "mmd alone": 0,
                "input (summary)": 0,
                "prediction": 0,
                "quality": 0,
            }
            cell = settings.model_copy(update={"min_images": min(settings.min_images, size)})
            for w in tqdm(range(count), desc=f"{name} ×{size}", leave=False):
                window = window_from(
                    pool, rng.choice(len(pool), size, replace=False), *dim_and_thresholds
                )
                before = window_from(
                    pools["no drift"],
                    rng.choice(len(pools["no drift"]), size, replace=False),
                    *dim_and_thresholds,
                )
                when = {"model": entry.tag, "since": started, "until": started, "seed": w}
                report = detect(reference, window, before, cell, **when)
                summary = detect(summary_only, window, before, cell, **when)
                hits["any"] += report["verdict"] == DRIFT
                hits["input"] += report["input"]["drifted"]
                hits["mmd alone"] += report["input"]["tests"]["mmd"]["p_value"] < settings.alpha
                hits["input (summary)"] += summary["input"]["drifted"]
                hits["prediction"] += bool(report["prediction"]["drifted"])
                hits["quality"] += report["quality"]["drifted"]
            rows.append(
                {
                    "shift": name,
                    "window": size,
                    "windows": count,
                    **{k: v / count for k, v in hits.items()},
                }
            )
            print(
                f"{name:<10} n={size:<4} "
                + "  ".join(f"{k} {v / count:.2f}" for k, v in hits.items()),
                flush=True,
            )

    print(
        f"\nmodel {entry.tag}; reference: {len(reference.embeddings)} test-image embeddings of "
        f"{reference.images}; alpha {settings.alpha} per test; {settings.permutations} permutations"
    )
    print(
        "| shift | window | windows | verdict drift | input | MMD alone (at alpha) | input, summary only | prediction | quality |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['shift']} | {r['window']} | {r['windows']} | {r['any']:.2f} | {r['input']:.2f} | {r['mmd alone']:.2f} "
            f"| {r['input (summary)']:.2f} | {r['prediction']:.2f} | {r['quality']:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": entry.tag,
                "reference_images": reference.images,
                "reference_sample": len(reference.embeddings),
                "alpha": settings.alpha,
                "permutations": settings.permutations,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
