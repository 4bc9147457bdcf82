"""Kermany's acquisition batches as a collection-shift split.

The Kermany training folder (configs/kermany_iu.yaml's `kermany` source) mixes batches that its file names
still show: normals named `IM-<study>-…` and normals named `NORMAL2-IM-<study>-…`, pneumonia
images named `person<N>_…` with increasing patient numbers. Batch A holds the `IM-` normals and
the lower patient numbers, batch B the `NORMAL2-` normals and the higher ones; the cut-off is the
patient number that gives both batches the same share of pneumonia images as of normals, so a
prevalence change does not pose as a collection shift. Patient numbers rising with time is an
assumption, stated where the figures are reported.

A model trains on batch A only (its own held-out patients give the familiar figure) and is then
scored on every image of batch B: patients of one batch are never in the other, since each
normal study and each pneumonia patient falls wholly on one side.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from umcl.config import SourceSettings

CLASSES = ("NORMAL", "PNEUMONIA")


@dataclass(frozen=True)
class Image:
    path: Path
    pneumonia: bool
    patient: str  # a pneumonia patient (`person<N>`) or a normal study (`IM-<study>`)


def kermany_images(source: SourceSettings) -> list[Image]:
    """Every JPEG of the source's two class folders, in name order, each with the patient its
    `patient_pattern` finds (configs/kermany_iu.yaml), as the folder reader reads them."""
    if source.patient_pattern is None:
        raise ValueError(f"source {source.name}: the batches need its patient_pattern")
    pattern = re.compile(source.patient_pattern)
    images = []
    for folder in CLASSES:
        for path in sorted((source.path / folder).glob("*.jpeg")):
            match = pattern.search(path.name)
            if match is None:
                raise ValueError(f"{path.name}: no patient or study in the file name")
            images.append(Image(path, folder == "PNEUMONIA", match.group(1)))
    return images


def patient_number(image: Image) -> int:
    return int(image.patient.removeprefix("person"))  # pneumonia images only


def pneumonia_cutoff(images: list[Image]) -> int:
    """The highest batch-A patient number: batch A's share of pneumonia images matches its
    share of normal images."""
    normals = [i for i in images if not i.pneumonia]
    share = sum(not i.path.name.startswith("NORMAL2-") for i in normals) / len(normals)
    numbers = sorted(patient_number(i) for i in images if i.pneumonia)
    return numbers[max(0, round(share * len(numbers)) - 1)]


def batches(images: list[Image]) -> dict[str, list[Image]]:
    """{"A": earlier batch, "B": later batch}."""
    cutoff = pneumonia_cutoff(images)
    out: dict[str, list[Image]] = {"A": [], "B": []}
    for image in images:
        later = (
            patient_number(image) > cutoff
            if image.pneumonia
            else image.path.name.startswith("NORMAL2-")
        )
        out["B" if later else "A"].append(image)
    return out


def write_folders(images: list[Image], destination: Path) -> Path:
    """Copy `images` into `destination`/{NORMAL,PNEUMONIA}/ (a `format: folders` source; the
    reader refuses links out of its root, so the files are copied)."""
    for folder in CLASSES:
        (destination / folder).mkdir(parents=True, exist_ok=True)
    for image in images:
        shutil.copy2(image.path, destination / CLASSES[image.pneumonia] / image.path.name)
    return destination


def describe(split: dict[str, list[Image]]) -> dict[str, dict[str, int]]:
    """Images, pneumonia images and patients (studies for normals) per batch."""
    return {
        name: {
            "images": len(images),
            "pneumonia": sum(i.pneumonia for i in images),
            "patients": len({i.patient for i in images}),
        }
        for name, images in split.items()
    }
