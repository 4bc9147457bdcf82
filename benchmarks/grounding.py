"""Pointing game: does a grounding map's peak fall inside the finding?

The demo generator records where it drew each finding of each image (`manifest.json: regions`,
a pixel box per finding). For every image of the test split with a drawn finding the model
knows, each method's map of that finding (umcl/model/grounding.py, on the image as
`umcl.load(...).explain` decodes it) scores a hit when its peak lies inside the finding's box.
The peak is the centre of the map's best cell, taken to the image's pixels: the maps are as
coarse as the feature maps they come from (the demo model's last stage is 2×2 at 128 px;
Grad-CAM's stage 8×8), and the argmax of a bilinearly upsampled coarse map is a corner of a flat
plateau, not a place the model chose. Baselines, from the same boxes:

- random: a point drawn uniformly from the image; its hit rate is the box's share of the image,
  averaged (the expectation, not a draw);
- centre of the lungs: one fixed point for every image and finding, between the lung fields
  (the generator's chest at x = 0.5, y = 0.45, through each image's padding);
- best fixed point: for each finding, the one point hit most often by that finding's boxes in
  the *training* split, then scored on the test split: what a map gets from knowing where a
  finding usually is, without looking at the image.

A finding whose maps do not beat its best fixed point is named in the table's last column.

    python benchmarks/grounding.py [--model models/candidate] [--results FILE]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

import umcl
from umcl.config import load_settings
from umcl.imaging.images import square_placement
from umcl.inference import square_pixels
from umcl.ingest.locator import image_files
from umcl.model.grounding import METHODS, gradcam_maps, similarity_maps

REPO = Path(__file__).resolve().parents[1]
CHEST_CENTRE = (0.5, 0.45)  # umcl/demo/radiograph.py: the lungs' centre line and mid-height
RAW_MAPS = {"similarity": similarity_maps, "gradcam": gradcam_maps}


def cases(split: str, triplets: Path, locator: Path, demo: Path, labels: list[str]) -> list[tuple]:
    """(file, height, width, finding, box) of every drawn finding the model knows, in `split`."""
    regions = json.loads((demo / "manifest.json").read_text())["regions"]
    rows = pl.read_parquet(triplets).filter(
        (pl.col("split") == split) & pl.col("image").is_not_null()
    )
    found = []
    for file in image_files(rows["image"].to_list(), locator):
        path = Path(file)
        relative = str(path.resolve().relative_to(demo.resolve()))
        for finding, box in regions.get(relative, {}).items():
            if finding in labels:
                found.append((path, finding, box))
    return found


def inside(point: tuple[int, int], box: list[int]) -> bool:
    y, x = point
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def image_size(path: Path) -> tuple[int, int]:
    from umcl.imaging.images import inspect_image

    info = inspect_image(path)
    return info.height, info.width


def peak_points(predictor, decoded, names: list[str], method: str) -> list[tuple[int, int]]:
    """Per finding, the centre of the best cell of its raw map, as (row, column) in the image."""
    size = predictor.image_size
    pixels = square_pixels(decoded.square[None]).to(predictor.model.device)
    present, absent, scale = predictor.prompt_embeddings(names)
    raw = RAW_MAPS[method](predictor.model, pixels, present, absent, scale)[0].float().cpu()
    cells_y, cells_x = raw.shape[-2:]
    new_h, new_w, top, left = square_placement(*decoded.shape, size)
    points = []
    for values in raw:
        row, column = np.unravel_index(int(values.argmax()), (cells_y, cells_x))
        y, x = (row + 0.5) * size / cells_y, (column + 0.5) * size / cells_x  # in the square
        points.append(
            (int((y - top) / new_h * decoded.shape[0]), int((x - left) / new_w * decoded.shape[1]))
        )
    return points


def best_fixed_points(train: list[tuple]) -> dict[str, tuple[float, float]]:
    """Per finding, the point (as a share of width and height) inside most of its training boxes."""
    grid = np.linspace(0.01, 0.99, 50)
    votes: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((50, 50)))
    for path, finding, box in train:
        height, width = image_size(path)
        xs, ys = grid * width, grid * height
        within_x = (xs >= box[0]) & (xs < box[2])
        within_y = (ys >= box[1]) & (ys < box[3])
        votes[finding] += np.outer(within_y, within_x)
    best = {}
    for finding, count in votes.items():
        row, column = np.unravel_index(count.argmax(), count.shape)
        best[finding] = (float(grid[column]), float(grid[row]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(REPO / "models/candidate"))
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--triplets", type=Path, default=REPO / "data/unified/triplets.parquet")
    parser.add_argument("--locator", type=Path, default=REPO / "data/locator")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks/results/grounding.json")
    args = parser.parse_args()
    settings = load_settings(args.params)
    demo = REPO / settings.demo.folder
    predictor = umcl.load(args.model)
    labels = predictor.labels
    test = cases("test", args.triplets, args.locator, demo, labels)
    train = cases("train", args.triplets, args.locator, demo, labels)
    fixed = best_fixed_points(train)
    hits: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_image: dict[Path, list[tuple[str, list[int]]]] = defaultdict(list)
    for path, finding, box in test:
        by_image[path].append((finding, box))
    for path, drawn in tqdm(by_image.items(), desc="pointing game", unit="img"):
        names = [finding for finding, _ in drawn]
        decoded = predictor.decoded(path, 0)
        height, width = decoded.shape
        peaks = {m: peak_points(predictor, decoded, names, m) for m in METHODS}
        top = (height - width) // 2  # the generator pads portrait films top and bottom
        centre = (round(CHEST_CENTRE[1] * width) + top, round(CHEST_CENTRE[0] * width))
        for k, (finding, box) in enumerate(drawn):
            record = hits[finding]
            for method in METHODS:
                record[method].append(float(inside(peaks[method][k], box)))
            area = (box[2] - box[0]) * (box[3] - box[1])
            record["random"].append(area / (height * width))
            record["centre"].append(float(inside(centre, box)))
            fx, fy = fixed.get(finding, CHEST_CENTRE)
            record["fixed"].append(float(inside((int(fy * height), int(fx * width)), box)))
    columns = [*METHODS, "random", "centre", "fixed"]
    table = {
        finding: {c: float(np.mean(v[c])) for c in columns} | {"n": len(v["random"])}
        for finding, v in sorted(hits.items())
    }
    every = [h for v in hits.values() for h in zip(*(v[c] for c in columns), strict=True)]
    overall = dict(zip(columns, np.mean(every, axis=0).tolist(), strict=True)) | {"n": len(every)}
    print(f"| finding | n | {' | '.join(columns)} | maps not better than the best fixed point |")
    print("|---|---|" + "---|" * (len(columns) + 1))
    for finding, row in [*table.items(), ("all findings", overall)]:
        failing = [m for m in METHODS if row[m] <= row["fixed"]]
        cells = " | ".join(f"{row[c]:.2f}" for c in columns)
        print(f"| {finding} | {row['n']} | {cells} | {', '.join(failing) or '—'} |")
    args.results.write_text(
        json.dumps({"model": args.model, "findings": table, "all": overall}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
