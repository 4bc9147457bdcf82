"""Training augmentation: seeded per (seed, epoch, sample), worker-independent, off in
evaluation, no mirroring unless asked; the cache size is checked against what the caller needs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from torch.utils.data import DataLoader

from tests.tiny import LABELS, MODEL, TEXTS, tiny_tokenizer
from umcl.config import AugmentSettings, ImageAugment, TextAugment
from umcl.data.augment import augment_image, augment_report, sample_generator, split_sentences
from umcl.data.dataset import Collate, TripletDataset, to_device
from umcl.data.preprocess import IMAGES_FILE, INDEX_FILE, META_FILE, CacheSizeError

SIZE = 32
N = 8
REPORT = "heart size is normal. no pleural effusion! is there a pneumothorax? lungs are clear."
STILL = {  # no geometric or photometric change at all
    "crop_scale": (1.0, 1.0),
    "crop_ratio": (1.0, 1.0),
    "rotate_degrees": 0.0,
    "translate": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "gamma": 0.0,
}


def write_cache(cache_dir: Path, images: np.ndarray, ids: list[str]) -> None:
    """The three files `umcl/data/preprocess.py: build_cache` writes, from arrays."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    images.astype(np.uint8).tofile(cache_dir / IMAGES_FILE)
    pl.DataFrame(
        {"sample_id": ids, "row": list(range(len(ids)))},
        schema={"sample_id": pl.String, "row": pl.Int64},
    ).write_parquet(cache_dir / INDEX_FILE)
    meta = {"count": len(ids), "size": int(images.shape[-1])}
    (cache_dir / META_FILE).write_text(json.dumps(meta) + "\n")


@pytest.fixture
def cache(tmp_path: Path) -> tuple[Path, pl.DataFrame, np.ndarray]:
    """N samples: textured images (none for every third), reports (odd samples), labels."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, SIZE, SIZE), dtype=np.uint8)
    ids = [f"s{i}" for i in range(N)]
    with_image = [i % 3 != 2 for i in range(N)]
    write_cache(
        tmp_path / "cache",
        images[with_image],
        [s for s, w in zip(ids, with_image, strict=True) if w],
    )
    table = pl.DataFrame(
        {
            "sample_id": ids,
            "split": ["train"] * N,
            "image": [f"{s}.dcm" if w else None for s, w in zip(ids, with_image, strict=True)],
            "text": [REPORT if i % 2 else None for i in range(N)],
            **{name: [1.0, None, 1.0, 0.0, -1.0, None, 1.0, 0.0] for name in LABELS},
        }
    )
    return tmp_path / "cache", table, images


def dataset_of(cache, augment: AugmentSettings | None = None, seed: int = 0) -> TripletDataset:
    cache_dir, table, _ = cache
    return TripletDataset(table, cache_dir, LABELS, augment=augment, seed=seed)


def test_augmentation_depends_only_on_seed_epoch_and_index(cache) -> None:
    dataset = dataset_of(cache, AugmentSettings())
    first, again = dataset.for_epoch(3)[0], dataset_of(cache, AugmentSettings()).for_epoch(3)[0]
    assert torch.equal(first["image"], again["image"]) and first["text"] == again["text"]
    later = dataset.for_epoch(4)[0]
    assert not torch.equal(first["image"], later["image"])
    other_seed = dataset_of(cache, AugmentSettings(), seed=1).for_epoch(3)[0]
    assert not torch.equal(first["image"], other_seed["image"])
    texts = {dataset.for_epoch(e)[1]["text"] for e in range(10)}
    assert len(texts) > 1  # the report changes between epochs too


def test_sample_generator_streams_differ_by_each_coordinate() -> None:
    def draw(*key: int) -> torch.Tensor:
        return torch.rand(4, generator=sample_generator(*key))

    assert torch.equal(draw(0, 1, 2), draw(0, 1, 2))
    for other in [(1, 1, 2), (0, 2, 2), (0, 1, 3), (0, 2, 1)]:
        assert not torch.equal(draw(0, 1, 2), draw(*other))


def test_plain_samples_and_a_disabled_view_are_the_cached_image(cache) -> None:
    _, _, images = cache
    cached = torch.from_numpy(images[0].astype(np.float32) / 255.0)[None]
    dataset = dataset_of(cache, AugmentSettings())
    assert torch.equal(dataset[0]["image"], cached) and dataset[1]["text"] == REPORT
    for view in (
        dataset_of(cache, AugmentSettings(enabled=False)).for_epoch(5),
        dataset_of(cache, None).for_epoch(5),
    ):
        assert torch.equal(view[0]["image"], cached) and view[1]["text"] == REPORT


def test_a_still_warp_is_the_identity_and_hflip_mirrors_exactly() -> None:
    image = torch.rand(1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    same = augment_image(image, ImageAugment(**STILL), g)
    mirrored = augment_image(image, ImageAugment(**STILL, hflip=1.0), g)
    assert torch.allclose(same, image, atol=1e-5)
    assert torch.allclose(mirrored, image.flip(-1), atol=1e-5)


def test_no_mirroring_by_default_and_always_with_hflip_one() -> None:
    image = torch.full((1, SIZE, SIZE), 0.1)
    image[..., : SIZE // 2] = 0.8  # bright left half: the sides tell a mirror apart
    half = SIZE // 2

    def left_brighter(settings: ImageAugment, index: int) -> bool:
        out = augment_image(image, settings, sample_generator(0, 0, index))
        return bool(out[..., :half].mean() > out[..., half:].mean())

    assert all(left_brighter(ImageAugment(), i) for i in range(60))
    assert not any(left_brighter(ImageAugment(hflip=1.0), i) for i in range(60))


def test_strong_augmentation_stays_in_range_and_shape() -> None:
    strong = ImageAugment(
        crop_scale=(0.3, 1.0),
        rotate_degrees=45,
        translate=0.3,
        brightness=1.0,
        contrast=1.0,
        gamma=1.0,
        noise_std=0.5,
        blur_sigma=3.0,
    )
    image = torch.rand(1, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    for i in range(30):
        out = augment_image(image, strong, sample_generator(0, 0, i))
        assert out.shape == (1, SIZE, SIZE) and out.dtype == torch.float32
        assert not out.isnan().any() and out.min() >= 0 and out.max() <= 1


def test_augmentation_never_touches_the_global_rng() -> None:
    image = torch.rand(1, SIZE, SIZE)
    settings = ImageAugment(noise_std=0.1, blur_sigma=1.0)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    augment_image(image, settings, sample_generator(0, 0, 0))
    augment_report(REPORT, TextAugment(), sample_generator(0, 0, 0))
    assert torch.equal(torch.rand(3), expected)


def test_sentences_split_on_lowercase_reports_but_not_inside_numbers_or_abbreviations() -> None:
    assert split_sentences(TEXTS[0]) == [
        "heart size is normal.",
        "no pleural effusion.",
        "lungs are clear.",
    ]
    assert split_sentences(
        "Nodule of 2.5 cm in the RUL.\nNo effusion.  Stable, e.g. the heart."
    ) == [
        "Nodule of 2.5 cm in the RUL.",
        "No effusion.",
        "Stable, e.g. the heart.",
    ]
    assert split_sentences("IMPRESSION: 1. cardiomegaly. 2. no edema.") == [
        "IMPRESSION: 1. cardiomegaly.",
        "2. no edema.",
    ]
    assert split_sentences(REPORT)[1:3] == ["no pleural effusion!", "is there a pneumothorax?"]
    assert split_sentences("   ") == []


def test_report_augmentation_keeps_at_least_one_of_its_own_sentences() -> None:
    sentences = split_sentences(REPORT)
    sparse = TextAugment(keep=0.01)
    for i in range(50):
        out = augment_report(REPORT, sparse, sample_generator(0, 0, i))
        assert out in sentences  # exactly one kept
    lengths = set()
    for i in range(50):
        kept = split_sentences(
            augment_report(REPORT, TextAugment(keep=0.6), sample_generator(0, 0, i))
        )
        assert kept and set(kept) <= set(sentences) and len(set(kept)) == len(kept)
        lengths.add(len(kept))
    assert len(lengths) > 1
    assert TextAugment().keep == 1.0  # no sentence dropped by default (umcl/config/model.py: why)
    whole = TextAugment(keep=1.0, shuffle=False)
    assert augment_report(REPORT, whole, sample_generator(0, 0, 0)) == REPORT
    shuffled = {
        augment_report(REPORT, TextAugment(keep=1.0), sample_generator(0, 0, i)) for i in range(20)
    }
    assert len(shuffled) > 1 and all(
        sorted(split_sentences(s)) == sorted(sentences) for s in shuffled
    )


def test_two_workers_give_the_batches_of_one_process(cache) -> None:
    view = dataset_of(cache, AugmentSettings(image=ImageAugment(noise_std=0.05))).for_epoch(2)
    collate = Collate(tiny_tokenizer(), MODEL["text"]["max_length"], SIZE)
    order = [[5, 0, 3], [7, 1], [2, 6, 4]]

    def batches(workers: int, batch_order: list[list[int]]) -> dict[str, dict]:
        loader = DataLoader(
            view, batch_sampler=batch_order, collate_fn=collate, num_workers=workers
        )
        return {",".join(b["sample_ids"]): b for b in loader}

    alone, pooled = batches(0, order), batches(2, order[::-1])
    assert alone.keys() == pooled.keys()
    for key, batch in alone.items():
        for name in ("images", "input_ids", "attention_mask", "label_sets", "labels"):
            assert torch.equal(batch[name].nan_to_num(-1), pooled[key][name].nan_to_num(-1)), name
        for m, mask in batch["present"].items():
            assert torch.equal(mask, pooled[key]["present"][m])
    first = alone["s5,s0,s3"]
    assert torch.equal(first["images"][0], view[0]["image"])  # s5 has no image: s0 is row 0


def test_the_view_pickles_without_the_cache_pixels(cache) -> None:
    _, _, images = cache
    view = dataset_of(cache, AugmentSettings()).for_epoch(1)
    wire = pickle.dumps(view)
    assert len(wire) < images.nbytes / 2
    copy = pickle.loads(wire)
    assert torch.equal(copy[3]["image"], view[3]["image"]) and copy[3]["text"] == view[3]["text"]


def test_collate_keeps_model_shapes_for_a_batch_without_images_or_texts(cache) -> None:
    dataset = dataset_of(cache)
    collate = Collate(tiny_tokenizer(), MODEL["text"]["max_length"], dataset.image_size)
    batch = collate([dataset[2]])  # s2: no image, no report, labels known
    assert batch["images"].shape == (0, 1, SIZE, SIZE)
    assert batch["input_ids"].shape == (0, 0) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].shape == (0, 0)
    assert batch["present"]["label"].tolist() == [True] and batch["label_sets"].shape == (1, 4)
    unlabelled = collate([dataset[1], dataset[5]])  # every label of s1 and s5 is unknown
    assert unlabelled["label_sets"].shape == (0, 4) and unlabelled["labels"].isnan().all()
    moved = to_device(batch, "meta")
    assert moved["images"].is_meta and moved["present"]["image"].is_meta
    assert moved["sample_ids"] == ["s2"]


def test_a_cache_of_another_size_is_refused_naming_both_sizes(cache) -> None:
    cache_dir, table, _ = cache
    with pytest.raises(CacheSizeError) as refused:
        TripletDataset(table, cache_dir, LABELS, image_size=128)
    message = str(refused.value)
    assert f"{SIZE}×{SIZE}" in message and "128×128" in message and str(cache_dir) in message
    assert "params preprocess.image_size" in message
    with pytest.raises(CacheSizeError, match="the model \\(models/candidate\\)"):
        TripletDataset(
            table, cache_dir, LABELS, image_size=64, image_size_from="the model (models/candidate)"
        )
    assert TripletDataset(table, cache_dir, LABELS, image_size=SIZE).image_size == SIZE
