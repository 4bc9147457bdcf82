"""Stage `unify`: validated sources → one table of image–text–label triplets (polars).

Columns as docs/pipeline.md, "The triplet table", lists them. Reports that came without labels are labelled by the report
labeler (`label_origin = labeler`). The split is deterministic from the patient pseudonym and
the seed, so no patient is ever in two splits and adding a source never reshuffles the others.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from umcl.atomic import write_json, write_with
from umcl.config import Settings, SplitSettings
from umcl.errors import MissingInputError
from umcl.ingest.labeler import label_reports
from umcl.labels import LabelSpace

TRIPLET_COLUMNS = ["sample_id", "source", "kind", "patient_id", "split", "image", "text"]


def assign_split(patient_id: str, seed: int, split: SplitSettings) -> str:
    """Hash the patient into [0, 1): the lowest `test` share is test, the next `val` share val."""
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < split.test:
        return "test"
    return "val" if position < split.test + split.val else "train"


def label_unlabelled(rows: pl.DataFrame, space: LabelSpace, workers: int = 0) -> pl.DataFrame:
    """Fill labels of rows with a report but no dataset labels from the labeler (`workers`
    processes, 0: one per core; the output does not depend on how many)."""
    names = list(space.names)
    needs = (pl.col("label_origin") == "none") & pl.col("text").is_not_null()
    todo = rows.filter(needs)
    if todo.height == 0:
        return rows
    labelled = label_reports(todo["text"].to_list(), names, space.phrases, workers)
    filled = todo.with_columns(
        *(
            pl.Series(
                name, [None if r[name] is None else str(r[name]) for r in labelled], dtype=pl.String
            )
            for name in names
        ),
        pl.lit("labeler").alias("label_origin"),
    )
    return pl.concat([rows.filter(~needs), filled]).sort("sample_id")


def build_triplets(
    validated: list[pl.DataFrame],
    space: LabelSpace,
    seed: int,
    split: SplitSettings,
    workers: int = 0,
) -> pl.DataFrame:
    names = list(space.names)
    rows = pl.concat(validated, how="vertical") if validated else pl.DataFrame()
    rows = label_unlabelled(rows, space, workers)
    return (
        rows.with_columns(
            pl.col("patient_id")
            .map_elements(lambda p: assign_split(p, seed, split), return_dtype=pl.String)
            .alias("split"),
            *(pl.col(n).cast(pl.Int8) for n in names),
        )
        .select([*TRIPLET_COLUMNS, *names, "label_origin"])
        .sort("sample_id")
    )


def summarise(triplets: pl.DataFrame, names: list[str]) -> dict:
    def counts(column: str) -> dict[str, int]:
        return dict(sorted(triplets.group_by(column).len().iter_rows()))

    prevalence = {}
    for name in names:
        values = triplets[name]
        known = values.drop_nulls()
        prevalence[name] = {
            "positive": int((values == 1).sum()),
            "negative": int((values == 0).sum()),
            "uncertain": int((values == -1).sum()),
            "not_mentioned": int(values.null_count()),
            "prevalence": round(float((known == 1).mean()), 4) if known.len() else None,
        }
    return {
        "rows": triplets.height,
        "patients": triplets["patient_id"].n_unique(),
        "by_source": counts("source"),
        "by_kind": counts("kind"),
        "by_split": counts("split"),
        "by_label_origin": counts("label_origin"),
        "with_image": int(triplets["image"].is_not_null().sum()),
        "with_text": int(triplets["text"].is_not_null().sum()),
        "labels": prevalence,
    }


def unify(settings: Settings, validated_dir: Path, out: Path, metrics_path: Path) -> dict:
    space = LabelSpace.from_settings(settings.labels)
    names = list(space.names)
    frames = []
    for source in settings.data.sources:
        path = validated_dir / f"{source.name}.parquet"
        if not path.is_file():
            raise MissingInputError(
                f"{path}: run the validate stage first (source '{source.name}')"
            )
        frames.append(pl.read_parquet(path))
    triplets = build_triplets(
        frames, space, settings.seed, settings.data.split, settings.preprocess.workers
    )
    write_with(out, triplets.write_parquet)
    write_json(
        out.parent / "labels.json",
        {
            "names": names,
            "values": {
                "1": "positive",
                "0": "negative",
                "-1": "uncertain",
                "null": "not mentioned",
            },
            "synonyms": dict(space.synonyms),
            "uncertainty_policy": settings.labels.uncertainty,
        },
    )
    summary = summarise(triplets, names)
    write_json(metrics_path, summary)
    return summary
