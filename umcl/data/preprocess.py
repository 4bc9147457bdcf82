"""Stage `preprocess`: every image decoded once into one memory-mapped uint8 array.

`images.u8` holds an (N, S, S) uint8 array (grayscale, aspect kept, padded to S×S);
`index.parquet` maps sample_id → row; `meta.json` says N and S. Training reads rows from the
map and never decodes a DICOM. Decoding runs in parallel over the cores. Image keys become files
only here, through the locator (`locator.py`); the cache holds pseudonymous ids and pixels.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from umcl.atomic import replacing, write_json, write_with
from umcl.errors import UMCLError
from umcl.imaging.images import fit_square, load_image
from umcl.imaging.limits import DecodeLimits
from umcl.imaging.scaled import decoded_side
from umcl.ingest.locator import image_files

IMAGES_FILE, INDEX_FILE, META_FILE = "images.u8", "index.parquet", "meta.json"


def decode_to_square(path: str | Path, size: int, limits: DecodeLimits | None = None) -> np.ndarray:
    """The S×S uint8 square the model takes, a large image decoded at reduced scale."""
    return fit_square(load_image(path, limits, min_side=decoded_side(size)), size)


class CacheSizeError(UMCLError, ValueError):
    """The image cache was built at another size than the params or the model expect."""


def cache_image_size(cache_dir: Path) -> int:
    """S of the S×S images in the cache, from its `meta.json`."""
    return int(json.loads((Path(cache_dir) / META_FILE).read_text())["size"])


def check_cache_size(cache_dir: Path, expected: int, expected_from: str) -> None:
    """Refuse a cache of another size: a model would silently see rescaled or cropped inputs.
    `expected_from` says where `expected` comes from (e.g. "params preprocess.image_size")."""
    actual = cache_image_size(cache_dir)
    if actual != expected:
        raise CacheSizeError(
            f"{cache_dir} holds {actual}×{actual} images but {expected_from} expects "
            f"{expected}×{expected}: rerun `umcl preprocess` (dvc repro preprocess) with "
            f"preprocess.image_size {expected}"
        )


def open_cache(cache_dir: Path) -> tuple[np.ndarray, dict[str, int]]:
    """The read-only image array and the sample_id → row index."""
    meta = json.loads((cache_dir / META_FILE).read_text())
    shape = (meta["count"], meta["size"], meta["size"])
    images = (
        np.memmap(cache_dir / IMAGES_FILE, dtype=np.uint8, mode="r", shape=shape)
        if meta["count"]
        else np.zeros(shape, np.uint8)
    )
    index = pl.read_parquet(cache_dir / INDEX_FILE)
    return images, dict(zip(index["sample_id"], index["row"], strict=True))


def build_cache(
    triplets_path: Path,
    cache_dir: Path,
    size: int,
    locator_dir: Path,
    workers: int = 0,
    limits: DecodeLimits | None = None,
) -> dict:
    triplets = pl.read_parquet(triplets_path).filter(pl.col("image").is_not_null())
    ids, paths = (
        triplets["sample_id"].to_list(),
        image_files(triplets["image"].to_list(), locator_dir),
    )
    target = cache_dir / IMAGES_FILE
    with replacing(target) as partial_file:  # a killed run never leaves a half-written cache
        if ids:
            shape = (len(ids), size, size)
            images = np.memmap(partial_file, dtype=np.uint8, mode="w+", shape=shape)
            with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
                decoded = pool.map(
                    partial(decode_to_square, size=size, limits=limits), paths, chunksize=32
                )
                for row, square in enumerate(
                    tqdm(decoded, total=len(ids), desc="preprocess", unit="img")
                ):
                    images[row] = square
            images.flush()
            del images
        else:
            partial_file.write_bytes(b"")
    index = pl.DataFrame(
        {"sample_id": ids, "row": list(range(len(ids)))},
        schema={"sample_id": pl.String, "row": pl.Int64},
    )
    write_with(cache_dir / INDEX_FILE, index.write_parquet)
    meta = {"count": len(ids), "size": size}
    write_json(cache_dir / META_FILE, meta, indent=None)
    return meta
